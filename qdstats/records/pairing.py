"""Records to a paired frame: every compressed per-item measurement next to its baseline measurement.

This is the one pairing rule of the package. :func:`paired_frame` is strict (incomplete pairing raises: what
analyses and the demo use); :func:`paired_items` drops what cannot be paired and says so in notes (what a report
uses). Both give one row per (model, condition, language, item) with ``full`` (baseline value), ``compressed`` and
``delta = compressed - full``, the wide format that :mod:`qdstats.disparity` estimands take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from qdstats.records.measurement import FailedMeasurement, Measurement

__all__ = ["BASELINE_CONDITION", "PARTIAL_KEYS", "check_records", "condition_label", "paired_frame", "paired_items"]

#: The full-precision condition every compressed condition is paired with (``qdmodels`` writes these keys).
BASELINE_CONDITION: dict[str, str] = {"scheme": "fp32", "protect": "none", "prune": "none"}
#: Condition keys that do not make a different condition of the baseline (a compute detail).
_NEUTRAL_KEYS = frozenset({"compute_dtype"})
#: Condition keys of a partial compression (one site group of a sensitivity sweep): such per-item records are not a
#: whole-model condition and are never paired with the baseline here.
PARTIAL_KEYS: tuple[str, ...] = ("sites", "site")
_COLUMNS = ["model_id", "model_key", "condition", "condition_short", "scheme", "protect", "prune", "language",
            "item_id", "document_id", "full", "compressed", "delta"]


def condition_label(condition: Mapping[str, Any]) -> str:
    """Stable ``k=v,...`` label of a condition (keys sorted).

    Examples
    --------
    >>> condition_label({"scheme": "int4-g64-sym", "protect": "none"})
    'protect=none,scheme=int4-g64-sym'
    """
    return ",".join(f"{k}={condition[k]}" for k in sorted(condition))


def _short_condition(condition: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    """Display label: the keys that differ from the baseline (``scheme=int4-g64-sym``), else the full label."""
    keys = [k for k in sorted(condition) if k not in _NEUTRAL_KEYS and condition[k] != baseline.get(k)]
    return ",".join(f"{k}={condition[k]}" for k in keys) or condition_label(condition)


def _is_baseline(cond: Mapping[str, Any], baseline: Mapping[str, Any]) -> bool:
    return all(cond.get(k) == v for k, v in baseline.items()) and set(cond) <= set(baseline) | _NEUTRAL_KEYS


def check_records(records: Any) -> list[Any]:
    """``records`` as a list, after checking it is a sequence of Measurement/FailedMeasurement (TypeError if not)."""
    if isinstance(records, (str, bytes)) or not isinstance(records, Sequence):
        raise TypeError(f"`records` must be a sequence of Measurement/FailedMeasurement; got {type(records).__name__}.")
    bad = [type(r).__name__ for r in records if not isinstance(r, (Measurement, FailedMeasurement))]
    if bad:
        raise TypeError(
            f"`records` must contain only Measurement or FailedMeasurement; got {len(bad)} other object(s), "
            f"e.g. {bad[0]}."
        )
    return list(records)


def _rows(records: Sequence[Any], quantity: str) -> tuple[list[dict[str, Any]], int]:
    """Per-item rows of ``quantity`` measurements, and how many were partial (site-group) conditions."""
    rows, n_partial = [], 0
    for r in records:
        if not isinstance(r, Measurement) or r.quantity != quantity or r.item_id is None or r.language is None:
            continue
        if any(k in r.condition for k in PARTIAL_KEYS):
            n_partial += 1
            continue
        rows.append({
            "model_id": r.model.model_id if r.model is not None else "(no model)",
            "model_key": f"{r.model.model_id}@{r.model.sha256 or r.model.revision}" if r.model is not None else "(no model)",
            "language": r.language, "item_id": r.item_id,
            "document_id": str(r.attributes.get("document_id", r.item_id)), "cond": dict(r.condition), "value": r.value,
        })
    return rows, n_partial


def _pair(records: Sequence[Any], *, quantity: str, baseline: Mapping[str, Any] | None,
          strict: bool, across_models: bool = False) -> tuple[pd.DataFrame, list[str]]:
    """The shared pairing: ``strict`` raises where the lenient mode drops rows with a note."""
    records = check_records(records)
    base_cond = dict(BASELINE_CONDITION if baseline is None else baseline)
    rows, n_partial = _rows(records, quantity)
    if across_models and rows:
        rows = _across_models(rows, base_cond)
    notes: list[str] = []
    if n_partial:
        notes.append(f"{n_partial} per-item {quantity} records compress only some sites (condition key "
                     f"{'/'.join(PARTIAL_KEYS)}: a sensitivity sweep); they are not whole-model conditions and are "
                     "left out of the pairing.")

    def problem(msg: str) -> None:
        if strict:
            raise ValueError(msg)
        notes.append(msg)

    if not rows:
        if strict:
            raise ValueError(f"`records` has no {quantity!r} measurements.")
        return pd.DataFrame(columns=_COLUMNS), notes
    df = pd.DataFrame(rows)
    df["condition"] = [condition_label(c) for c in df["cond"]]
    df["condition_short"] = [_short_condition(c, base_cond) for c in df["cond"]]
    for k in BASELINE_CONDITION:
        df[k] = [c.get(k) for c in df["cond"]]
    is_base = np.array([_is_baseline(c, base_cond) for c in df["cond"]], dtype=bool)
    keys = ["model_key", "language", "item_id"]
    base, comp = df[is_base], df[~is_base]
    if base.empty:
        if strict:
            raise ValueError(f"no reference records with condition {base_cond} among the {quantity!r} measurements.")
        notes.append(f"no {quantity} records under the baseline condition {base_cond}; nothing to pair.")
        return pd.DataFrame(columns=_COLUMNS), notes
    dup_b = base.duplicated(keys, keep=False)
    if dup_b.any():
        problem(f"{int(dup_b.sum())} baseline {quantity} records measure an item twice (several runs?); "
                + ("pass one run's records." if strict else "those items are dropped."))
        base = base[~dup_b]
    dup_c = comp.duplicated(keys + ["condition"], keep=False)
    if dup_c.any():
        problem(f"{int(dup_c.sum())} compressed {quantity} records measure an item twice under one condition; "
                + ("pass one run's records." if strict else "those items are dropped."))
        comp = comp[~dup_c]
    merged = comp.merge(base[keys + ["value"]].rename(columns={"value": "full"}), on=keys, how="left")
    missing = _unmatched(merged, base, keys)
    if missing.any():
        if strict:
            bad = merged[missing].iloc[0]
            raise ValueError(
                f"item {bad['item_id']!r} ({bad['language']}) under {bad['condition']} has no reference measurement; "
                "evaluate identical items under every condition."
            )
        notes.append(f"{int(missing.sum())} compressed {quantity} records have no baseline measurement of the same "
                     "item and are left out.")
        merged = merged[~missing]
    merged = merged.rename(columns={"value": "compressed"})
    if not strict:
        nan = merged["compressed"].isna() | merged["full"].isna()
        if nan.any():
            notes.append(f"{int(nan.sum())} {quantity} pairs have a NaN value (see the records' warnings) and are "
                         "left out.")
            merged = merged[~nan]
    merged["delta"] = merged["compressed"] - merged["full"]
    out = merged[_COLUMNS].sort_values(["model_id", "model_key", "condition", "language", "item_id"], kind="stable")
    return out.reset_index(drop=True), notes


def _across_models(rows: list[dict[str, Any]], base_cond: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Pair another model's items with the baseline model's: one model must hold the baseline condition; every
    other model's records become a condition of that model (``checkpoint=<model key>`` in the condition, as
    :func:`qdmodels.eval.compare.evaluate_checkpoints` writes it)."""
    base_models = {r["model_key"] for r in rows if _is_baseline(r["cond"], base_cond)}
    if len(base_models) != 1:
        raise ValueError(
            f"`across_models=True` needs the baseline condition {dict(base_cond)} from exactly one model; found "
            f"{len(base_models)} ({sorted(base_models)})."
        )
    (base_key,) = base_models
    base_id = next(r["model_id"] for r in rows if r["model_key"] == base_key)
    out = []
    for r in rows:
        if r["model_key"] != base_key:
            cond = {**r["cond"], "checkpoint": r["cond"].get("checkpoint", r["model_key"])}
            r = {**r, "cond": cond, "model_key": base_key, "model_id": base_id}
        out.append(r)
    return out


def _unmatched(merged: pd.DataFrame, base: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Rows of ``merged`` whose item has no baseline record at all (a NaN baseline value is a match)."""
    have = pd.MultiIndex.from_frame(base[keys])
    return pd.Series(~pd.MultiIndex.from_frame(merged[keys]).isin(have), index=merged.index)


def paired_frame(
    records: Sequence[Any],
    *,
    quantity: str = "eval.bits_per_byte",
    baseline: Mapping[str, Any] | None = None,
    across_models: bool = False,
) -> pd.DataFrame:
    """Tidy per-item frame pairing every compressed condition with the baseline; incomplete pairing raises.

    Parameters
    ----------
    records : sequence of Measurement or FailedMeasurement
        Records of any quantities; only per-item ``quantity`` measurements are used (failures are ignored).
        Conditions that compress only some sites (a ``sites`` key: sensitivity sweeps) are left out.
    quantity : str, default 'eval.bits_per_byte'
        The per-item quantity to pair.
    baseline : dict, optional
        The reference condition; default :data:`BASELINE_CONDITION` (``scheme='fp32'``...). A record whose
        condition adds only ``compute_dtype`` to it counts as baseline.
    across_models : bool, default False
        Pair items across models: the one model holding the baseline condition is the reference, and every
        other model (e.g. a released quantized checkpoint of it) is a condition of its own, labelled
        ``checkpoint=<model_id@sha256 or revision>``. Items are matched by ``(language, item_id)``: the models must
        have scored the same texts (their tokenizers may differ; bits per byte does not depend on them).

    Returns
    -------
    pandas.DataFrame
        One row per (model, condition, language, item): ``model_id, model_key, condition`` (a stable ``k=v,...``
        label), ``condition_short`` (the keys differing from the baseline), ``scheme, protect, prune, language,
        item_id, document_id, full, compressed, delta``, sorted by model, condition, language and item. Rows of one
        ``condition`` are the wide format of :mod:`qdstats.disparity`
        (``degradation(frame[frame.condition == c], cluster='document_id')``).

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.
    ValueError
        No ``quantity`` measurements, no baseline records, an item measured twice within one condition, or a
        compressed item without its baseline measurement (pairing must be complete: evaluate identical items).

    See Also
    --------
    paired_items : the same pairing, dropping what cannot be paired with a note instead of raising.

    Notes
    -----
    Validated against: closed-form tests (each ``delta`` is exactly ``compressed - full``) and the lenient
    :func:`paired_items` on complete data (tests/qdstats/records/test_pairing.py).

    Examples
    --------
    >>> from qdstats.records import Measurement
    >>> recs = [Measurement(quantity="eval.bits_per_byte", value=v, language="eng_Latn", item_id="s1",
    ...                     condition={"scheme": s, "protect": "none", "prune": "none"})
    ...         for s, v in (("fp32", 1.0), ("int4-g64-sym", 1.25))]
    >>> float(paired_frame(recs).loc[0, "delta"])
    0.25
    """
    return _pair(records, quantity=quantity, baseline=baseline, strict=True, across_models=across_models)[0]


def paired_items(
    records: Sequence[Any],
    *,
    quantity: str = "eval.bits_per_byte",
    baseline: Mapping[str, Any] | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Pair every compressed per-item measurement with the baseline; drop what cannot be paired, with notes.

    Parameters
    ----------
    records, quantity, baseline
        As in :func:`paired_frame`.

    Returns
    -------
    (pandas.DataFrame, list of str)
        The frame of :func:`paired_frame`, and notes on items dropped because they had no baseline measurement,
        were measured twice or have a NaN value (such items are dropped, never guessed), and on left-out
        partial (site-group) conditions.

    Raises
    ------
    TypeError
        ``records`` is not a sequence of records.

    Examples
    --------
    >>> from qdstats.records import Measurement
    >>> recs = [Measurement(quantity="eval.bits_per_byte", value=v, language="eng_Latn", item_id="s1",
    ...                     condition={"scheme": s, "protect": "none", "prune": "none"})
    ...         for s, v in (("fp32", 1.0), ("int4-g64-sym", 1.25))]
    >>> frame, notes = paired_items(recs)
    >>> float(frame.loc[0, "delta"]), notes
    (0.25, [])
    """
    return _pair(records, quantity=quantity, baseline=baseline, strict=False)
