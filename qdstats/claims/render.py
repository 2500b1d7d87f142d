"""Render a :class:`~qdstats.claims.engine.ClaimsTable` as Markdown, CSV, JSON or LaTeX.

This is the only place where numbers are rounded (``digits`` significant digits, for Markdown and LaTeX).
JSON and CSV keep full precision (JSON is the canonical, re-loadable form; CSV is for spreadsheets).
Small-n claims always show ``n`` and the CI next to the estimate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qdstats.claims.engine import ClaimRow, ClaimsTable
from qdstats.records import atomic_write_text

__all__ = ["SUMMARY_BLOCK", "check_summary", "fmt", "specification_frame", "summary_markdown", "sync_summary", "to_csv",
           "to_json", "to_latex", "to_markdown", "write_specification_curves", "write_table"]

#: Name of the generated block (``<!-- claims-summary:start -->`` ... ``<!-- claims-summary:end -->``) that
#: :func:`sync_summary` writes into the README and ``docs/claims.md`` and :func:`check_summary` checks.
SUMMARY_BLOCK = "claims-summary"

_VERDICT_TEXT = {
    "supported": "supported",
    "not_supported": "not supported",
    "inconclusive": "inconclusive",
    "insufficient_data": "insufficient data",
    "error": "error",
}


def fmt(v: float | None, digits: int = 3) -> str:
    """Round for display: ``digits`` significant digits; '—' for missing; p-values < 1e-4 as '<1e-04'."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}g}"


def _p(v: float | None, digits: int) -> str:
    if v is None:
        return "—"
    if v < 1e-4:
        return "<1e-04"
    return fmt(v, digits)


def _est(r: ClaimRow, digits: int) -> str:
    if r.estimate is None:
        return "—"
    s = f"{r.estimate_name or 'estimate'} = {fmt(r.estimate, digits)}"
    if r.ci_low is not None or r.ci_high is not None:
        lvl = f"{r.ci_level:.0%} " if r.ci_level else ""
        s += f" [{fmt(r.ci_low, digits)}, {fmt(r.ci_high, digits)}] ({lvl}{r.ci_method})"
    return s


def _n(r: ClaimRow) -> str:
    if r.n is None:
        return "—"
    extra = ", ".join(f"{k} {v}" for k, v in r.n_units.items())
    return f"{r.n}" + (f" ({extra})" if extra else "")


def _agree(r: ClaimRow) -> str:
    """'9/10 (not robust)' from the specification curve; '—' when none was run."""
    if not r.n_specifications:
        return "—"
    tag = {True: "robust", False: "not robust", None: "incomplete"}[r.robust]
    return f"{r.n_specs_agree}/{r.n_specifications} ({tag})"


def _md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(table: ClaimsTable, *, digits: int = 3, commands: Sequence[str] = ()) -> str:
    """Markdown table (rounded), followed by messages, warnings and record producers per claim.

    Parameters
    ----------
    table : ClaimsTable
        The table.
    digits : int, default 3
        Significant digits (display only).
    commands : sequence of str
        Commands that made the table (listed at the end, e.g. for a generated ``docs/claims.md``).
    """
    head = ("| claim | statement | evidence | n | estimate [CI] | p | p adj (family, method) | verdict | specs agree | grade |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    notes = []
    for r in table.rows:
        fam = f"{_p(r.p_adj, digits)} ({r.family}, {r.adjust_method}, m={r.family_size})" if r.p_adj is not None else "—"
        lines.append(
            f"| `{r.claim_id}` v{r.version} | {_md_escape(r.statement)} | {r.evidence} | {_n(r)} | "
            f"{_md_escape(_est(r, digits))} | {_p(r.p, digits)} | {fam} | **{_VERDICT_TEXT[r.verdict]}** | "
            f"{_agree(r)} | {r.grade}{' (' + ', '.join(r.grade_reasons) + ')' if r.grade_reasons else ''} |"
        )
        extra = []
        if r.message:
            extra.append(f"message: {r.message}")
        if r.verdict_reason and r.verdict_reason != r.message:
            extra.append(f"decision: {r.verdict_reason}")
        flips = [f"{k} {v['verdict'].replace('_', ' ')} ({fmt(v['estimate'], digits)} [{fmt(v['ci_low'], digits)}, "
                 f"{fmt(v['ci_high'], digits)}])"
                 for k, v in (r.details.get("specifications") or {}).items() if v.get("verdict") != r.verdict]
        if flips:
            extra.append("other verdicts under: " + "; ".join(flips))
        extra += [f"warning: {w}" for w in r.warnings]
        extra += [f"records from: `{c}`" for c in r.produced_by]
        if extra:
            notes.append(f"- `{r.claim_id}`: " + "; ".join(_md_escape(e) for e in extra))
    out = head + "\n".join(lines) + "\n"
    if notes:
        out += "\n**Notes**\n\n" + "\n".join(notes) + "\n"
    out += (f"\nRecords: {table.n_records} (content hash `{table.records_hash[:12]}`), failed records: "
            f"{table.n_failed_records}; qd {table.qd_version}, git {table.git_sha or 'unknown'}, built {table.created_at}.\n")
    if commands:
        out += "\nMade with:\n\n```bash\n" + "\n".join(commands) + "\n```\n"
    return out


def to_csv(table: ClaimsTable) -> str:
    """CSV at full precision (``repr`` of floats), one row per claim."""
    df = table.to_frame()
    return df.to_csv(index=False, float_format=None)


def to_json(table: ClaimsTable) -> str:
    """Canonical JSON (full precision; reload with ``ClaimsTable.model_validate_json``)."""
    return table.model_dump_json(indent=2) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def _tex(s: str) -> str:
    return "".join(_LATEX_SPECIAL.get(c, c) for c in s).replace("—", "--").replace("−", "-")


def to_latex(table: ClaimsTable, *, digits: int = 3) -> str:
    """A ``tabular`` (booktabs) with claim, n, estimate, CI, p, adjusted p, verdict and grade (rounded)."""
    rows = [r"\begin{tabular}{llrrllll}", r"\toprule",
            r"Claim & Evidence & $n$ & Estimate & 95\% CI & $p$ & $p_{\mathrm{adj}}$ & Verdict (grade) \\", r"\midrule"]
    for r in table.rows:
        ci = f"[{fmt(r.ci_low, digits)}, {fmt(r.ci_high, digits)}]" if r.ci_low is not None or r.ci_high is not None else "--"
        rows.append(" & ".join([
            _tex(r.claim_id), _tex(r.evidence), _tex(str(r.n) if r.n is not None else "--"),
            _tex(fmt(r.estimate, digits)), _tex(ci), _tex(_p(r.p, digits)), _tex(_p(r.p_adj, digits)),
            _tex(f"{_VERDICT_TEXT[r.verdict]} ({r.grade})"),
        ]) + r" \\")
    rows += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(rows) + "\n"


def specification_frame(table: ClaimsTable) -> Any:
    """Long table of every row's specification curve: ``claim_id, family, model, specification, estimate, ci_low,
    ci_high, p_adj, min_abs_effect, verdict, row_verdict`` (full precision; empty when no spec ran a curve).

    Examples
    --------
    >>> from qdstats.claims.engine import ClaimsTable
    >>> specification_frame(ClaimsTable(rows=(), spec_hashes={}, records_hash="")).empty
    True
    """
    import pandas as pd

    cols = ["claim_id", "family", "model", "specification", "estimate", "ci_low", "ci_high", "p_adj",
            "min_abs_effect", "verdict", "row_verdict"]
    out = [{"claim_id": r.claim_id, "family": r.family, "model": r.model, "specification": name,
            **{k: v.get(k) for k in ("estimate", "ci_low", "ci_high", "p_adj", "min_abs_effect", "verdict")},
            "row_verdict": r.verdict}
           for r in table.rows for name, v in ((r.details or {}).get("specifications") or {}).items()]
    df = pd.DataFrame(out, columns=cols)
    for c in ("estimate", "ci_low", "ci_high", "p_adj", "min_abs_effect"):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df


def write_specification_curves(table: ClaimsTable, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """One specification-curve figure per (family, model) whose rows ran a curve:
    ``speccurve_<family>_<model>.png`` (:func:`qdstats.report.plots.specification_curve_plot`); figures left in
    ``out_dir`` by an earlier table that this one no longer draws are removed. Returns the paths."""
    from qdstats.records import atomic_path
    from qdstats.report.plots import figure_png, specification_curve_plot

    frame = specification_frame(table)
    paths: dict[str, Path] = {}
    for (family, model), sub in frame.groupby(["family", frame["model"].fillna("all")], sort=False):
        name = f"speccurve_{family}_{model}".replace("/", "_").replace(" ", "_")
        fig = specification_curve_plot(sub, title=f"{family} ({model}): every pre-declared specification",
                                       unit="estimate (own unit)")
        path = Path(out_dir) / f"{name}.png"
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(figure_png(fig))
        paths[name] = path
    for old in Path(out_dir).glob("speccurve_*.png"):  # figures of rows that no longer run a curve
        if old.stem not in paths:
            old.unlink()
    return paths


def write_table(
    table: ClaimsTable, out_dir: str | os.PathLike[str], *, digits: int = 3, commands: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``claims_table.{json,csv,md,tex}`` into ``out_dir`` (atomically), and the specification-curve figures
    (:func:`write_specification_curves`) where specs ran a curve; returns the paths.

    ``commands`` are listed at the end of the Markdown file.
    """
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    outputs = {
        "json": (d / "claims_table.json", to_json(table)),
        "csv": (d / "claims_table.csv", to_csv(table)),
        "md": (d / "claims_table.md", to_markdown(table, digits=digits, commands=commands)),
        "tex": (d / "claims_table.tex", to_latex(table, digits=digits)),
    }
    paths = {k: atomic_write_text(p, text) for k, (p, text) in outputs.items()}
    return {**paths, **write_specification_curves(table, d)}


def summary_markdown(table: ClaimsTable, *, digits: int = 3) -> str:
    """One line per claim family (seed hypothesis), generated from the table: rows, models, verdict counts, robustness.

    Numbers come only from the table (so a README that embeds this block cannot disagree with it). Families are in
    table order; each line counts the family's rows (one per model x language or contrast), the models they cover,
    the verdicts, and, where the spec ran a specification curve, how many rows keep their verdict under every
    pre-declared unit of damage.

    Examples
    --------
    >>> from qdstats.claims import build_claims_table
    >>> summary_markdown(build_claims_table([], [])).strip()
    '0 claims.'
    """
    fams: dict[str, list[ClaimRow]] = {}
    for r in table.rows:
        fams.setdefault(r.family, []).append(r)
    order = ("supported", "not_supported", "inconclusive", "insufficient_data", "error")
    lines = []
    for fam, rows in fams.items():
        counts = {v: sum(r.verdict == v for r in rows) for v in order}
        models = sorted({r.model for r in rows if r.model})
        text = ", ".join(f"{n} {_VERDICT_TEXT[v]}" for v, n in counts.items() if n)
        line = f"- **{fam}** ({len(rows)} row{'s' if len(rows) != 1 else ''}"
        line += f"; models: {', '.join(models)}" if models else ""
        line += f"): {text}"
        curved = [r for r in rows if r.n_specifications]
        if curved:
            robust = sum(r.robust is True for r in curved)
            flips = [r.claim_id for r in curved if r.robust is False]
            line += (f"; {robust} of {len(curved)} rows keep their verdict under all {curved[0].n_specifications} "
                     f"pre-declared units of damage")
            if flips:
                line += f" (not robust: {', '.join(f'`{c}`' for c in flips)})"
        lines.append(line + ".")
    n = len(table.rows)
    counts = {v: sum(r.verdict == v for r in table.rows) for v in order}
    head = f"{n} claims" + (": " + ", ".join(f"{c} {_VERDICT_TEXT[v]}" for v, c in counts.items() if c) if n else "")
    return head + ".\n" + ("\n".join(lines) + "\n" if lines else "")


def _block_pattern() -> Any:
    import re

    return re.compile(rf"<!-- {SUMMARY_BLOCK}:start -->.*?<!-- {SUMMARY_BLOCK}:end -->", re.DOTALL)


def sync_summary(text: str, table: ClaimsTable) -> str:
    """``text`` with its ``claims-summary`` block rewritten from ``table`` (ValueError if the block is missing)."""
    pat = _block_pattern()
    if not pat.search(text):
        raise ValueError(f"the document has no `<!-- {SUMMARY_BLOCK}:start -->` ... `<!-- {SUMMARY_BLOCK}:end -->` block.")
    body = summary_markdown(table).rstrip()
    return pat.sub(lambda _m: f"<!-- {SUMMARY_BLOCK}:start -->\n{body}\n<!-- {SUMMARY_BLOCK}:end -->", text)


def check_summary(path: str | os.PathLike[str], table: ClaimsTable) -> list[str]:
    """Problems (empty when none) of the ``claims-summary`` block of the document at ``path`` against ``table``."""
    p = Path(path)
    if not p.is_file():
        return [f"{p}: no such file."]
    text = p.read_text(encoding="utf-8")
    try:
        synced = sync_summary(text, table)
    except ValueError as exc:
        return [f"{p}: {exc}"]
    return [] if synced == text else [f"{p}: the claims summary disagrees with the table (regenerate it with "
                                      "`qd claims summary TABLE --sync FILE`)."]
