"""Select and summarize records into the tidy tables that a report shows.

Every function here takes a sequence of records (:class:`~qdstats.records.Measurement`; failures are
counted, never used as data) and returns a :class:`pandas.DataFrame` at full precision. Rounding happens
only in :mod:`qdstats.report.render`.

Sections and the records they use:

* **degradation** (:func:`degradation_table`): per-item ``eval.bits_per_byte`` records, paired within
  (model, language, item) between the full-precision baseline condition and every other condition;
  per-language Δ with a cluster-bootstrap CI from :func:`qdstats.disparity.degradation`, and the
  difference in differences against the reference language from :func:`qdstats.disparity.diff_in_diff`.
* **sensitivity** (:func:`sensitivity_table`, :func:`sensitivity_matrix`): ``sens.delta_bits_per_byte``
  records per (site, language).
* **alignment vs damage** (:func:`alignment_damage`): word-level damage (``eval.word_delta_nll``) paired
  with word-level alignment (an ``align.*`` record with the same language and item id, or an attribute of
  the damage record), with a per-language least-squares line whose slope gets a sentence-cluster
  bootstrap CI.
* **tokenizer premiums** (:func:`tokenizer_premiums`): ``tok.premium_vs_reference`` records, with the CI
  their producer stored in ``attributes``.
* **licenses** and **provenance** (:func:`license_table`, :func:`provenance_summary`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from qdstats.validation import check_confidence_level, check_int
from qdstats.disparity import auto_resampling, degradation, diff_in_diff
from qdstats.records import FailedMeasurement, Measurement
from qdstats.records.pairing import BASELINE_CONDITION, PARTIAL_KEYS as _PARTIAL_KEYS, check_records, condition_label, paired_items
from qdstats.records.provenance import git_sha, package_version
from qdstats.resampling import RngLike, as_generator, cluster_bootstrap_ci

__all__ = [
    "BASELINE_CONDITION",
    "FORMAT_FAMILIES",
    "SECTIONS",
    "ReportData",
    "alignment_damage",
    "condition_label",
    "degradation_table",
    "format_family",
    "license_table",
    "paired_items",
    "provenance_summary",
    "sensitivity_matrix",
    "sensitivity_table",
    "storage_key",
    "storage_table",
    "summarize_records",
    "tokenizer_premiums",
]


_LAYER_RE = re.compile(r"(\d+)")


# ----------------------------------------------------------------------------- helpers
def _measurements(records: Sequence[Any], quantity: str | tuple[str, ...]) -> list[Measurement]:
    qs = (quantity,) if isinstance(quantity, str) else quantity
    return [r for r in records if isinstance(r, Measurement) and r.quantity in qs]


def _model_id(r: Measurement) -> str:
    return r.model.model_id if r.model is not None else "(no model)"


def _model_key(r: Measurement) -> str:
    if r.model is None:
        return "(no model)"
    return f"{r.model.model_id}@{r.model.sha256 or r.model.revision}"


def _site_sort_key(site: str) -> tuple[Any, ...]:
    """Natural order of site names: ``layers.2`` before ``layers.10``; non-layer sites (embeddings) first."""
    parts = _LAYER_RE.split(site)
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def _join_warnings(ws: Sequence[str]) -> str:
    return " | ".join(dict.fromkeys(w for w in ws if w))


# ----------------------------------------------------------------------------- degradation
def degradation_table(
    records: Sequence[Any],
    *,
    reference: str = "eng_Latn",
    quantity: str = "eval.bits_per_byte",
    baseline: Mapping[str, Any] | None = None,
    confidence_level: float = 0.95,
    n_resamples: int = 1999,
    rng: RngLike = 0,
) -> tuple[pd.DataFrame, list[str]]:
    """Per-language degradation Δ (compressed minus baseline) with CIs, per (model, condition).

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Per-item evaluation records (see :func:`paired_items`).
    reference : str, default 'eng_Latn'
        Reference language for the difference in differences; when absent from a (model, condition)
        the DiD columns are NaN and a note says so.
    quantity : str, default 'eval.bits_per_byte'
        Per-item quantity.
    baseline : dict, optional
        Full-precision condition; default :data:`BASELINE_CONDITION`.
    confidence_level : float, default 0.95
        Nominal coverage of the bootstrap CIs.
    n_resamples : int, default 1999
        Bootstrap resamples (also permutation resamples for the DiD p-value).
    rng : int, numpy.random.Generator or None, default 0
        Seed; each (model, condition) gets its own child generator, so results do not depend on which
        other conditions are present.

    Returns
    -------
    (pandas.DataFrame, list of str)
        One row per (model, condition, language): ``model_id, model_key, model_label`` (the id, plus a short
        hash where one id has several pinned versions), ``condition, condition_short, language, is_reference, estimate, ci_low, ci_high, ci_level, ci_method, n, n_clusters, cluster,
        resampling, did, did_ci_low, did_ci_high, did_pvalue, warnings`` (full precision), and notes.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.
    ValueError
        Bad ``confidence_level`` or ``n_resamples``.

    Notes
    -----
    Δ and its interval come from :func:`qdstats.disparity.degradation`, the DiD from
    :func:`qdstats.disparity.diff_in_diff` (BCa cluster bootstrap; permutation p-value). The cluster is
    ``document_id`` when the records carry documents (several items per document), else the item.
    Resampling is ``'joint'`` when all languages share the same item ids (parallel corpus), else
    ``'independent'``.
    Validated against: closed form (Δ equals the mean paired difference, DiD the difference of Δs,
    rtol 1e-12); the intervals are those of :mod:`qdstats.disparity` (validated there).

    Examples
    --------
    >>> from qdstats.records import Measurement
    >>> recs = [Measurement(quantity="eval.bits_per_byte", value=1.0 + 0.01 * i + d, language="eng_Latn",
    ...                     item_id=f"s{i}", condition={"scheme": s, "protect": "none", "prune": "none"})
    ...         for i in range(12) for s, d in (("fp32", 0.0), ("int4-g64-sym", 0.1 + 0.001 * i))]
    >>> table, notes = degradation_table(recs, n_resamples=199)
    >>> round(float(table.loc[0, "estimate"]), 4)
    0.1055
    """
    records = check_records(records)
    level = check_confidence_level(confidence_level)
    n_res = check_int(n_resamples, "n_resamples", minimum=1)
    gen = as_generator(rng)
    frame, notes = paired_items(records, quantity=quantity, baseline=baseline)
    out_cols = ["model_id", "model_key", "condition", "condition_short", "language", "is_reference", "estimate",
                "ci_low", "ci_high", "ci_level", "ci_method", "n", "n_clusters", "cluster", "resampling", "did",
                "did_ci_low", "did_ci_high", "did_pvalue", "warnings"]
    if frame.empty:
        return pd.DataFrame(columns=out_cols[:2] + ["model_label"] + out_cols[2:]), notes
    groups = list(frame.groupby(["model_key", "condition"], sort=True))
    seeds = gen.spawn(len(groups))
    rows = []
    for ((model_key, cond), g), child in zip(groups, seeds):
        has_docs = bool((g["document_id"] != g["item_id"]).any())
        cluster = "document_id" if has_docs else None
        resampling = auto_resampling(g, language="language", item="item_id")
        deg = degradation(g, language="language", item="item_id", full="full", compressed="compressed",
                          cluster=cluster, resampling=resampling, confidence_level=level, n_resamples=n_res,
                          rng=child)
        did = None
        if reference in set(g["language"]):
            if g["language"].nunique() > 1:
                did = diff_in_diff(g, reference=reference, language="language", item="item_id", full="full",
                                   compressed="compressed", cluster=cluster, resampling=resampling,
                                   confidence_level=level, n_resamples=n_res, rng=child)
        else:
            notes.append(f"{g['model_id'].iloc[0]}, {g['condition_short'].iloc[0]}: reference language {reference} "
                         "not measured; no difference in differences.")
        label = f"{g['model_id'].iloc[0]}, {g['condition_short'].iloc[0]}"
        table_ws = list(deg.warnings) + (list(did.warnings) if did is not None else [])
        notes += [f"{label}: {w}" for w in dict.fromkeys(table_ws)]
        for lang, est in deg.results.items():
            row: dict[str, Any] = {
                "model_id": g["model_id"].iloc[0], "model_key": model_key, "condition": cond,
                "condition_short": g["condition_short"].iloc[0], "language": lang,
                "is_reference": lang == reference, "estimate": est.estimate,
                "ci_low": est.ci.low if est.ci else math.nan, "ci_high": est.ci.high if est.ci else math.nan,
                "ci_level": level, "ci_method": est.ci.method if est.ci else None, "n": est.n,
                "n_clusters": est.n_units.get("clusters", est.n), "cluster": cluster or "item_id",
                "resampling": resampling, "did": math.nan, "did_ci_low": math.nan, "did_ci_high": math.nan,
                "did_pvalue": math.nan,
            }
            ws = list(est.warnings)
            if did is not None and lang in did.results:
                d = did.results[lang]
                row.update(did=d.estimate, did_ci_low=d.ci.low if d.ci else math.nan,
                           did_ci_high=d.ci.high if d.ci else math.nan,
                           did_pvalue=d.pvalue if d.pvalue is not None else math.nan)
                ws += list(d.warnings)
            row["warnings"] = _join_warnings(ws)
            rows.append(row)
    table = pd.DataFrame(rows, columns=out_cols)
    table.insert(2, "model_label", _model_labels(table))
    return table, notes


#: Scheme-key prefix -> format family (the lines of :func:`qdstats.report.plots.did_vs_bits`), first match wins.
FORMAT_FAMILIES: tuple[tuple[str, str], ...] = (
    ("gguf-lcpp-", "llama.cpp presets"), ("gguf-q2_k", "llama.cpp k-quants"), ("gguf-q3_k", "llama.cpp k-quants"),
    ("gguf-q4_k", "llama.cpp k-quants"), ("gguf-q5_k", "llama.cpp k-quants"), ("gguf-q6_k", "llama.cpp k-quants"),
    ("gguf-iq", "llama.cpp k-quants"), ("gguf-", "GGUF blocks (gguf-py)"), ("gptq-", "GPTQ-style"),
    ("int", "round-to-nearest"), ("torchao-", "torchao"), ("quanto-", "optimum-quanto"), ("hqq-", "HQQ"),
    ("bnb-", "bitsandbytes"),
)


def format_family(scheme: str) -> str:
    """The format family of a scheme key (``'gguf-q4_k_m'`` -> ``'llama.cpp k-quants'``); ``'other'`` if unknown.

    Examples
    --------
    >>> format_family("gguf-q4_0"), format_family("gguf-q4_k_m"), format_family("int4-g64-sym")
    ('GGUF blocks (gguf-py)', 'llama.cpp k-quants', 'round-to-nearest')
    >>> format_family("int4-g64-sym-gptq")  # qdmodels.compress.gptq.gptq_scheme_key: the grid, then '-gptq'
    'GPTQ-style'
    """
    k = str(scheme).lower()
    if k.endswith("-gptq"):
        return "GPTQ-style"
    return next((fam for prefix, fam in FORMAT_FAMILIES if k.startswith(prefix)), "other")


def storage_table(records: Sequence[Any]) -> tuple[pd.DataFrame | None, list[str]]:
    """Measured storage cost per (model, condition): bits per weight of the converted tensors and of the whole model.

    Reads the model-level ``quant.bits_per_weight`` and ``quant.model_bits_per_weight`` records (``site`` None) that
    every quantization report writes (round-to-nearest, GGUF, llama.cpp, the PyTorch backends; scales and zero points
    included). Returns ``model_key, condition_key, scheme, family, bits_per_weight, model_bits_per_weight`` (one row per
    model and condition; ``condition_key`` is :func:`storage_key`, which pairs with ``storage_key`` of the
    degradation table's ``condition``), or None without such records, and notes (conflicting duplicates).
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    notes: list[str] = []
    for r in _measurements(records, ("quant.bits_per_weight", "quant.model_bits_per_weight")):
        # model-level records only: not per site, and not a GGUF layout's per-file or per-tensor records
        if r.site is not None or not r.condition or r.attributes.get("scope") in ("gguf_file", "gguf_tensor"):
            continue
        key = (_model_key(r), storage_key(r.condition))
        row = rows.setdefault(key, {"model_key": key[0], "condition_key": key[1],
                                    "scheme": str(r.condition.get("scheme")),
                                    "family": format_family(str(r.condition.get("scheme"))),
                                    "bits_per_weight": math.nan, "model_bits_per_weight": math.nan})
        col = "bits_per_weight" if r.quantity == "quant.bits_per_weight" else "model_bits_per_weight"
        if math.isfinite(row[col]) and row[col] != float(r.value):
            notes.append(f"{key[1]}: two different {r.quantity} records ({row[col]!r} and {float(r.value)!r}); "
                         "the first is kept.")
            continue
        row[col] = float(r.value)
    if not rows:
        return None, notes
    return pd.DataFrame(list(rows.values())).sort_values(["model_key", "bits_per_weight"], ignore_index=True), notes


def storage_key(condition: Mapping[str, Any] | str) -> str:
    """The key that pairs a condition's storage records with its evaluation records: ``scheme``, ``protect`` and
    ``prune`` (missing ones ``'none'``), whatever else the records carry (``backend`` names the library the scheme
    already implies; reports and sweeps differ in which keys they write). Takes a condition or its
    :func:`condition_label`.

    Examples
    --------
    >>> storage_key({"scheme": "gguf-q4_0", "protect": "none", "backend": "gguf-py"})
    'protect=none,prune=none,scheme=gguf-q4_0'
    >>> storage_key("backend=gguf-py,protect=none,prune=none,scheme=gguf-q4_0")
    'protect=none,prune=none,scheme=gguf-q4_0'
    """
    if isinstance(condition, str):
        condition = dict(part.partition("=")[::2] for part in condition.split(",") if part)
    c = {k: str(condition.get(k, "none")) for k in ("scheme", "protect", "prune")}
    return condition_label(c)


def _model_labels(table: pd.DataFrame) -> list[str]:
    """``model_id``, or ``model_id@<first 12 of sha/revision>`` where one id has several pinned versions."""
    n_keys = table.groupby("model_id")["model_key"].nunique()
    return [mid if n_keys[mid] <= 1 else f"{mid}@{key.rsplit('@', 1)[-1][:12]}"
            for mid, key in zip(table["model_id"], table["model_key"])]


# ----------------------------------------------------------------------------- sensitivity
def sensitivity_table(
    records: Sequence[Any], *, quantity: str = "sens.delta_bits_per_byte"
) -> tuple[pd.DataFrame, list[str]]:
    """Long table of layer (site) sensitivity per language.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records; ``quantity`` measurements with a ``language`` and a site are used. The site is the
        record's ``site``, else its ``condition['sites']`` (as ``qdmodels.eval.sensitivity.sweep_layers``
        writes it); that key is dropped from the condition label, so one sweep is one matrix.
    quantity : str, default 'sens.delta_bits_per_byte'
        The sensitivity quantity.

    Returns
    -------
    (pandas.DataFrame, list of str)
        One row per (model, condition, site, language): ``model_id, model_key, condition, site, language,
        value, n, ci_low, ci_high`` (from ``attributes`` when the producer stored a CI, else NaN),
        ``n_records`` and ``warnings``; and notes. A cell measured by several records shows their mean
        (``n_records`` > 1) and a note says so.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.

    Notes
    -----
    Not independently validated: a selection, no estimation (tested for exact equality with the input).
    """
    records = check_records(records)
    rows = []
    for r in _measurements(records, quantity):
        site = r.site or next((str(r.condition[k]) for k in _PARTIAL_KEYS if r.condition.get(k) is not None), None)
        if site is None or r.language is None:
            continue
        cond = {k: v for k, v in r.condition.items() if k not in _PARTIAL_KEYS}
        rows.append({
            "model_id": _model_id(r), "model_key": _model_key(r), "condition": condition_label(cond),
            "site": site, "language": r.language, "value": r.value, "n": r.n,
            "ci_low": _as_float(r.attributes.get("ci_low")), "ci_high": _as_float(r.attributes.get("ci_high")),
            "warnings": _join_warnings(r.warnings),
        })
    cols = ["model_id", "model_key", "condition", "site", "language", "value", "n", "ci_low", "ci_high",
            "n_records", "warnings"]
    notes: list[str] = []
    if not rows:
        return pd.DataFrame(columns=cols), notes
    df = pd.DataFrame(rows)
    keys = ["model_id", "model_key", "condition", "site", "language"]
    counts = df.groupby(keys).size()
    if (counts > 1).any():
        notes.append(f"{int((counts > 1).sum())} (site, language) cells have several {quantity} records; the mean is "
                     "shown and the CI dropped for those cells.")
    agg = df.groupby(keys, sort=False).agg(
        value=("value", "mean"), n=("n", lambda s: s.iloc[0] if len(s) == 1 else None),
        ci_low=("ci_low", lambda s: s.iloc[0] if len(s) == 1 else math.nan),
        ci_high=("ci_high", lambda s: s.iloc[0] if len(s) == 1 else math.nan),
        n_records=("value", "size"), warnings=("warnings", lambda s: _join_warnings(list(s))),
    ).reset_index()
    agg["_order"] = [_site_sort_key(s) for s in agg["site"]]
    agg = agg.sort_values(["model_id", "model_key", "condition", "_order", "language"], kind="stable")
    return agg.drop(columns="_order").reset_index(drop=True)[cols], notes


def sensitivity_matrix(table: pd.DataFrame, *, model_key: str, condition: str) -> pd.DataFrame:
    """Site x language matrix of one (model, condition) from :func:`sensitivity_table`.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`sensitivity_table`.
    model_key, condition : str
        The (model, condition) to pivot.

    Returns
    -------
    pandas.DataFrame
        Index: sites in natural layer order; columns: languages (sorted); NaN where not measured.

    Raises
    ------
    ValueError
        No rows for that (model, condition).
    """
    sub = table[(table["model_key"] == model_key) & (table["condition"] == condition)]
    if sub.empty:
        raise ValueError(f"`model_key`/`condition` ({model_key!r}, {condition!r}) select no rows of `table`.")
    mat = sub.pivot(index="site", columns="language", values="value")
    order = sorted(mat.index, key=_site_sort_key)
    return mat.loc[order, sorted(mat.columns)].astype(float)


# ----------------------------------------------------------------------------- alignment vs damage
def _as_float(v: Any) -> float:
    if v is None or isinstance(v, bool):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _sentence_of(r: Measurement) -> str:
    for k in ("sentence_id", "item_id_sentence", "sentence"):
        if k in r.attributes and r.attributes[k] is not None:
            return str(r.attributes[k])
    iid = r.item_id or ""
    return iid.rsplit(":", 1)[0] if ":" in iid else iid


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        return math.nan
    return float(xc @ (y - y.mean()) / sxx)


def alignment_damage(
    records: Sequence[Any],
    *,
    alignment: str = "align.boundary_f1",
    damage: str = "eval.word_delta_nll",
    confidence_level: float = 0.95,
    n_resamples: int = 999,
    rng: RngLike = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Word-level alignment paired with word-level damage, and a per-language least-squares line.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records. Damage: ``damage`` measurements with an ``item_id`` (a word id such as ``'s17:3'``).
        Alignment: the damage record's attribute named ``alignment`` or, without its ``align.`` prefix,
        e.g. ``boundary_f1`` (as ``qdmodels.tokenization.attribution.word_damage_records`` writes it); else
        the ``alignment`` measurements with the same ``language`` and ``item_id`` (and the same
        ``model_id`` when one exists). A word matched to several different values is left out with a note.
    alignment : str, default 'align.boundary_f1'
        Alignment quantity (or attribute) name.
    damage : str, default 'eval.word_delta_nll'
        Damage quantity.
    confidence_level : float, default 0.95
        Coverage of the slope CI.
    n_resamples : int, default 999
        Bootstrap resamples for the slope CI.
    rng : int, numpy.random.Generator or None, default 0
        Seed.

    Returns
    -------
    (pairs, fits, notes)
        ``pairs``: one row per word: ``model_id, condition, language, item_id, sentence_id, alignment,
        damage``. ``fits``: one row per (model, condition, language): ``intercept, slope, ci_low, ci_high,
        ci_level, ci_method, n`` (words), ``n_clusters`` (sentences), ``warnings``. ``notes``: why rows were
        left out.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.
    ValueError
        Bad ``confidence_level`` or ``n_resamples``.

    Notes
    -----
    Words of one sentence share context, so the slope's CI comes from a bootstrap that resamples whole
    sentences (:func:`qdstats.resampling.cluster_bootstrap_ci`, percentile; the sentence is
    ``attributes['sentence_id']``, else the part of the item id before its last ``':'``). With fewer than 3
    words or a constant alignment the slope is NaN with a warning. This is a descriptive line for the
    plot; the confirmatory test of H2 (mixed model with frequency, length, position) belongs in a claim.
    Validated against: closed form (slope equals ``numpy.polyfit`` degree 1, rtol 1e-10); interval not
    independently validated beyond the cluster bootstrap engine.
    """
    records = check_records(records)
    level = check_confidence_level(confidence_level)
    n_res = check_int(n_resamples, "n_resamples", minimum=1)
    gen = as_generator(rng)
    notes: list[str] = []
    dmg = [r for r in _measurements(records, damage) if r.item_id is not None and r.language is not None]
    pair_cols = ["model_id", "condition", "language", "item_id", "sentence_id", "alignment", "damage"]
    fit_cols = ["model_id", "condition", "language", "intercept", "slope", "ci_low", "ci_high", "ci_level",
                "ci_method", "n", "n_clusters", "warnings"]
    if not dmg:
        return pd.DataFrame(columns=pair_cols), pd.DataFrame(columns=fit_cols), notes
    al_recs = [r for r in _measurements(records, alignment) if r.item_id is not None and r.language is not None]
    by_model: dict[tuple[Any, ...], list[float]] = {}
    by_item: dict[tuple[Any, ...], list[float]] = {}
    for r in al_recs:
        if r.model is not None:
            by_model.setdefault((r.model.model_id, r.language, r.item_id), []).append(r.value)
        by_item.setdefault((r.language, r.item_id), []).append(r.value)
    attr_names = (alignment, alignment.split(".", 1)[1]) if alignment.startswith("align.") else (alignment,)
    rows = []
    n_missing = n_ambiguous = 0
    for r in dmg:
        a = math.nan
        name = next((k for k in attr_names if k in r.attributes), None)
        if name is not None:  # the producer already matched the word's alignment
            a = _as_float(r.attributes[name])
        elif al_recs:
            vals = by_model.get((r.model.model_id if r.model else None, r.language, r.item_id))
            if vals is None:
                vals = by_item.get((r.language, r.item_id), [])
            if len(set(vals)) == 1:
                a = vals[0]
            elif len(vals) > 1:
                n_ambiguous += 1
        if math.isnan(a) or math.isnan(r.value):
            n_missing += 1
            continue
        rows.append({"model_id": _model_id(r), "condition": condition_label(r.condition), "language": r.language,
                     "item_id": r.item_id, "sentence_id": _sentence_of(r), "alignment": a, "damage": r.value})
    if n_ambiguous:
        notes.append(f"{n_ambiguous} {damage} words match several different {alignment} values (several "
                     "tokenizers or alignment conditions, e.g. isolated vs in context) and are left out; put the "
                     "intended value in the damage records' attributes or pass records of one alignment condition.")
    if n_missing - n_ambiguous > 0:
        notes.append(f"{n_missing - n_ambiguous} {damage} words have no {alignment} value (or a NaN) and are "
                     "left out.")
    if not rows:
        return pd.DataFrame(columns=pair_cols), pd.DataFrame(columns=fit_cols), notes
    pairs = pd.DataFrame(rows, columns=pair_cols).sort_values(
        ["model_id", "condition", "language", "item_id"], kind="stable").reset_index(drop=True)
    groups = list(pairs.groupby(["model_id", "condition", "language"], sort=True))
    children = gen.spawn(len(groups))
    fits = []
    for ((model_id, cond, lang), g), child in zip(groups, children):
        x = g["alignment"].to_numpy(dtype=float)
        y = g["damage"].to_numpy(dtype=float)
        n = len(x)
        ncl = int(g["sentence_id"].nunique())
        ws: list[str] = []
        slope = _slope(x, y) if n >= 3 else math.nan
        lo = hi = math.nan
        method = "cluster-bootstrap-percentile"
        if n < 3:
            ws.append(f"{lang}: fewer than 3 words; no line fitted.")
        elif math.isnan(slope):
            ws.append(f"{lang}: alignment is constant; the slope is undefined.")
        elif ncl < 2:
            ws.append(f"{lang}: all words come from one sentence; no cluster-bootstrap CI.")
        else:
            idx = np.arange(n, dtype=float)

            def stat(v: np.ndarray, _ids: np.ndarray, x: np.ndarray = x, y: np.ndarray = y) -> float:
                i = v.astype(int)
                return _slope(x[i], y[i])

            import warnings as _w

            with _w.catch_warnings(record=True) as caught:
                _w.simplefilter("always")
                boot = cluster_bootstrap_ci(idx, g["sentence_id"].to_numpy(), statistic=stat, kind="percentile",
                                            confidence_level=level, n_resamples=n_res, rng=child)
            lo, hi = boot.ci.low, boot.ci.high
            ws += list(boot.warnings)
            ws += [f"{lang}: {c.message}" for c in caught if str(c.message) not in boot.warnings]
        intercept = float(y.mean() - slope * x.mean()) if not math.isnan(slope) else math.nan
        fits.append({"model_id": model_id, "condition": cond, "language": lang, "intercept": intercept,
                     "slope": slope, "ci_low": lo, "ci_high": hi, "ci_level": level, "ci_method": method, "n": n,
                     "n_clusters": ncl, "warnings": _join_warnings(ws)})
    return pairs, pd.DataFrame(fits, columns=fit_cols), notes


# ----------------------------------------------------------------------------- tokenizer premiums
def tokenizer_premiums(
    records: Sequence[Any], *, quantity: str = "tok.premium_vs_reference"
) -> tuple[pd.DataFrame, list[str]]:
    """Tokenizer premium per (tokenizer, language), with the CI stored by its producer.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records; per-language ``quantity`` measurements are used.
    quantity : str, default 'tok.premium_vs_reference'
        Premium quantity (``'tok.byte_premium_vs_reference'`` also works).

    Returns
    -------
    (pandas.DataFrame, list of str)
        One row per (tokenizer, language): ``tokenizer, language, reference`` (``attributes['reference']``),
        ``value, ci_low, ci_high, ci_level, ci_method`` (NaN/None when the producer stored none, e.g. for
        the reference itself), ``n`` and ``warnings``; and notes.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.

    Notes
    -----
    Not independently validated: a selection of stored values (tested for exact equality with the input).
    """
    records = check_records(records)
    rows = []
    for r in _measurements(records, quantity):
        if r.language is None:
            continue
        rows.append({
            "tokenizer": _model_id(r), "language": r.language, "reference": r.attributes.get("reference"),
            "value": r.value, "ci_low": _as_float(r.attributes.get("ci_low")),
            "ci_high": _as_float(r.attributes.get("ci_high")), "ci_level": _as_float(r.attributes.get("ci_level")),
            "ci_method": r.attributes.get("ci_method"), "n": r.n, "warnings": _join_warnings(r.warnings),
        })
    cols = ["tokenizer", "language", "reference", "value", "ci_low", "ci_high", "ci_level", "ci_method", "n",
            "warnings"]
    notes: list[str] = []
    if not rows:
        return pd.DataFrame(columns=cols), notes
    df = pd.DataFrame(rows, columns=cols)
    dup = df.duplicated(["tokenizer", "language"], keep=False)
    if dup.any():
        notes.append(f"{int(dup.sum())} {quantity} records repeat a (tokenizer, language); only the first is shown.")
        df = df[~df.duplicated(["tokenizer", "language"], keep="first")]
    return df.sort_values(["tokenizer", "language"], kind="stable").reset_index(drop=True), notes


# ----------------------------------------------------------------------------- licenses, provenance
def license_table(records: Sequence[Any]) -> pd.DataFrame:
    """Corpora the records were measured on, with their license flags.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records; their ``corpus`` references are collected.

    Returns
    -------
    pandas.DataFrame
        One row per distinct corpus reference: ``corpus_id, split, version, sha256, languages`` (the languages of
        the records that name it: each NTREX file has its own sha256), ``license_flags`` (tuple),
        ``n_records``; sorted by corpus id. Empty when no record names a corpus.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.

    Notes
    -----
    Not independently validated: a count of the records' corpus references (tested against a direct count).
    """
    records = check_records(records)
    counts: Counter[tuple[Any, ...]] = Counter()
    langs: dict[tuple[Any, ...], set[str]] = {}
    for r in records:
        c = r.corpus
        if c is not None:
            key = (c.corpus_id, c.split, c.version, c.sha256, tuple(c.license_flags))
            counts[key] += 1
            if getattr(r, "language", None):
                langs.setdefault(key, set()).add(str(r.language))
    rows = [{"corpus_id": k[0], "split": k[1], "version": k[2], "sha256": k[3],
             "languages": tuple(sorted(langs.get(k, ()))), "license_flags": k[4], "n_records": n}
            for k, n in counts.items()]
    cols = ["corpus_id", "split", "version", "sha256", "languages", "license_flags", "n_records"]
    return pd.DataFrame(rows, columns=cols).sort_values(["corpus_id", "split"], kind="stable",
                                                         key=lambda s: s.astype(str)).reset_index(drop=True)


def provenance_summary(records: Sequence[Any]) -> dict[str, Any]:
    """What made the records and the report: versions, git shas, record counts, models.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records.

    Returns
    -------
    dict
        ``report_qd_version``, ``report_git_sha`` (of the code building the report), ``n_records``,
        ``n_measurements``, ``n_failed``, ``failures`` (error type -> count), ``quantities`` (quantity ->
        count), ``record_versions`` / ``record_git_shas`` (value -> count, from the records' provenance),
        ``models`` (one dict per distinct model: ``model_id, source, revision, sha256, dtype, n_params,
        family, note, n_records``).

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.

    Notes
    -----
    Not independently validated: counts of record fields (tested against direct counts). The report's own
    git sha comes from :func:`qdstats.records.provenance.git_sha` (``QD_GIT_SHA`` overrides it).
    """
    records = check_records(records)
    quantities: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    shas: Counter[str] = Counter()
    models: dict[str, dict[str, Any]] = {}
    for r in records:
        if isinstance(r, FailedMeasurement):
            failures[r.error.error_type] += 1
        else:
            quantities[r.quantity] += 1
        if r.provenance is not None:
            versions[r.provenance.version] += 1
            shas[r.provenance.git_sha or "(unknown)"] += 1
        if r.model is not None:
            key = json.dumps(r.model.model_dump(mode="json"), sort_keys=True)
            entry = models.setdefault(key, {**r.model.model_dump(mode="json"), "n_records": 0})
            entry["n_records"] += 1
    return {
        "report_qd_version": package_version(),
        "report_git_sha": git_sha(),
        "n_records": len(records),
        "n_measurements": len(records) - sum(failures.values()),
        "n_failed": sum(failures.values()),
        "failures": dict(sorted(failures.items())),
        "quantities": dict(sorted(quantities.items())),
        "record_versions": dict(sorted(versions.items())),
        "record_git_shas": dict(sorted(shas.items())),
        "models": sorted(models.values(), key=lambda m: (m["model_id"], str(m.get("sha256")), str(m.get("revision")))),
    }


# ----------------------------------------------------------------------------- everything at once
SECTIONS: tuple[str, ...] = ("degradation", "sensitivity", "alignment", "tokenizer")
"""Data sections of a report, in display order (claims, licenses and provenance are always handled)."""


@dataclass(frozen=True)
class ReportData:
    """All tables of a report (full precision), plus why any section is missing.

    Attributes
    ----------
    degradation : pandas.DataFrame or None
        :func:`degradation_table` output; None when the section is omitted.
    sensitivity : pandas.DataFrame or None
        :func:`sensitivity_table` output.
    alignment_pairs, alignment_fits : pandas.DataFrame or None
        :func:`alignment_damage` outputs.
    tokenizer : pandas.DataFrame or None
        :func:`tokenizer_premiums` output.
    licenses : pandas.DataFrame
        :func:`license_table` output.
    provenance : dict
        :func:`provenance_summary` output.
    omitted : dict of str to str
        Section name -> reason it is omitted (no records, or the error that stopped it).
    notes : dict of str to list of str
        Section name -> notes (items left out, small-sample warnings...).
    settings : dict
        Options used (reference, baseline, confidence level, resamples, seed, quantities).
    storage : pandas.DataFrame or None
        :func:`storage_table` output (measured bits per weight per model and condition), when records carry it.
    """

    degradation: pd.DataFrame | None
    sensitivity: pd.DataFrame | None
    alignment_pairs: pd.DataFrame | None
    alignment_fits: pd.DataFrame | None
    tokenizer: pd.DataFrame | None
    licenses: pd.DataFrame
    provenance: dict[str, Any]
    omitted: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    storage: pd.DataFrame | None = None

    @property
    def sections(self) -> tuple[str, ...]:
        """Data sections present, in display order."""
        return tuple(s for s in SECTIONS if s not in self.omitted)


def summarize_records(
    records: Sequence[Any],
    *,
    reference: str = "eng_Latn",
    baseline: Mapping[str, Any] | None = None,
    quantity: str = "eval.bits_per_byte",
    sensitivity_quantity: str = "sens.delta_bits_per_byte",
    alignment: str = "align.boundary_f1",
    damage: str = "eval.word_delta_nll",
    premium_quantity: str = "tok.premium_vs_reference",
    confidence_level: float = 0.95,
    n_resamples: int = 1999,
    rng: int | None = 0,
    strict: bool = False,
) -> ReportData:
    """Compute every table of a report; a section without records is omitted with a reason, never an error.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records of any mix of quantities.
    reference : str, default 'eng_Latn'
        Reference language (difference in differences, marked in plots).
    baseline : dict, optional
        Full-precision condition; default :data:`BASELINE_CONDITION`.
    quantity, sensitivity_quantity, alignment, damage, premium_quantity : str
        Quantities used by the degradation, sensitivity, alignment-vs-damage and tokenizer sections.
    confidence_level : float, default 0.95
        Coverage of every computed CI.
    n_resamples : int, default 1999
        Bootstrap (and permutation) resamples.
    rng : int or None, default 0
        Seed; every section derives its own generator from it, so a section's numbers do not depend on
        which other sections are present.
    strict : bool, default False
        Re-raise an error inside a section instead of omitting the section with the error as its reason
        (for tests and debugging).

    Returns
    -------
    ReportData
        Tables per section, ``omitted`` (section -> reason), ``notes`` and ``settings``.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records; ``rng`` is not an int or None.
    ValueError
        Bad ``confidence_level`` or ``n_resamples``.

    Notes
    -----
    The alignment-slope CIs use ``min(n_resamples, 999)`` resamples (their statistic runs in a Python
    loop); ``settings['alignment_n_resamples']`` records the number used. Validated against: see the
    section functions (:func:`degradation_table`, :func:`alignment_damage`...); this function only
    dispatches.

    Examples
    --------
    >>> from qdstats.records import Measurement
    >>> recs = [Measurement(quantity="tok.premium_vs_reference", value=v, language=lang, n=10)
    ...         for lang, v in (("eng_Latn", 1.0), ("heb_Hebr", 4.2))]
    >>> data = summarize_records(recs)
    >>> data.sections
    ('tokenizer',)
    >>> data.omitted["sensitivity"]
    "no sens.delta_bits_per_byte records with a site (or condition 'sites') and a language."
    """
    records = check_records(records)
    level = check_confidence_level(confidence_level)
    n_res = check_int(n_resamples, "n_resamples", minimum=1)
    if rng is not None and (isinstance(rng, bool) or not isinstance(rng, (int, np.integer))):
        raise TypeError(f"`rng` must be an int seed or None (each section derives its own generator); got {rng!r}.")
    seeds = np.random.SeedSequence(None if rng is None else int(rng)).spawn(len(SECTIONS))
    omitted: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    tables: dict[str, Any] = {}

    def run(name: str, fn: Any, empty_reason: str) -> None:
        try:
            out = fn()
        except Exception as exc:  # a failing section never aborts the report
            if strict:
                raise
            omitted[name] = f"section failed: {type(exc).__name__}: {exc}"
            return
        *frames, sec_notes = out
        notes[name] = list(sec_notes)
        tables[name] = frames
        if frames[0] is None or frames[0].empty:
            omitted[name] = empty_reason

    run("degradation", lambda: degradation_table(
        records, reference=reference, quantity=quantity, baseline=baseline, confidence_level=level,
        n_resamples=n_res, rng=np.random.default_rng(seeds[0])),
        f"no paired per-item {quantity} records (a baseline condition and at least one compressed condition).")
    run("sensitivity", lambda: sensitivity_table(records, quantity=sensitivity_quantity),
        f"no {sensitivity_quantity} records with a site (or condition 'sites') and a language.")
    run("alignment", lambda: alignment_damage(
        records, alignment=alignment, damage=damage, confidence_level=level, n_resamples=min(n_res, 999),
        rng=np.random.default_rng(seeds[2])),
        f"no word-level {damage} records paired with {alignment} values.")
    run("tokenizer", lambda: tokenizer_premiums(records, quantity=premium_quantity),
        f"no per-language {premium_quantity} records.")
    storage, _ = storage_table(records)

    def get(name: str, i: int = 0) -> pd.DataFrame | None:
        return None if name in omitted else tables[name][i]

    base = dict(BASELINE_CONDITION if baseline is None else baseline)
    return ReportData(
        degradation=get("degradation"), sensitivity=get("sensitivity"), alignment_pairs=get("alignment"),
        alignment_fits=get("alignment", 1), tokenizer=get("tokenizer"), licenses=license_table(records),
        provenance=provenance_summary(records), omitted=omitted, notes=notes, storage=storage,
        settings={"reference": reference, "baseline": base, "quantity": quantity,
                  "sensitivity_quantity": sensitivity_quantity, "alignment": alignment, "damage": damage,
                  "premium_quantity": premium_quantity, "confidence_level": level, "n_resamples": n_res,
                  "alignment_n_resamples": min(n_res, 999), "rng": rng},
    )
