"""The disparity card: one page that answers "which languages lose more than English under which compression, how
sure are we, and the likely why" (``qd card``; :func:`qdmodels.workflows.card.make_card` measures, this module
summarizes and renders).

Contents, in this order (:data:`CARD_SECTIONS`):

1. **headlines**: one sentence per condition from :func:`qdstats.report.headlines.headline_sentences`, with the
   decision rule stated;
2. **forest**: the difference in differences vs the reference language, sorted by effect (:func:`plots.did_forest`);
3. **ladder**: bits per byte per language along fp32 → INT8 → INT4 → INT3 (:func:`plots.bitwidth_ladder`);
4. **tokenizer**: tokenizer premium and bytes per token vs damage (:func:`plots.damage_scatter`);
5. **sensitivity**: a layer × language map shown as the difference vs the reference (proxy or measured sweep);
6. **precision**: the achieved CI half-width per language (the adaptive sample size);
7. **claims**: the rows of the claims table that the card's data touch;
8. **provenance** and **caveats**.

Statistics: Δ per language from :func:`qdstats.disparity.degradation` and the difference in differences of each
language against the reference on the items the two share (:func:`pairwise_did_table`, which calls
:func:`qdstats.report.data.degradation_table` on each pair: with a parallel corpus and fewer items for some
languages, every pair is still a joint, document-clustered paired design). Rounding happens only in the renderers.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from qdstats.records import Measurement, atomic_write_text
from qdstats.records.pairing import check_records
from qdstats.report import plots
from qdstats.report.data import degradation_table, provenance_summary
from qdstats.report.headlines import DecisionRule, Headline, condition_display, headline_sentences
from qdstats.report.render import _CSP, _CSS, Figure, _e, _html_figure, _html_table, _md_table, fmt_estimate, fmt_num

__all__ = [
    "CARD_SECTIONS",
    "CardData",
    "CardResult",
    "baseline_means",
    "build_card_data",
    "card_json",
    "claims_touched",
    "condition_bits",
    "ladder_table",
    "pairwise_did_table",
    "precision_table",
    "render_card_html",
    "render_card_markdown",
    "sensitivity_did_matrix",
    "write_card",
]

CARD_SECTIONS: tuple[str, ...] = ("headlines", "forest", "ladder", "tokenizer", "sensitivity", "precision", "claims",
                                  "provenance", "caveats")
_TITLES = {"headlines": "Headlines", "forest": "Difference in differences vs the reference, sorted by effect",
           "ladder": "Bit-width ladder", "tokenizer": "Tokenizer premium and bytes per token vs damage",
           "sensitivity": "Layer × language sensitivity (difference vs the reference)",
           "precision": "Achieved precision per language", "claims": "Claims these data touch",
           "provenance": "Provenance", "caveats": "Caveats"}


# ----------------------------------------------------------------------------- statistics
def condition_bits(key: str) -> float:
    """Nominal bits per weight of a condition key, for ordering: ``fp32`` 32, ``int4-...`` 4, ``gguf-q4_0`` 4.5,
    ``gguf-q8_0`` 8.5, ``gguf-f16`` 16; NaN when unknown.

    Examples
    --------
    >>> [condition_bits(k) for k in ("fp32", "int3-g64-sym", "gguf-q4_0", "gguf-q8_0")]
    [32.0, 3.0, 4.5, 8.5]
    """
    k = key.lower()
    if k == "fp32":
        return 32.0
    m = re.match(r"^int(\d+)-", k)
    if m:
        return float(m.group(1))
    m = re.match(r"^gguf-(?:q|iq|tq)(\d+)", k)
    if m:
        return float(m.group(1)) + 0.5
    m = re.match(r"^gguf-b?f(\d+)$", k)
    if m:
        return float(m.group(1))
    return math.nan


def pairwise_did_table(
    records: Sequence[Any],
    *,
    reference: str = "eng_Latn",
    confidence_level: float = 0.95,
    n_resamples: int = 1999,
    rng: int = 0,
) -> pd.DataFrame:
    """Δ per language and the difference in differences of each language vs ``reference`` on the items they share.

    Parameters
    ----------
    records : sequence of Measurement
        Per-item ``eval.bits_per_byte`` records under a baseline (fp32) and compressed conditions.
    reference : str, default 'eng_Latn'
    confidence_level, n_resamples, rng
        As in :func:`qdstats.report.data.degradation_table` (every pair uses the same seed).

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`~qdstats.report.data.degradation_table`, one row per (condition, language), plus
        ``did_half_width`` (half the DiD CI width) and ``n_reference`` (reference items in the pair). The reference's
        own row comes from all its items.

    Notes
    -----
    For each language L the records are restricted to L and to the reference items whose ids L has (all reference
    items when none is shared: a non-parallel corpus, resampled independently). With a parallel corpus whose items
    are added per language, every pair is a joint (paired) design on the same sentences.
    Validated against: :func:`~qdstats.report.data.degradation_table` on the same subset (exact, tests).
    """
    records = check_records(records)
    evals = [r for r in records if isinstance(r, Measurement) and r.quantity == "eval.bits_per_byte"]
    by_lang: dict[str, list[Measurement]] = {}
    for r in evals:
        by_lang.setdefault(str(r.language), []).append(r)
    if reference not in by_lang:
        raise ValueError(f"`reference` {reference!r} has no eval.bits_per_byte records; languages: {sorted(by_lang)}.")
    ref_recs = by_lang[reference]
    ref_ids = {r.item_id for r in ref_recs}
    frames = []
    ref_table, _ = degradation_table(ref_recs, reference=reference, confidence_level=confidence_level,
                                     n_resamples=n_resamples, rng=rng)
    ref_table = ref_table.assign(n_reference=ref_table["n"])
    frames.append(ref_table)
    for lang in sorted(by_lang):
        if lang == reference:
            continue
        ids = {r.item_id for r in by_lang[lang]}
        shared = ids & ref_ids
        ref_part = [r for r in ref_recs if r.item_id in shared] if shared else ref_recs
        t, _ = degradation_table([*ref_part, *by_lang[lang]], reference=reference, confidence_level=confidence_level,
                                 n_resamples=n_resamples, rng=rng)
        n_ref = len({r.item_id for r in ref_part})
        frames.append(t[t["language"] == lang].assign(n_reference=n_ref))
    out = pd.concat(frames, ignore_index=True)
    # a condition that only sets the scheme is named by its scheme key ('int4-g64-sym', not 'scheme=int4-g64-sym')
    out["condition_short"] = out["condition_short"].astype(str).str.replace(r"^scheme=([^,;\s]+)$", r"\1", regex=True)
    out["did_half_width"] = (out["did_ci_high"] - out["did_ci_low"]) / 2.0
    out.loc[out["language"] == reference, "did_half_width"] = 0.0
    order = {k: i for i, k in enumerate(sorted(dict.fromkeys(out["condition_short"]), key=_cond_sort))}
    out["_o"] = out["condition_short"].map(order)
    return out.sort_values(["_o", "language"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _cond_sort(key: str) -> tuple[int, float, str]:
    """RTN steps first by bits (high to low), then deployed formats by bits, then anything else."""
    b = condition_bits(key)
    kind = 0 if key.lower().startswith("int") else 1 if key.lower().startswith("gguf-") else 2
    return (kind, -b if not math.isnan(b) else 0.0, key)


def precision_table(did: pd.DataFrame, *, reference: str = "eng_Latn", target: float = 0.03) -> pd.DataFrame:
    """Achieved precision per language: the widest DiD CI half-width over the conditions, and whether it meets
    ``target``.

    Returns
    -------
    pandas.DataFrame
        One row per language: ``language, n, n_clusters, max_half_width, worst_condition, target, met``; the
        reference row has its item count and NaN half-width (it is the comparison point of every DiD).
    """
    rows = []
    for lang, g in did.groupby("language", sort=True):
        if lang == reference:
            rows.append({"language": lang, "n": int(g["n"].max()), "n_clusters": int(g["n_clusters"].max()),
                         "max_half_width": math.nan, "worst_condition": None, "target": target, "met": None})
            continue
        hw = g["did_half_width"].to_numpy(dtype=float)
        worst = int(np.nanargmax(hw)) if np.isfinite(hw).any() else 0
        m = float(np.nanmax(hw)) if np.isfinite(hw).any() else math.nan
        rows.append({"language": lang, "n": int(g["n"].max()), "n_clusters": int(g["n_clusters"].max()),
                     "max_half_width": m, "worst_condition": str(g["condition_short"].iloc[worst]), "target": target,
                     "met": bool(m <= target) if not math.isnan(m) else False})
    return pd.DataFrame(rows, columns=["language", "n", "n_clusters", "max_half_width", "worst_condition", "target",
                                       "met"])


def ladder_table(did: pd.DataFrame, *, steps: Sequence[str] | None = None) -> pd.DataFrame:
    """Long table for :func:`plots.bitwidth_ladder`: per language the baseline level and each RTN step's level.

    The level of a step is the language's baseline mean (``fp32_mean``) plus its Δ, on the same items; the CI is
    Δ's CI shifted by the baseline mean. ``steps`` defaults to the ``int*`` conditions, high to low bits.
    """
    need = ["condition_short", "language", "estimate", "ci_low", "ci_high", "baseline_mean"]
    missing = [c for c in need if c not in did.columns]
    if missing:
        raise ValueError(f"`did` lacks column(s) {missing}.")
    keys = list(steps) if steps is not None else sorted(
        (k for k in dict.fromkeys(did["condition_short"]) if k.lower().startswith("int")), key=_cond_sort)
    rows = []
    for lang in dict.fromkeys(did["language"]):
        g = did[did["language"] == lang]
        if g.empty:
            continue
        base = float(g["baseline_mean"].iloc[0])
        rows.append({"step": "fp32", "language": lang, "level": base, "ci_low": math.nan, "ci_high": math.nan})
        for k in keys:
            r = g[g["condition_short"] == k]
            if r.empty:
                continue
            r0 = r.iloc[0]
            rows.append({"step": condition_display(k).split(" (")[0], "language": lang,
                         "level": base + float(r0["estimate"]), "ci_low": base + float(r0["ci_low"]),
                         "ci_high": base + float(r0["ci_high"])})
    return pd.DataFrame(rows, columns=["step", "language", "level", "ci_low", "ci_high"])


def baseline_means(records: Sequence[Any], *, baseline_scheme: str = "fp32") -> dict[str, float]:
    """Mean baseline bits per byte per language over its items."""
    acc: dict[str, list[float]] = {}
    for r in records:
        if (isinstance(r, Measurement) and r.quantity == "eval.bits_per_byte"
                and r.condition.get("scheme") == baseline_scheme):
            acc.setdefault(str(r.language), []).append(r.value)
    return {k: float(np.mean(v)) for k, v in acc.items()}


def sensitivity_did_matrix(
    records: Sequence[Any], *, quantity: str, reference: str = "eng_Latn"
) -> pd.DataFrame:
    """Site × language matrix of ``value(language) − value(reference)`` per site, from per-site records.

    ``quantity`` is a per-(site, language) quantity (``sens.delta_bits_per_byte`` of a measured sweep: the matrix is
    then the per-layer difference in differences; or a proxy such as ``proxy.output_rel_mse``). The site is the
    record's ``site`` or ``condition['sites']``. Index: sites in natural layer order; columns: the non-reference
    languages.
    """
    from qdstats.report.data import sensitivity_table

    t, _ = sensitivity_table(records, quantity=quantity)
    if t.empty:
        raise ValueError(f"no {quantity} records with a site and a language.")
    mat = t.pivot_table(index="site", columns="language", values="value", aggfunc="mean", sort=False)
    order = list(dict.fromkeys(t["site"]))
    mat = mat.loc[order]
    if reference not in mat.columns:
        raise ValueError(f"`reference` {reference!r} has no {quantity} records; languages: {sorted(mat.columns)}.")
    out = mat.sub(mat[reference], axis=0).drop(columns=reference)
    return out[sorted(out.columns)].astype(float)


def claims_touched(
    claims: pd.DataFrame,
    specs: Sequence[Any],
    *,
    conditions: Sequence[str],
    languages: Sequence[str],
    family: str | None,
    quantity: str = "eval.bits_per_byte",
) -> pd.DataFrame:
    """Rows of a claims table whose test uses only what the card measured.

    A claim is touched when its spec selects ``quantity``, every condition its parameters name (``baseline``,
    ``treatment``, ``before``, ``after``) is a plain scheme among ``conditions`` (fp32 included; no calibration or
    protection), its ``model`` parameter equals ``family`` and its ``target``/``language`` parameter, if any, is one of
    ``languages``.
    """
    allowed = {"fp32", *conditions}
    ids = []
    for s in specs:
        y = getattr(s, "select", {}).get("y")
        if y is None or y.quantity != quantity:
            continue
        p = dict(getattr(s, "params", {}) or {})
        conds = [p[k] for k in ("baseline", "treatment", "before", "after") if k in p]
        if not conds or any(not isinstance(c, Mapping) or set(c) != {"scheme"} or c["scheme"] not in allowed
                            for c in conds):
            continue
        if family is not None and p.get("model") not in (None, family):
            continue
        lang = p.get("target", p.get("language"))
        if lang is not None and lang not in languages:
            continue
        ids.append(s.id)
    col = "claim_id" if "claim_id" in claims.columns else "id"
    return claims[claims[col].isin(ids)].reset_index(drop=True)


# ----------------------------------------------------------------------------- the card object
@dataclass(frozen=True)
class CardData:
    """Everything a card shows (full precision); built by the caller, rendered by :func:`write_card`."""

    title: str
    reference: str
    did: pd.DataFrame
    headlines: list[Headline]
    rule: DecisionRule
    precision: pd.DataFrame
    target: float
    ladder: pd.DataFrame | None = None
    tokenizer: pd.DataFrame | None = None
    sensitivity: pd.DataFrame | None = None
    sensitivity_label: str = ""
    claims: pd.DataFrame | None = None
    names: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CardResult:
    """Paths of the written card."""

    html: Path
    markdown: Path
    json: Path
    figures: tuple[Path, ...]
    sections: tuple[str, ...]


def _figures(card: CardData) -> list[Figure]:
    figs: list[Figure] = []
    ref = card.reference
    conds = [h.condition for h in card.headlines]
    figs.append(Figure("forest", "figures/did_forest.png",
                       f"Δ − Δ({ref}) in bit/byte with {card.meta.get('confidence_level', 0.95):.0%} CIs, one panel per "
                       f"condition, largest difference on top; grey band: the 'no different' margin ±{card.rule.margin:g}.",
                       plots.figure_png(plots.did_forest(card.did, reference=ref, names=card.names, conditions=conds,
                                                         margin=card.rule.margin))))
    if card.ladder is not None and not card.ladder.empty and card.ladder["step"].nunique() > 1:
        figs.append(Figure("ladder", "figures/ladder.png",
                           "Mean bits per byte per language: the fp32 baseline (open squares) and each RTN bit width on "
                           "the same items (whiskers: CI of the change from fp32).",
                           plots.figure_png(plots.bitwidth_ladder(card.ladder, reference=ref, names=card.names))))
    if card.tokenizer is not None and not card.tokenizer.empty:
        figs.append(Figure("tokenizer", "figures/tokenizer_vs_damage.png",
                           f"Tokenizer premium vs {ref} and bytes per token against the damage Δ − Δ({ref}) under "
                           f"{condition_display(str(card.tokenizer['condition'].iloc[0]))}; whiskers: DiD CIs.",
                           plots.figure_png(plots.damage_scatter(card.tokenizer, reference=ref))))
    if card.sensitivity is not None and not card.sensitivity.empty:
        figs.append(Figure("sensitivity", "figures/sensitivity.png", card.sensitivity_label,
                           plots.figure_png(plots.sensitivity_heatmap(card.sensitivity,
                                                                      unit=card.meta.get("sensitivity_unit", "")))))
    return figs


def _did_rows(card: CardData) -> tuple[list[str], list[list[str]]]:
    level = card.meta.get("confidence_level", 0.95)
    header = ["condition", "language", f"Δ bit/byte [{level:.0%} CI] (n)", f"Δ − Δ({card.reference}) [{level:.0%} CI]",
              "verdict"]
    verdicts = {(h.condition, lang): v for h in card.headlines for lang, v in h.verdicts.items()}
    rows = []
    for _, r in card.did.iterrows():
        is_ref = r["language"] == card.reference
        rows.append([condition_display(str(r["condition_short"])), str(r["language"]) + (" (ref)" if is_ref else ""),
                     fmt_estimate(r["estimate"], r["ci_low"], r["ci_high"], r["n"]),
                     "reference" if is_ref else fmt_estimate(r["did"], r["did_ci_low"], r["did_ci_high"],
                                                             r["n_reference"], n_label="n pairs"),
                     "" if is_ref else verdicts.get((str(r["condition_short"]), str(r["language"])), "")])
    return header, rows


def _precision_rows(card: CardData) -> tuple[list[str], list[list[str]]]:
    header = ["language", "items", "documents", "widest DiD CI half-width", "condition", f"≤ target {card.target:g}"]
    rows = [[str(r["language"]) + (" (ref)" if r["language"] == card.reference else ""), str(r["n"]),
             str(r["n_clusters"]), "—" if pd.isna(r["max_half_width"]) else fmt_num(r["max_half_width"]),
             r["worst_condition"] or "—",
             "—" if r["met"] is None or (isinstance(r["met"], float) and math.isnan(r["met"]))
             else ("yes" if r["met"] else "no")]
            for _, r in card.precision.iterrows()]
    return header, rows


def _claims_rows(card: CardData) -> tuple[list[str], list[list[str]]]:
    header = ["claim", "claims-table estimate [CI] (n)", "verdict", "this card: Δ − Δ(ref) [CI] (n)"]
    rows = []
    for _, r in (card.claims if card.claims is not None else pd.DataFrame()).iterrows():
        cid = str(r.get("claim_id", r.get("id")))
        parts = cid.split(".")
        mine = ""
        if len(parts) >= 4 and parts[0] == "H1":
            cond = next((k for k in dict.fromkeys(card.did["condition_short"])
                         if k.startswith(parts[1] + "-")), None)
            sel = card.did[(card.did["condition_short"] == cond) & (card.did["language"] == parts[-1])]
            if not sel.empty:
                s = sel.iloc[0]
                mine = fmt_estimate(s["did"], s["did_ci_low"], s["did_ci_high"], s["n"])
        rows.append([cid, fmt_estimate(r.get("estimate"), r.get("ci_low"), r.get("ci_high"), r.get("n")),
                     str(r.get("verdict", "")), mine])
    return header, rows


def _provenance_items(card: CardData) -> list[tuple[str, str]]:
    items = [(k, str(v)) for k, v in card.meta.get("provenance_items", {}).items()]
    p = card.provenance
    if p:
        items.append(("card built with qd", f"{p.get('report_qd_version')} (git {p.get('report_git_sha') or 'unknown'})"))
        items.append(("records", f"{p.get('n_records')} ({p.get('n_failed')} failed)"))
    return items


def render_card_markdown(card: CardData, figures: Sequence[Figure]) -> str:
    """The card as Markdown (figures referenced by relative path)."""
    out = [f"# {card.title}", ""]
    for line in card.meta.get("summary_lines", []):
        out.append(f"{line}  ")
    out.append("")
    out += [f"## {_TITLES['headlines']}", ""]
    out += [f"- **{h.sentence.split(': ', 1)[0]}**: {h.sentence.split(': ', 1)[1]}" for h in card.headlines]
    out += ["", f"*{card.rule.text(reference=card.names.get(card.reference, card.reference), level=card.meta.get('confidence_level', 0.95))}*", ""]
    for sec in ("forest", "ladder", "tokenizer", "sensitivity"):
        figs = [f for f in figures if f.section == sec]
        if sec in card.omitted and not figs:
            out += [f"## {_TITLES[sec]}", "", f"Omitted: {card.omitted[sec]}", ""]
            continue
        if not figs:
            continue
        out += [f"## {_TITLES[sec]}", ""]
        for f in figs:
            out += [f"![{f.caption}]({f.filename})", "", f"*{f.caption}*", ""]
        if sec == "forest":
            h, rows = _did_rows(card)
            out += [_md_table(h, rows), ""]
        if sec == "tokenizer" and card.tokenizer is not None:
            t = card.tokenizer
            out += [_md_table(["language", "premium", "bytes/token", "Δ − Δ(ref)"],
                              [[r["language"], fmt_num(r["premium"]), fmt_num(r["bytes_per_token"]), fmt_num(r["did"])]
                               for _, r in t.iterrows()]), ""]
    out += [f"## {_TITLES['precision']}", ""]
    h, rows = _precision_rows(card)
    out += [_md_table(h, rows), "", f"*{card.meta.get('precision_note', '')}*", ""]
    out += [f"## {_TITLES['claims']}", ""]
    if card.claims is not None and not card.claims.empty:
        h, rows = _claims_rows(card)
        out += [_md_table(h, rows), "", f"*{card.meta.get('claims_note', '')}*", ""]
    else:
        out += [card.omitted.get("claims", "No claim of the claims table uses only these conditions, languages and "
                                            "model family."), ""]
    out += [f"## {_TITLES['provenance']}", ""]
    out += [f"- {k}: `{v}`" for k, v in _provenance_items(card)] + [""]
    out += [f"## {_TITLES['caveats']}", ""] + [f"- {c}" for c in card.caveats] + [""]
    return "\n".join(out)


def render_card_html(card: CardData, figures: Sequence[Figure]) -> str:
    """The card as one self-contained HTML page (figures embedded)."""
    parts = [(f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
              f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">"
              f"<title>{_e(card.title)}</title><style>{_CSS}</style></head><body data-qd-card=\"1\">"),
             f"<h1>{_e(card.title)}</h1>"]
    if card.meta.get("summary_lines"):
        parts.append("<p class=\"note\">" + "<br>".join(_e(x) for x in card.meta["summary_lines"]) + "</p>")
    parts.append(f"<section id=\"headlines\"><h2>{_TITLES['headlines']}</h2><ul>"
                 + "".join(f"<li><strong>{_e(h.sentence.split(': ', 1)[0])}</strong>: {_e(h.sentence.split(': ', 1)[1])}</li>"
                           for h in card.headlines)
                 + f"</ul><p class=\"caption\">{_e(card.rule.text(reference=card.names.get(card.reference, card.reference), level=card.meta.get('confidence_level', 0.95)))}</p></section>")
    for sec in ("forest", "ladder", "tokenizer", "sensitivity"):
        figs = [f for f in figures if f.section == sec]
        if not figs and sec not in card.omitted:
            continue
        parts.append(f"<section id=\"{sec}\"><h2>{_e(_TITLES[sec])}</h2>")
        if not figs:
            parts.append(f"<p class=\"omitted\">Omitted: {_e(card.omitted[sec])}</p></section>")
            continue
        parts += [_html_figure(f) for f in figs]
        if sec == "forest":
            h, rows = _did_rows(card)
            parts.append(_html_table(h, rows))
        if sec == "tokenizer" and card.tokenizer is not None:
            parts.append(_html_table(["language", "premium", "bytes/token", "Δ − Δ(ref)"],
                                     [[r["language"], fmt_num(r["premium"]), fmt_num(r["bytes_per_token"]),
                                       fmt_num(r["did"])] for _, r in card.tokenizer.iterrows()]))
        parts.append("</section>")
    h, rows = _precision_rows(card)
    parts.append(f"<section id=\"precision\"><h2>{_TITLES['precision']}</h2>{_html_table(h, rows)}"
                 f"<p class=\"caption\">{_e(card.meta.get('precision_note', ''))}</p></section>")
    parts.append(f"<section id=\"claims\"><h2>{_TITLES['claims']}</h2>")
    if card.claims is not None and not card.claims.empty:
        h, rows = _claims_rows(card)
        parts.append(_html_table(h, rows) + f"<p class=\"caption\">{_e(card.meta.get('claims_note', ''))}</p>")
    else:
        parts.append(f"<p>{_e(card.omitted.get('claims', 'No claim of the claims table uses only these conditions, languages and model family.'))}</p>")
    parts.append("</section>")
    parts.append(f"<section id=\"provenance\"><h2>{_TITLES['provenance']}</h2><ul>"
                 + "".join(f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in _provenance_items(card))
                 + "</ul></section>")
    parts.append(f"<section id=\"caveats\"><h2>{_TITLES['caveats']}</h2><ul>"
                 + "".join(f"<li>{_e(c)}</li>" for c in card.caveats) + "</ul></section></body></html>\n")
    return "".join(parts)


def _jsonable(df: pd.DataFrame | None) -> list[dict[str, Any]] | None:
    if df is None:
        return None
    return json.loads(df.to_json(orient="records", double_precision=15))


def card_json(card: CardData) -> dict[str, Any]:
    """The card's content as a JSON-serializable dict (full precision; ``NaN`` as null)."""
    return {
        "schema_name": "qd.card", "schema_version": 1, "title": card.title, "reference": card.reference,
        "decision_rule": {**card.rule.model_dump(), "text": card.rule.text()},
        "headlines": [h.model_dump() for h in card.headlines],
        "did": _jsonable(card.did), "precision": _jsonable(card.precision), "precision_target": card.target,
        "ladder": _jsonable(card.ladder), "tokenizer": _jsonable(card.tokenizer),
        "sensitivity": None if card.sensitivity is None else {
            "label": card.sensitivity_label, "sites": list(map(str, card.sensitivity.index)),
            "languages": list(map(str, card.sensitivity.columns)),
            "values": [[None if not np.isfinite(v) else float(v) for v in row]
                       for row in card.sensitivity.to_numpy(dtype=float)]},
        "claims": _jsonable(card.claims), "meta": card.meta, "caveats": card.caveats, "omitted": card.omitted,
        "provenance": card.provenance,
    }


def write_card(card: CardData, out_dir: str | os.PathLike[str]) -> CardResult:
    """Write ``card.html`` (self-contained), ``card.md`` with ``figures/*.png`` and ``card.json`` into ``out_dir``.

    Returns
    -------
    CardResult
        The paths and the sections present (in :data:`CARD_SECTIONS` order).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = _figures(card)
    fig_paths = [atomic_write_text(out / f.filename, f.png) for f in figs]
    html_p = atomic_write_text(out / "card.html", render_card_html(card, figs))
    md_p = atomic_write_text(out / "card.md", render_card_markdown(card, figs))
    json_p = atomic_write_text(out / "card.json",
                               json.dumps(card_json(card), indent=1, default=str, allow_nan=False) + "\n")
    for p in (html_p, md_p, json_p, *fig_paths):
        os.chmod(p, 0o644)
    present = {"headlines", "precision", "claims", "provenance", "caveats", *(f.section for f in figs)}
    return CardResult(html=html_p, markdown=md_p, json=json_p, figures=tuple(fig_paths),
                      sections=tuple(s for s in CARD_SECTIONS if s in present))


def build_card_data(
    records: Sequence[Any],
    *,
    title: str,
    reference: str = "eng_Latn",
    target: float = 0.03,
    rule: DecisionRule | None = None,
    names: Mapping[str, str] | None = None,
    sensitivity_quantity: str | None = None,
    sensitivity_label: str = "",
    sensitivity_unit: str = "",
    tokenizer_condition: str | None = None,
    claims: pd.DataFrame | None = None,
    meta: Mapping[str, Any] | None = None,
    caveats: Sequence[str] = (),
    omitted: Mapping[str, str] | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 1999,
    rng: int = 0,
) -> CardData:
    """Compute every table of a card from its records (see the module docstring for the sections).

    Parameters
    ----------
    records : sequence of Measurement
        ``eval.bits_per_byte`` per item and condition; optionally ``tok.premium_vs_reference`` /
        ``tok.bytes_per_token`` per language and per-(site, language) sensitivity records.
    title : str
    reference, target, rule, names
        Reference language, the precision target (bit/byte), the headline rule, display names.
    sensitivity_quantity : str, optional
        Per-site quantity of the sensitivity map (None: no map).
    tokenizer_condition : str, optional
        Condition whose DiD is plotted against the tokenizer (default: the RTN condition with 4 bits, else the first).
    claims : pandas.DataFrame, optional
        Touched claims (:func:`claims_touched`).
    meta, caveats, omitted
        Shown as they are (summary lines, notes, provenance items; caveats; omitted section -> reason).
    confidence_level, n_resamples, rng
        Bootstrap settings of every CI (deterministic for a seed).

    Returns
    -------
    CardData
    """
    rule = rule or DecisionRule()
    names = dict(names or {})
    omitted = dict(omitted or {})
    did = pairwise_did_table(records, reference=reference, confidence_level=confidence_level,
                             n_resamples=n_resamples, rng=rng)
    base = baseline_means(records)
    did["baseline_mean"] = did["language"].map(base)
    conds = list(dict.fromkeys(did["condition_short"]))
    heads = headline_sentences(did, reference=reference, names=names, rule=rule, order=conds)
    prec = precision_table(did, reference=reference, target=target)
    ladder = ladder_table(did)
    tok = None
    prem = {r.language: r.value for r in records
            if isinstance(r, Measurement) and r.quantity == "tok.premium_vs_reference"}
    bpt = {r.language: r.value for r in records if isinstance(r, Measurement) and r.quantity == "tok.bytes_per_token"}
    if prem and bpt:
        tc = tokenizer_condition or next((k for k in conds if condition_bits(k) == 4.0 and k.startswith("int")),
                                         conds[0])
        sub = did[(did["condition_short"] == tc)]
        tok = pd.DataFrame({"language": sub["language"], "condition": tc, "premium": sub["language"].map(prem),
                            "bytes_per_token": sub["language"].map(bpt), "did": sub["did"],
                            "did_ci_low": sub["did_ci_low"], "did_ci_high": sub["did_ci_high"]}).reset_index(drop=True)
        tok.loc[tok["language"] == reference, ["did", "did_ci_low", "did_ci_high"]] = 0.0
    else:
        omitted.setdefault("tokenizer", "no tok.premium_vs_reference / tok.bytes_per_token records.")
    sens = None
    if sensitivity_quantity is not None:
        try:
            sens = sensitivity_did_matrix(records, quantity=sensitivity_quantity, reference=reference)
        except ValueError as exc:
            omitted.setdefault("sensitivity", str(exc))
    m = {"confidence_level": confidence_level, "n_resamples": n_resamples, "seed": rng,
         "sensitivity_unit": sensitivity_unit, **dict(meta or {})}
    return CardData(title=title, reference=reference, did=did, headlines=heads, rule=rule, precision=prec,
                    target=target, ladder=ladder, tokenizer=tok, sensitivity=sens, sensitivity_label=sensitivity_label,
                    claims=claims, names=names, meta=m, caveats=list(caveats), omitted=omitted,
                    provenance=provenance_summary(records))
