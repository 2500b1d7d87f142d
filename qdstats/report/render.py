"""Render a report as self-contained HTML (PNG figures as base64 data URIs) and as Markdown (PNG files beside it).

This is the only place where numbers are rounded (:func:`fmt_num`, 4 significant digits by default), and
every estimate is printed together with its CI and its n. The HTML page loads nothing from the network:
a Content-Security-Policy allows only inline styles, the one inline script (which marks the page once all
images decoded: ``<body data-images-ok="k" data-images-total="m">``) and ``data:`` images.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from qdstats.report.data import ReportData

__all__ = [
    "SECTION_TITLES",
    "Figure",
    "claims_frame",
    "fmt_ci",
    "fmt_estimate",
    "fmt_num",
    "fmt_p",
    "render_html",
    "render_markdown",
]

SECTION_TITLES: dict[str, str] = {
    "degradation": "Degradation per language (Δ bits per byte)",
    "sensitivity": "Layer × language sensitivity",
    "alignment": "Alignment vs damage (word level)",
    "tokenizer": "Tokenizer premiums",
    "claims": "Claims",
    "licenses": "Data and licenses",
    "notes": "Omitted sections and notes",
    "provenance": "Provenance",
}


@dataclass(frozen=True)
class Figure:
    """A rendered figure: its section, file name (relative to the Markdown file), caption and PNG bytes."""

    section: str
    filename: str
    caption: str
    png: bytes


# ----------------------------------------------------------------------------- number formatting
def _is_missing(x: Any) -> bool:
    if x is None:
        return True
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False


def fmt_num(x: Any, digits: int = 4) -> str:
    """Display a number with ``digits`` significant digits; missing values as ``NaN``.

    Examples
    --------
    >>> fmt_num(0.0123456), fmt_num(12345.678), fmt_num(float("nan"))
    ('0.01235', '1.235e+04', 'NaN')
    """
    if _is_missing(x):
        return "NaN"
    if isinstance(x, (bool,)) or not isinstance(x, (int, float)) and not hasattr(x, "__float__"):
        return str(x)
    v = float(x)
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}g}"


def fmt_ci(low: Any, high: Any, digits: int = 4) -> str:
    """``[low, high]``; ``[NaN, NaN]`` when undefined."""
    return f"[{fmt_num(low, digits)}, {fmt_num(high, digits)}]"


def fmt_n(n: Any) -> str:
    return "?" if _is_missing(n) else str(int(n))


def fmt_estimate(
    est: Any, low: Any, high: Any, n: Any, *, digits: int = 4, n_label: str = "n", always_ci: bool = True
) -> str:
    """``est [low, high] (n=...)``.

    With ``always_ci=False`` the CI is left out when both bounds are missing (for stored values whose
    producer computed no CI, e.g. the reference language's premium); otherwise an undefined CI shows as
    ``[NaN, NaN]``.

    Examples
    --------
    >>> fmt_estimate(0.25231, 0.2387, 0.26566, 24)
    '0.2523 [0.2387, 0.2657] (n=24)'
    >>> fmt_estimate(1.0, None, None, 24, always_ci=False)
    '1 (n=24)'
    """
    no_ci = _is_missing(low) and _is_missing(high) and not always_ci
    ci = "" if no_ci else " " + fmt_ci(low, high, digits)
    return f"{fmt_num(est, digits)}{ci} ({n_label}={fmt_n(n)})"


def fmt_p(p: Any) -> str:
    """p-value with 2 significant digits (``NaN`` when missing)."""
    return "NaN" if _is_missing(p) else f"{float(p):.2g}"


# ----------------------------------------------------------------------------- claims
def claims_frame(claims_table: Any) -> pd.DataFrame:
    """Normalize a claims table into a DataFrame with one row per claim.

    Parameters
    ----------
    claims_table : ClaimsTable, dict, list or path
        A :class:`qdstats.claims.engine.ClaimsTable` (anything with ``to_frame()``); a path to its
        ``claims_table.json`` (or to the directory holding it); a dict with a ``'rows'`` list; or a list of
        row dicts.

    Returns
    -------
    pandas.DataFrame
        The rows, full precision.

    Raises
    ------
    TypeError
        Unsupported type or rows that are not dicts.
    ValueError
        A dict (or JSON file) without a ``'rows'`` list.
    FileNotFoundError
        A path that does not exist.
    """
    import os
    from pathlib import Path

    obj = claims_table
    if isinstance(obj, (str, os.PathLike)):
        p = Path(obj)
        if p.is_dir():
            p = p / "claims_table.json"
        if not p.exists():
            raise FileNotFoundError(f"claims table not found: {p}")
        obj = json.loads(p.read_text(encoding="utf-8"))
        if isinstance(obj, Mapping) and obj.get("schema_name") == "qd.claims_table":
            from qdstats.claims.engine import (
                ClaimsTable,  # validates the file as the engine wrote it
            )

            obj = ClaimsTable.model_validate(obj)
    if hasattr(obj, "to_frame") and callable(obj.to_frame):
        df = obj.to_frame()
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"`claims_table.to_frame()` must return a DataFrame; got {type(df).__name__}.")
        return df.reset_index(drop=True)
    if isinstance(obj, Mapping):
        rows_obj = obj.get("rows", obj.get("claims"))
        if not isinstance(rows_obj, list):
            raise ValueError(f"`claims_table` has no 'rows' list; keys: {sorted(map(str, obj))}.")  # noqa: TRY004
        obj = rows_obj
    if isinstance(obj, (list, tuple)):
        rows = []
        for r in obj:
            if hasattr(r, "model_dump"):
                r = r.model_dump(mode="json")
            if not isinstance(r, Mapping):
                raise TypeError(f"`claims_table` rows must be dicts; got {type(r).__name__}.")
            rows.append(dict(r))
        return pd.DataFrame(rows)
    raise TypeError(
        "`claims_table` must be a ClaimsTable, a path to claims_table.json, a dict with 'rows' or a list of row "
        f"dicts; got {type(claims_table).__name__}."
    )


def _text(x: Any) -> str:
    if isinstance(x, (list, tuple)):
        return "; ".join(map(str, x))
    return "" if _is_missing(x) else str(x)


def _claims_rows(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["claim", "statement", "evidence", "estimate [CI] (n)", "p", "p adj.", "verdict", "grade", "notes"]
    rows = []
    for _, r0 in df.iterrows():
        r = r0.to_dict()
        ci = r.get("ci")
        if isinstance(ci, Mapping):
            for k in ("low", "high", "level", "method"):
                r.setdefault(f"ci_{k}", ci.get(k))
        est_name = _text(r.get("estimate_name"))
        est = fmt_estimate(r.get("estimate"), r.get("ci_low"), r.get("ci_high"), r.get("n"))
        if not _is_missing(r.get("ci_level")):
            est += f", {float(r['ci_level']):.0%} {_text(r.get('ci_method'))}".rstrip()
        p = r.get("p") if not _is_missing(r.get("p")) else r.get("pvalue")
        adj = fmt_p(r.get("p_adj"))
        if _text(r.get("adjust_method")) and not _is_missing(r.get("p_adj")):
            adj += f" ({_text(r.get('adjust_method'))})"
        notes = [x for x in (_text(r.get("verdict_reason")), _text(r.get("message")), _text(r.get("warnings"))) if x]
        rows.append([_text(r.get("claim_id") or r.get("id")), _text(r.get("statement")), _text(r.get("evidence")),
                     (f"{est_name} = " if est_name else "") + est, fmt_p(p), adj, _text(r.get("verdict")),
                     _text(r.get("grade")), " | ".join(notes)])
    return header, rows


# ----------------------------------------------------------------------------- section tables (strings only)
def _degradation_tables(d: pd.DataFrame, reference: str) -> list[tuple[str, list[str], list[list[str]], str]]:
    out = []
    for (_, cond), g in d.groupby(["model_key", "condition_short"], sort=True):
        model_id = g["model_label"].iloc[0]
        level = float(g["ci_level"].iloc[0])
        show_p = bool(g.loc[~g["is_reference"].astype(bool), "did_pvalue"].notna().any())
        header = ["language", f"Δ bpb [{level:.0%} CI] (n items)", "clusters",
                  f"Δ − Δ({reference}) [{level:.0%} CI] (n items)", "p (permutation)", "warnings"]
        if not show_p:
            header.remove("p (permutation)")
        rows = []
        for _, r in g.sort_values("language").iterrows():
            is_ref = bool(r["is_reference"])
            did = ("reference (0 by definition)" if is_ref else
                   "NaN (no reference)" if _is_missing(r["did"]) else
                   fmt_estimate(r["did"], r["did_ci_low"], r["did_ci_high"], r["n"]))
            row = [r["language"] + (" (ref)" if is_ref else ""),
                   fmt_estimate(r["estimate"], r["ci_low"], r["ci_high"], r["n"]),
                   f"{fmt_n(r['n_clusters'])} × {r['cluster']}", did,
                   "" if is_ref else fmt_p(r["did_pvalue"]), str(r["warnings"] or "")]
            if not show_p:
                del row[4]
            rows.append(row)
        method = g["ci_method"].iloc[0]
        caption = (f"{model_id}, {cond}: Δ = mean over items of (compressed − baseline) bits per byte; "
                   f"{level:.0%} CI {method} ({g['resampling'].iloc[0]} resampling of {g['cluster'].iloc[0]}); "
                   + ("p: sign-flip permutation test of Δ − Δ(ref)." if show_p else
                      "p column left out: the permutation p-value is undefined for every language here (it needs the "
                      "same items in every language, i.e. a parallel corpus)."))
        out.append((f"{model_id} — {cond}", header, rows, caption))
    return out


def _sensitivity_tables(s: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]], str]]:
    out = []
    for (model_id, cond), g in s.groupby(["model_id", "condition"], sort=True):
        langs = sorted(g["language"].unique())
        header = ["site"] + langs
        rows = []
        for site in dict.fromkeys(g["site"]):
            gs = g[g["site"] == site].set_index("language")
            cells = [site]
            for lang in langs:
                if lang not in gs.index:
                    cells.append("–")
                    continue
                r = gs.loc[lang]
                cells.append(fmt_estimate(r["value"], r["ci_low"], r["ci_high"], r["n"], always_ci=False))
            rows.append(cells)
        out.append((f"{model_id} — {cond}", header, rows,
                    "Mean change in bits per byte when only that site is compressed (n = items per cell)."))
    return out


def _alignment_tables(f: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]], str]]:
    out = []
    for (model_id, cond), g in f.groupby(["model_id", "condition"], sort=True):
        level = float(g["ci_level"].iloc[0])
        header = ["language", f"slope [{level:.0%} CI] (n words)", "sentences", "intercept", "warnings"]
        rows = [[r["language"], fmt_estimate(r["slope"], r["ci_low"], r["ci_high"], r["n"]), fmt_n(r["n_clusters"]),
                 fmt_num(r["intercept"]), str(r["warnings"] or "")] for _, r in g.iterrows()]
        out.append((f"{model_id} — {cond}", header, rows,
                    ("Least-squares line of damage on alignment per language; CI from a bootstrap that resamples "
                     "whole sentences (percentile). Descriptive: the confirmatory test is a claim (mixed model).")))
    return out


def _tokenizer_tables(t: pd.DataFrame) -> list[tuple[str, list[str], list[list[str]], str]]:
    out = []
    for tok, g in t.groupby("tokenizer", sort=True):
        header = ["language", "premium [CI] (n items)", "CI method", "warnings"]
        rows = [[r["language"] + (" (ref)" if r["reference"] == r["language"] else ""),
                 fmt_estimate(r["value"], r["ci_low"], r["ci_high"], r["n"], always_ci=False),
                 "" if _is_missing(r["ci_method"]) else
                 f"{float(r['ci_level']):.0%} {r['ci_method']}" if not _is_missing(r["ci_level"]) else str(r["ci_method"]),
                 str(r["warnings"] or "")] for _, r in g.iterrows()]
        out.append((str(tok), header, rows,
                    "Total tokens of the language / total tokens of the reference on the same parallel items."))
    return out


def _license_rows(lic: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    header = ["corpus", "split", "version", "sha256", "languages", "license flags", "records"]
    def s(x: Any) -> str:
        return "" if _is_missing(x) else str(x)

    rows = [[s(r["corpus_id"]), s(r["split"]), s(r["version"]), s(r["sha256"]),
             ", ".join(r["languages"]) if "languages" in lic.columns else "",
             ", ".join(r["license_flags"]) or "none", str(r["n_records"])] for _, r in lic.iterrows()]
    return header, rows


def _flagged(lic: pd.DataFrame) -> list[str]:
    return [f"{r['corpus_id']} ({', '.join(r['license_flags'])})" for _, r in lic.iterrows() if r["license_flags"]]


def _provenance_items(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    def counts(d: Mapping[str, Any]) -> str:
        return ", ".join(f"{k}: {v}" for k, v in d.items()) or "none"

    return [
        ("report built with qd", f"{p['report_qd_version']} (git {p['report_git_sha'] or 'unknown'})"),
        ("records", f"{p['n_records']} ({p['n_measurements']} measurements, {p['n_failed']} failed)"),
        ("failures by error type", counts(p["failures"])),
        ("records by quantity", counts(p["quantities"])),
        ("qd versions that made the records", counts(p["record_versions"])),
        ("git shas that made the records", counts(p["record_git_shas"])),
    ]


def _model_rows(p: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "source", "revision", "sha256", "dtype", "parameters", "note", "records"]
    rows = [[str(m["model_id"]), str(m["source"]), str(m.get("revision") or ""), str(m.get("sha256") or ""),
             str(m.get("dtype") or ""), "" if m.get("n_params") is None else str(m["n_params"]),
             str(m.get("note") or ""), str(m["n_records"])] for m in p["models"]]
    return header, rows


def _settings_text(s: Mapping[str, Any]) -> str:
    base = s["baseline"]
    base_txt = (", ".join(f"{k} {v}" for k, v in base.items()) if isinstance(base, Mapping) else str(base))
    return (f"reference language {s['reference']}; baseline condition: {base_txt}; confidence level "
            f"{s['confidence_level']}; bootstrap resamples {s['n_resamples']} (alignment slopes "
            f"{s['alignment_n_resamples']}); seed {s['rng']}.")


# ----------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:1.5em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}th,td{border:1px solid #ccc;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f2f2f2}td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.85em;color:#555}
.caption{font-size:.85em;color:#555}.license-flag{background:#fff3cd;border:1px solid #e0c060;padding:.6em;
margin:1em 0}.omitted{color:#8a4b00}.note{font-size:.85em;color:#555}code{font-size:.9em}
"""

_CHECK_SCRIPT = """
(function(){
  function check(){
    var imgs=document.images, ok=0;
    for(var i=0;i<imgs.length;i++){ if(imgs[i].complete && imgs[i].naturalWidth>0){ ok++; } }
    document.body.setAttribute('data-images-total', String(imgs.length));
    document.body.setAttribute('data-images-ok', String(ok));
  }
  if(document.readyState==='complete'){ check(); } else { window.addEventListener('load', check); }
})();
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(fig.caption)}" '
            f'data-figure="{_e(fig.filename)}"><figcaption>{_e(fig.caption)}</figcaption></figure>')


def _html_notes(notes: Sequence[str]) -> str:
    if not notes:
        return ""
    return "<ul class=\"note\">" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"


def _headline_lines(data: ReportData) -> list[str]:
    """Headline sentences of the degradation section (one per model and condition) and the decision rule."""
    from qdstats.report.headlines import DecisionRule, headline_sentences

    d = data.degradation
    if d is None or d.empty or d["did"].isna().all():
        return []
    ref = data.settings.get("reference", "eng_Latn")
    lines = []
    many = d["model_label"].nunique() > 1
    for label, g in d.groupby("model_label", sort=True):
        for h in headline_sentences(g, reference=ref):
            lines.append(f"{label}, {h.sentence}" if many else h.sentence)
    level = float(d["ci_level"].iloc[0])
    return lines + [DecisionRule().text(reference=ref, level=level)]


def _section_tables(data: ReportData, name: str) -> list[tuple[str, list[str], list[list[str]], str]]:
    if name == "degradation" and data.degradation is not None:
        return _degradation_tables(data.degradation, data.settings.get("reference", "eng_Latn"))
    if name == "sensitivity" and data.sensitivity is not None:
        return _sensitivity_tables(data.sensitivity)
    if name == "alignment" and data.alignment_fits is not None:
        return _alignment_tables(data.alignment_fits)
    if name == "tokenizer" and data.tokenizer is not None:
        return _tokenizer_tables(data.tokenizer)
    return []


def render_html(
    data: ReportData,
    figures: Sequence[Figure],
    *,
    title: str,
    claims: pd.DataFrame | None = None,
    claims_note: str | None = None,
) -> str:
    """Self-contained HTML report.

    Parameters
    ----------
    data : ReportData
        Tables from :func:`qdstats.report.data.summarize_records`.
    figures : sequence of Figure
        PNG figures, embedded as base64 data URIs in their sections.
    title : str
        Page title.
    claims : pandas.DataFrame, optional
        Claims rows (:func:`claims_frame`); the section is omitted with a note when None.
    claims_note : str, optional
        Why the claims section is missing (e.g. the table could not be read).

    Returns
    -------
    str
        The HTML document (UTF-8 text). It references no external resource.

    Notes
    -----
    Numbers are rounded here (4 significant digits, p-values 2) and nowhere else. Not independently
    validated; the tests check each estimate's text with CI and n, the embedded images, and that headless
    Chromium loads the page and decodes every image.
    """
    parts = [(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
              f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
              f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
              f"<title>{_e(title)}</title><style>{_CSS}</style></head><body data-qd-report=\"1\">"),
             f"<h1>{_e(title)}</h1>"]
    flagged = _flagged(data.licenses)
    if flagged:
        parts.append(f"<p class=\"license-flag\"><strong>License restrictions:</strong> some records were measured "
                     f"on corpora with license flags: {_e('; '.join(flagged))}. See "
                     "<a href=\"#licenses\">Data and licenses</a>.</p>")
    parts.append(f"<p class=\"note\">Settings: {_e(_settings_text(data.settings))} Numbers are rounded to 4 "
                 "significant digits for display only; every estimate is shown with its CI and n.</p>")
    present = list(data.sections) + (["claims"] if claims is not None else [])
    toc = [s for s in ("degradation", "sensitivity", "alignment", "tokenizer", "claims") if s in present]
    toc += ["licenses", "notes", "provenance"]
    parts.append("<nav><ul>" + "".join(f"<li><a href=\"#{s}\">{_e(SECTION_TITLES[s])}</a></li>" for s in toc)
                 + "</ul></nav>")
    for name in ("degradation", "sensitivity", "alignment", "tokenizer"):
        if name in data.omitted:
            continue
        parts.append(f"<section id=\"{name}\"><h2>{_e(SECTION_TITLES[name])}</h2>")
        if name == "degradation":
            heads = _headline_lines(data)
            if heads:
                parts.append("<ul class=\"headlines\">" + "".join(f"<li>{_e(x)}</li>" for x in heads[:-1])
                             + f"</ul><p class=\"caption\">{_e(heads[-1])}</p>")
        parts += [_html_figure(f) for f in figures if f.section == name]
        for sub, header, rows, caption in _section_tables(data, name):
            parts.append(f"<h3>{_e(sub)}</h3>{_html_table(header, rows)}<p class=\"caption\">{_e(caption)}</p>")
        parts.append(_html_notes(data.notes.get(name, [])) + "</section>")
    if claims is not None:
        header, rows = _claims_rows(claims)
        parts.append(f"<section id=\"claims\"><h2>{_e(SECTION_TITLES['claims'])}</h2>{_html_table(header, rows)}"
                     "</section>")
    lh, lr = _license_rows(data.licenses)
    parts.append(f"<section id=\"licenses\"><h2>{_e(SECTION_TITLES['licenses'])}</h2>"
                 + (_html_table(lh, lr) if lr else "<p>No record names a corpus.</p>") + "</section>")
    omitted = dict(data.omitted)
    if claims is None:
        omitted["claims"] = claims_note or "no claims table given (--claims)."
    parts.append(f"<section id=\"notes\"><h2>{_e(SECTION_TITLES['notes'])}</h2>")
    if omitted:
        parts.append("<ul class=\"omitted\">" + "".join(
            f"<li><strong>{_e(SECTION_TITLES.get(k, k))}</strong> omitted: {_e(v)}</li>" for k, v in omitted.items())
            + "</ul>")
    else:
        parts.append("<p>No section omitted.</p>")
    parts.append("</section>")
    mh, mr = _model_rows(data.provenance)
    parts.append(f"<section id=\"provenance\"><h2>{_e(SECTION_TITLES['provenance'])}</h2><ul>"
                 + "".join(f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in _provenance_items(data.provenance))
                 + "</ul>" + (_html_table(mh, mr) if mr else "<p>No record names a model.</p>") + "</section>")
    parts.append(f"<script>{_CHECK_SCRIPT}</script></body></html>\n")
    return "".join(parts)


# ----------------------------------------------------------------------------- Markdown
def _md_cell(x: Any) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(
    data: ReportData,
    figures: Sequence[Figure],
    *,
    title: str,
    claims: pd.DataFrame | None = None,
    claims_note: str | None = None,
) -> str:
    """Markdown report; figures are referenced by their relative ``filename`` (written beside the file).

    Parameters
    ----------
    data, figures, title, claims, claims_note
        As in :func:`render_html`.

    Returns
    -------
    str
        The Markdown text.

    Notes
    -----
    Same content and rounding as :func:`render_html`; figures are written by the caller
    (:func:`qdstats.report.build_report`).
    """
    out = [f"# {title}", ""]
    flagged = _flagged(data.licenses)
    if flagged:
        out += [(f"> **License restrictions:** some records were measured on corpora with license flags: "
                 f"{'; '.join(flagged)}. See *Data and licenses*."), ""]
    out += [(f"Settings: {_settings_text(data.settings)} Numbers are rounded to 4 significant digits for display "
             "only; every estimate is shown with its CI and n."), ""]
    for name in ("degradation", "sensitivity", "alignment", "tokenizer"):
        if name in data.omitted:
            continue
        out += [f"## {SECTION_TITLES[name]}", ""]
        if name == "degradation":
            heads = _headline_lines(data)
            if heads:
                out += [f"- {x}" for x in heads[:-1]] + ["", f"*{heads[-1]}*", ""]
        for f in figures:
            if f.section == name:
                out += [f"![{f.caption}]({f.filename})", "", f"*{f.caption}*", ""]
        for sub, header, rows, caption in _section_tables(data, name):
            out += [f"### {sub}", "", _md_table(header, rows), "", f"*{caption}*", ""]
        out += [f"- {n}" for n in data.notes.get(name, [])] + ([""] if data.notes.get(name) else [])
    if claims is not None:
        header, rows = _claims_rows(claims)
        out += [f"## {SECTION_TITLES['claims']}", "", _md_table(header, rows), ""]
    lh, lr = _license_rows(data.licenses)
    out += [f"## {SECTION_TITLES['licenses']}", "", _md_table(lh, lr) if lr else "No record names a corpus.", ""]
    omitted = dict(data.omitted)
    if claims is None:
        omitted["claims"] = claims_note or "no claims table given (--claims)."
    out += [f"## {SECTION_TITLES['notes']}", ""]
    out += [f"- **{SECTION_TITLES.get(k, k)}** omitted: {v}" for k, v in omitted.items()] or ["No section omitted."]
    out += ["", f"## {SECTION_TITLES['provenance']}", ""]
    out += [f"- {k}: `{v}`" for k, v in _provenance_items(data.provenance)]
    mh, mr = _model_rows(data.provenance)
    out += ["", _md_table(mh, mr) if mr else "No record names a model.", ""]
    return "\n".join(out)
