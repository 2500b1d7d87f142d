"""Built-in claim tests, registered in :data:`qdstats.claims.registry.REGISTRY` on import.

Every test receives the tidy frame of selected records (columns as in :func:`qdstats.records.to_frame`
plus ``role``), its validated parameters and a :class:`~qdstats.claims.registry.ClaimContext`, and returns a
:class:`~qdstats.results.StatResult`. Confidence intervals are always two-sided at the spec's
``confidence_level``; p-values follow the spec's ``alternative``. Every random procedure is seeded from the
spec's ``seed``. Tests raise :class:`~qdstats.claims.registry.InsufficientDataError` when the data cannot
answer the claim and ordinary exceptions for malformed selections (the engine turns those into ``error``).

Column references in parameters accept shorthands: an exact column name, ``item`` (``item_id``), ``model``
(``model.model_id``), ``n_params`` (``model.n_params``), ``split`` (``corpus.split``), or a bare key that is
looked up as ``condition.<key>`` and then ``attributes.<key>``.

The statistics come from the other :mod:`qdstats` modules (``disparity``, ``resampling``, ``correlation``,
``collinearity``, ``within``); nothing here reimplements an estimator.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from qdstats.validation import UnknownNameError, WarningCollector, did_you_mean
from qdstats.claims.registry import (
    ClaimContext,
    InsufficientDataError,
    get_test,
    register_test,
)
from qdstats.results import ConfidenceInterval, StatResult

__all__ = ["match_values", "resolve_column", "subset"]

Scalar = bool | int | float | str | None
Cond = dict[str, Scalar | list[Scalar] | dict[str, Scalar | list[Scalar]]]

_SHORTHAND = {
    "item": "item_id",
    "model": "model.model_id",
    "model_id": "model.model_id",
    "n_params": "model.n_params",
    "family": "model.family",
    "split": "corpus.split",
    "corpus": "corpus.corpus_id",
}
_PAIR_KEYS = ("model.model_id", "language", "item_id")


# ----------------------------------------------------------------------------- helpers
def resolve_column(df: pd.DataFrame, name: str, param: str, *, required: bool = True) -> str | None:
    """Resolve a column reference (see the module docstring) to a column of ``df``.

    Raises
    ------
    UnknownNameError
        When ``required`` and nothing matches; names the parameter and suggests close columns.
    """
    cands = [name, _SHORTHAND.get(name, name), f"condition.{name}", f"attributes.{name}"]
    for c in cands:
        if c in df.columns:
            return c
    if not required:
        return None
    cols = [str(c) for c in df.columns if not str(c).startswith(("provenance.", "schema", "corpus.", "model."))
            and not str(c).startswith("_") and c not in ("content_key", "role", "unit", "warnings")]
    raise UnknownNameError(
        f"`{param}` refers to {name!r}, which is not a column of the selected records (tried {cands[1:]})."
        + did_you_mean(name, cols) + f" Columns: {cols}."
    )


def match_values(series: pd.Series, value: Any) -> pd.Series:
    """Boolean mask: ``series`` equals ``value`` (or any of a list); ``None`` matches missing values;
    ``{'not': v}`` (or ``{'not': [v, ...]}``) matches present values other than those.

    Booleans only match booleans (``True`` does not match ``1``).
    """
    if isinstance(value, dict):
        if set(value) != {"not"}:
            raise ValueError(f"a filter mapping must be {{'not': value}}; got {value!r}.")
        return series.notna() & ~match_values(series, value["not"])
    values = value if isinstance(value, list) else [value]
    mask = pd.Series(False, index=series.index)
    obj = series.astype(object)
    is_bool: pd.Series | None = None  # only numbers and booleans can compare equal across the two (1 == True)
    for v in values:
        if v is None:
            mask |= series.isna()
            continue
        eq = (obj == v) & series.notna()
        if isinstance(v, (bool, np.bool_, int, float, np.number)):
            if is_bool is None:
                if pd.api.types.is_bool_dtype(series.dtype):
                    is_bool = pd.Series(True, index=series.index)
                elif series.dtype == object:
                    is_bool = obj.map(lambda s: isinstance(s, (bool, np.bool_)))
                else:
                    is_bool = pd.Series(False, index=series.index)
            eq &= is_bool if isinstance(v, (bool, np.bool_)) else ~is_bool
        mask |= eq
    return mask


def subset(df: pd.DataFrame, cond: Cond, param: str) -> pd.DataFrame:
    """Rows of ``df`` whose columns match every key of ``cond`` (a list means any of; None means missing)."""
    mask = pd.Series(True, index=df.index)
    for key, value in cond.items():
        col = resolve_column(df, key, f"{param}.{key}", required=False)
        if col is None:
            vals = value if isinstance(value, list) else [value]
            if isinstance(value, dict) or None not in vals:
                return df.iloc[0:0]
            continue
        mask &= match_values(df[col], value)
    return df[mask]


def _role(df: pd.DataFrame, role: str) -> pd.DataFrame:
    out = df[df["role"] == role]
    if out.empty:
        raise InsufficientDataError(f"no records selected for role {role!r}.")
    return out


def _filter_model(df: pd.DataFrame, model: str | None) -> pd.DataFrame:
    if model is None:
        return df
    if "model.model_id" not in df.columns:
        raise InsufficientDataError(f"no records have a model; cannot restrict to model {model!r}.")
    mask = df["model.model_id"] == model
    if "model.family" in df.columns:
        mask |= df["model.family"] == model
    out = df[mask]
    if out.empty:
        models = sorted(map(str, df["model.model_id"].dropna().unique()))
        raise InsufficientDataError(f"no records for model {model!r}; models present: {models}.")
    return out


def _pair_frame(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for k in _PAIR_KEYS:
        if k not in out.columns:
            out[k] = "<none>"
        out[k] = out[k].astype(object).where(out[k].notna(), "<none>")
    return out


def _level_values(df: pd.DataFrame, cond: Cond, param: str, keys: tuple[str, ...] = _PAIR_KEYS) -> pd.Series:
    """Values of the rows matching ``cond``, indexed by ``keys``; duplicates are an error."""
    sub = subset(df, cond, param)
    if sub.empty:
        raise InsufficientDataError(f"no records match `{param}` = {cond!r}.")
    dup = sub.duplicated(list(keys), keep=False)
    if dup.any():
        first = sub[dup].iloc[0]
        raise ValueError(
            f"`{param}` = {cond!r} matches {int(dup.sum())} records that share "
            f"({', '.join(keys)}) = ({', '.join(repr(first[k]) for k in keys)}); the selection is ambiguous: "
            "add `select` / condition filters so each item has exactly one value per condition."
        )
    return sub.set_index(list(keys))["value"].astype(float)


def _join(vals: dict[str, pd.Series], what: str) -> pd.DataFrame:
    """Rows (model, language, item) with a value under every condition; ``attrs['note']`` says how many
    rows were left out because a condition was missing for them (e.g. a failed measurement)."""
    outer = pd.concat(vals, axis=1, join="outer")
    joined = outer.dropna()
    if joined.empty:
        raise InsufficientDataError(f"no item has values under all of {what}.")
    lost = len(outer) - len(joined)
    joined = joined.reset_index()
    joined.attrs["note"] = (
        (f"{lost} of {len(outer)} (model, language, item) rows lack a value under one of {what} and were left out.",)
        if lost else ()
    )
    return joined


def _paired(df: pd.DataFrame, a: Cond, b: Cond, pa: str, pb: str) -> pd.DataFrame:
    """Aligned values under conditions ``a`` and ``b`` (inner join on model, language, item)."""
    return _join({"a": _level_values(df, a, pa), "b": _level_values(df, b, pb)}, f"`{pa}`, `{pb}`")


def _item_means(frame: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Average ``cols`` within ``item_id`` (items are the independent units; languages/models share them)."""
    return frame.groupby("item_id", sort=True)[cols].mean()


def _resampled_mean_diff(
    x: np.ndarray, y: np.ndarray, *, test: str, name: str, ctx: ClaimContext, n_units: dict[str, int],
    details: dict[str, Any], extra_warnings: tuple[str, ...] = (),
) -> StatResult:
    """Mean of paired differences ``x - y``: BCa bootstrap CI (two-sided) and sign-flip permutation p."""
    from qdstats.resampling import bootstrap_ci, paired_permutation_test

    d = x - y
    if len(d) < 2:
        raise InsufficientDataError(f"{test}: {len(d)} paired unit(s); at least 2 are needed.")
    wc = WarningCollector()
    wc.extend(extra_warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = bootstrap_ci(d, statistic="mean", kind="bca", confidence_level=ctx.confidence_level,
                            n_resamples=ctx.n_resamples, rng=ctx.seed)
        perm = paired_permutation_test(x, y, alternative=ctx.alternative, n_resamples=ctx.n_resamples,
                                       rng=ctx.seed + 1)
    wc.extend(boot.warnings)
    wc.extend(perm.warnings)
    return StatResult(
        test=test, estimate_name=name, estimate=float(np.mean(d)), ci=boot.ci, statistic_name="mean_diff",
        statistic=float(np.mean(d)), pvalue=perm.pvalue, alternative=ctx.alternative, n=len(d), n_units=n_units,
        warnings=wc.messages,
        details={**details, "ci_backend": "qdstats.resampling.bootstrap_ci", "standard_error": boot.standard_error,
                 "pvalue_method": "paired sign-flip permutation (qdstats.resampling.paired_permutation_test)",
                 "permutation_exact": perm.exact, "n_resamples": ctx.n_resamples, "seed": ctx.seed},
    )


def _count(df: pd.DataFrame, col: str) -> int:
    return int(df[col].nunique()) if col in df.columns else 0


# ----------------------------------------------------------------------------- parameter models
class _P(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiDParams(_P):
    """Parameters of ``diff_in_diff``."""

    baseline: Cond = Field(description="Condition of the full-precision values, e.g. {scheme: fp32}.")
    treatment: Cond = Field(description="Condition of the compressed values, e.g. {scheme: int4-g128-sym}.")
    target: str = Field(description="Language whose extra degradation is tested.")
    reference: str = Field(default="eng_Latn", description="Reference language.")
    model: str | None = Field(default=None, description="Restrict to this model_id or model family (one model per claim).")
    cluster: str | None = Field(default=None, description="Column resampled as the cluster (e.g. 'document'); default the item.")
    resampling: Literal["auto", "joint", "independent"] = Field(
        default="auto", description="'joint' for parallel corpora; 'auto' (default, as in qd report) picks joint when "
        "every language has the same items, else independent.")
    kind: Literal["bca", "percentile", "basic"] = Field(default="bca", description="Bootstrap interval type.")


def _did_rows(data: pd.DataFrame, params: DiDParams) -> pd.DataFrame:
    """The rows :func:`diff_in_diff_test` uses: ``params.model``'s records under the baseline or the treatment.

    ``data`` is returned whole whenever narrowing could change what the test does: no ``params.model`` while several
    models are present (the test refuses that), a condition on the model, language or item columns (the test
    matches those after filling missing values), or a target or reference language left without rows (the test
    raises its own error).
    """
    if params.model is None and "model.model_id" in data.columns and data["model.model_id"].nunique(dropna=False) > 1:
        return data
    pair_cols = set(_PAIR_KEYS)
    for cond, name in ((params.baseline, "params.baseline"), (params.treatment, "params.treatment")):
        if any(resolve_column(data, k, f"{name}.{k}", required=False) in pair_cols for k in cond):
            return data
    mask = pd.Series(True, index=data.index)
    if params.model is not None and "model.model_id" in data.columns:
        mask = data["model.model_id"] == params.model
        if "model.family" in data.columns:
            mask |= data["model.family"] == params.model
    kept = data[mask]
    idx = subset(kept, params.baseline, "params.baseline").index.union(
        subset(kept, params.treatment, "params.treatment").index)
    out = data[data.index.isin(idx)]
    if not {params.target, params.reference} <= set(out["language"]):
        return data
    return out


@register_test("diff_in_diff", params=DiDParams, roles=("y",), narrow=_did_rows,
               description="Per-language difference in differences vs a reference language (qdstats.disparity.diff_in_diff).")
def diff_in_diff_test(data: pd.DataFrame, params: DiDParams, ctx: ClaimContext) -> StatResult:
    """Δ_target − Δ_reference on paired per-item data, via :func:`qdstats.disparity.diff_in_diff`.

    Parameters
    ----------
    data : pandas.DataFrame
        Selected records (:func:`qdstats.records.to_frame` columns plus ``role``).
    params : DiDParams
        Validated parameters (see the class).
    ctx : ClaimContext
        Spec-level settings (alternative, confidence level, resamples, seed).

    Returns
    -------
    StatResult
        ``estimate`` = DiD (bits per byte), cluster-bootstrap CI, sign-flip permutation ``pvalue``, ``n`` = items; ``details`` has ``delta_target`` and ``delta_reference``; ``n_units['languages']`` counts the languages with baseline or treatment records (those compared).

    Raises
    ------
    InsufficientDataError
        The target or reference language, or a condition, has no records.
    ValueError
        Several models selected without ``params.model``; duplicate (language, item, condition) records.

    Notes
    -----
    All selected languages are passed to :func:`qdstats.disparity.diff_in_diff` (so its table-level notes, e.g. fewer than 10 languages, are kept); NaN pairs are omitted.
    Validated against: closed form (mean of paired differences of differences, rtol 1e-12) and a direct call of :func:`qdstats.disparity.diff_in_diff` (same CI and p, rtol 1e-12); tests/qdstats/claims/test_claims_tests_builtin.py.
    """
    from qdstats.disparity import diff_in_diff

    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if df["model.model_id"].nunique() > 1:
        raise ValueError(
            f"`params.model` is required: the selection holds {df['model.model_id'].nunique()} models "
            f"({sorted(map(str, df['model.model_id'].unique()))}); diff_in_diff compares languages within one model."
        )
    for lang, what in ((params.target, "target"), (params.reference, "reference")):
        if lang not in set(df["language"]):
            raise InsufficientDataError(f"`params.{what}` language {lang!r} has no selected records.")
    full = subset(df, params.baseline, "params.baseline").assign(_cond="full")
    comp = subset(df, params.treatment, "params.treatment").assign(_cond="compressed")
    if full.empty or comp.empty:
        raise InsufficientDataError(f"no records for `params.{'baseline' if full.empty else 'treatment'}`.")
    long = pd.concat([full, comp], ignore_index=True)
    cluster_col = resolve_column(long, params.cluster, "params.cluster") if params.cluster else None
    cols = ["language", "item_id", "_cond", "value"] + ([cluster_col] if cluster_col else [])
    long = long[cols]
    res = diff_in_diff(
        long, reference=params.reference, language="language", item="item_id", full="full", compressed="compressed",
        condition="_cond", value="value", cluster=cluster_col, resampling=params.resampling, kind=params.kind,
        confidence_level=ctx.confidence_level, alternative=ctx.alternative, n_resamples=ctx.n_resamples,
        rng=ctx.seed, nan_policy="omit",
    )
    est = res[params.target]
    deltas = (comp.set_index(["language", "item_id"])["value"] - full.set_index(["language", "item_id"])["value"]).dropna()
    by_lang = deltas.groupby(level="language").mean()
    wc = WarningCollector()
    wc.extend(res.warnings)
    wc.extend(est.warnings)
    return StatResult(
        test="diff_in_diff", estimate_name="did", estimate=est.estimate, ci=est.ci, statistic_name="did",
        statistic=est.estimate, pvalue=est.pvalue, alternative=ctx.alternative, n=est.n,
        n_units={**est.n_units, "languages": int(long["language"].nunique())},
        variables=(params.target, params.reference), warnings=wc.messages,
        details={"delta_target": float(by_lang.get(params.target, math.nan)),
                 "delta_reference": float(by_lang.get(params.reference, math.nan)),
                 "backend": "qdstats.disparity.diff_in_diff", "resampling": params.resampling, "kind": params.kind,
                 **{k: v for k, v in est.details.items() if isinstance(v, (int, float, str, bool))}},
    )


class PairedParams(_P):
    """Parameters of ``mean_difference_paired``."""

    baseline: Cond = Field(description="Condition subtracted.")
    treatment: Cond = Field(description="Condition of interest.")
    language: str | None = Field(default=None, description="Restrict to one language.")
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")
    cluster: str | None = Field(
        default=None,
        description="Column whose values group items into clusters resampled whole (e.g. 'document_id'); default the item.")


@register_test("mean_difference_paired", params=PairedParams, roles=("y",),
               description="Mean paired difference treatment − baseline over items (BCa bootstrap, sign-flip permutation).")
def mean_difference_paired(data: pd.DataFrame, params: PairedParams, ctx: ClaimContext) -> StatResult:
    """Mean over items of (treatment − baseline); items averaged over languages/models first.

    Parameters
    ----------
    data : pandas.DataFrame
        Selected records (:func:`qdstats.records.to_frame` columns plus ``role``).
    params : PairedParams
        Validated parameters (see the class).
    ctx : ClaimContext
        Spec-level settings (alternative, confidence level, resamples, seed).

    Returns
    -------
    StatResult
        ``estimate`` = mean difference, BCa bootstrap CI over items, sign-flip permutation ``pvalue``, ``n`` = items.

    Raises
    ------
    InsufficientDataError
        No item has values under both conditions, or fewer than 2 items.
    ValueError
        A condition matches several records of one (model, language, item) (ambiguous selection).

    Notes
    -----
    Items are the independent units: values of one item in several languages or models are averaged first (parallel sentences are not independent across languages).
    With ``cluster`` (e.g. the NTREX document), the CI is a cluster-bootstrap BCa interval of the item-level mean
    (:func:`qdstats.resampling.cluster_bootstrap_ci`) and the p-value flips the signs of cluster sums of the
    paired differences, so sentences of one document are never treated as independent.
    Validated against: closed form (mean difference, rtol 1e-12); with ``cluster``, a direct call of
    :func:`qdstats.resampling.cluster_bootstrap_ci` and of :func:`qdstats.resampling.paired_permutation_test` on
    cluster sums (rtol 1e-12); the resampling functions are validated in qdstats.resampling.
    """
    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if params.language is not None:
        df = df[df["language"] == params.language]
    pairs = _paired(df, params.treatment, params.baseline, "params.treatment", "params.baseline")
    items = _item_means(pairs, ["a", "b"])
    if params.cluster is not None:
        return _clustered_mean_diff(df, pairs, items, params, ctx)
    return _resampled_mean_diff(
        items["a"].to_numpy(), items["b"].to_numpy(), test="mean_difference_paired", name="mean_diff", ctx=ctx,
        n_units={"items": len(items), "languages": _count(pairs, "language"), "models": _count(pairs, "model.model_id")},
        details={"mean_treatment": float(items["a"].mean()), "mean_baseline": float(items["b"].mean())},
        extra_warnings=pairs.attrs["note"],
    )


def _clustered_mean_diff(df: pd.DataFrame, pairs: pd.DataFrame, items: pd.DataFrame, params: PairedParams,
                         ctx: ClaimContext) -> StatResult:
    """``mean_difference_paired`` with whole clusters of items resampled (CI) and sign-flipped (p)."""
    from qdstats.resampling import cluster_bootstrap_ci, paired_permutation_test

    col = resolve_column(df, params.cluster, "params.cluster")
    per_item = df[df["item_id"].isin(items.index)].groupby("item_id")[col].agg(lambda s: s.dropna().unique().tolist())
    bad = per_item[per_item.map(len) != 1]
    if not bad.empty:
        raise ValueError(
            f"`params.cluster` = {params.cluster!r}: item {bad.index[0]!r} has {len(bad.iloc[0])} cluster values "
            f"({bad.iloc[0]!r}); every item must lie in exactly one cluster.")
    clusters = per_item.map(lambda v: v[0]).reindex(items.index).to_numpy()
    d = (items["a"] - items["b"]).to_numpy(dtype=float)
    n_clusters = len(set(clusters))
    if n_clusters < 2:
        raise InsufficientDataError(f"mean_difference_paired: {n_clusters} cluster(s) of `{params.cluster}`; at least 2 are needed.")
    wc = WarningCollector()
    wc.extend(pairs.attrs["note"])
    sums = items.assign(_c=clusters).groupby("_c", sort=True)[["a", "b"]].sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        boot = cluster_bootstrap_ci(d, clusters, statistic="mean", kind="bca", confidence_level=ctx.confidence_level,
                                    n_resamples=ctx.n_resamples, rng=ctx.seed)
        perm = paired_permutation_test(sums["a"].to_numpy(), sums["b"].to_numpy(), alternative=ctx.alternative,
                                       n_resamples=ctx.n_resamples, rng=ctx.seed + 1)
    wc.extend(boot.warnings)
    wc.extend(perm.warnings)
    est = float(np.mean(d))
    return StatResult(
        test="mean_difference_paired", estimate_name="mean_diff", estimate=est, ci=boot.ci, statistic_name="mean_diff",
        statistic=est, pvalue=perm.pvalue, alternative=ctx.alternative, n=len(d),
        n_units={"items": len(d), "clusters": n_clusters, "languages": _count(pairs, "language"),
                 "models": _count(pairs, "model.model_id")},
        warnings=wc.messages,
        details={"mean_treatment": float(items["a"].mean()), "mean_baseline": float(items["b"].mean()),
                 "cluster": params.cluster, "ci_backend": "qdstats.resampling.cluster_bootstrap_ci",
                 "standard_error": boot.standard_error,
                 "pvalue_method": "sign-flip permutation of cluster sums (qdstats.resampling.paired_permutation_test)",
                 "permutation_exact": perm.exact, "n_resamples": ctx.n_resamples, "seed": ctx.seed},
    )


class InteractionParams(_P):
    """Parameters of ``interaction``."""

    base: Cond = Field(description="Neither compression, e.g. {scheme: fp32, prune: none}.")
    first: Cond = Field(description="First compression alone (e.g. quantization).")
    second: Cond = Field(description="Second compression alone (e.g. pruning).")
    both: Cond = Field(description="Both compressions.")
    language: str | None = Field(default=None, description="Restrict to one language (default: all selected, averaged per item).")
    reference: str | None = Field(default=None, description=(
        "Reference language: the contrast becomes the language's interaction minus the reference's on the same item "
        "(a triple difference: does the combination hurt this language more than English beyond the sum of its "
        "parts?). Needs `language`."))
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")

    @model_validator(mode="after")
    def _check_reference(self) -> InteractionParams:
        if self.reference is not None and self.language is None:
            raise ValueError(f"`reference` = {self.reference!r} needs `language` (the language compared with it).")
        if self.reference is not None and self.reference == self.language:
            raise ValueError(f"`reference` and `language` are both {self.language!r}; they must differ.")
        return self


@register_test("interaction", params=InteractionParams, roles=("y",),
               description="Super-additivity Δ(both) − Δ(first) − Δ(second), paired by item (BCa bootstrap, sign-flip permutation); with `reference`, the language's minus the reference's (triple difference).")
def interaction(data: pd.DataFrame, params: InteractionParams, ctx: ClaimContext) -> StatResult:
    """Interaction contrast per item: (both − base) − (first − base) − (second − base) = both − first − second + base.

    Parameters
    ----------
    data : pandas.DataFrame
        Selected records (:func:`qdstats.records.to_frame` columns plus ``role``).
    params : InteractionParams
        Validated parameters (see the class).
    ctx : ClaimContext
        Spec-level settings (alternative, confidence level, resamples, seed).

    Returns
    -------
    StatResult
        ``estimate`` = mean interaction (positive = super-additive), BCa bootstrap CI over items, sign-flip permutation ``pvalue`` of ``(both − first)`` vs ``(second − base)``; ``details`` has the three mean main deltas. With ``reference``, every quantity is the language's minus the reference's on the same item (the triple difference; ``details`` then also has the language's own interaction and the reference's).

    Raises
    ------
    InsufficientDataError
        No item has values under all four conditions, or fewer than 2 items.
    ValueError
        Ambiguous selection (several records per item and condition).

    Notes
    -----
    Per item the contrast is averaged over the selected languages and models before resampling. The triple
    difference pairs each item of ``language`` with the same item of ``reference`` (parallel sentences); items
    missing in either are left out with a note.
    Validated against: closed form (mean of the per-item contrast, rtol 1e-10; the triple difference equals the
    language's interaction minus the reference's, rtol 1e-10); planted interaction recovered.
    """
    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    langs = [params.language] if params.reference is None else [params.language, params.reference]
    if params.language is not None:
        df = df[df["language"].isin(langs)]
    vals = {k: _level_values(df, getattr(params, k), f"params.{k}") for k in ("base", "first", "second", "both")}
    joined = _join(vals, "`params.base`, `params.first`, `params.second`, `params.both`")
    joined["x"] = joined["both"] - joined["first"]
    joined["y"] = joined["second"] - joined["base"]
    cols = ["x", "y", "base", "first", "second", "both"]
    notes = joined.attrs["note"]
    extra: dict[str, Any] = {}
    if params.reference is not None:
        joined, notes, extra = _minus_reference(joined, cols, params.language, params.reference, notes)
    items = _item_means(joined, cols)
    return _resampled_mean_diff(
        items["x"].to_numpy(), items["y"].to_numpy(), test="interaction", name="interaction", ctx=ctx,
        n_units={"items": len(items), "languages": len(langs) if params.reference else _count(joined, "language"),
                 "models": _count(joined, "model.model_id")},
        details={"delta_first": float((items["first"] - items["base"]).mean()),
                 "delta_second": float((items["second"] - items["base"]).mean()),
                 "delta_both": float((items["both"] - items["base"]).mean()), **extra},
        extra_warnings=notes,
    )


def _minus_reference(joined: pd.DataFrame, cols: list[str], language: str, reference: str,
                     notes: tuple[str, ...]) -> tuple[pd.DataFrame, tuple[str, ...], dict[str, Any]]:
    """Per (model, item): the language's ``cols`` minus the reference's; items present in only one are dropped
    (and counted in a note). Also returns the mean interaction of each side for ``details``."""
    keys = ["model.model_id", "item_id"]
    a = joined[joined["language"] == language].set_index(keys)[cols]
    b = joined[joined["language"] == reference].set_index(keys)[cols]
    if a.empty or b.empty:
        missing = language if a.empty else reference
        raise InsufficientDataError(f"language {missing!r} has no item under all four conditions.")
    common = a.index.intersection(b.index)
    lost = len(a.index.union(b.index)) - len(common)
    if not len(common):
        raise InsufficientDataError(f"no item is measured in both {language!r} and the reference {reference!r}.")
    diff = (a.loc[common] - b.loc[common]).reset_index()
    if lost:
        notes = (*notes, (f"{lost} of {lost + len(common)} item(s) measured in only one of {language!r} and the "
                          f"reference {reference!r} were left out of the triple difference."))
    inter = {lang: float((side.loc[common, "x"] - side.loc[common, "y"]).groupby(level="item_id").mean().mean())
             for lang, side in ((language, a), (reference, b))}
    return diff, notes, {"interaction_language": inter[language], "interaction_reference": inter[reference],
                         "reference": reference}


class DisparityChangeParams(_P):
    """Parameters of ``disparity_change`` / ``protection_effect``."""

    baseline: Cond = Field(description="Full-precision condition (reported; cancels in the contrast).")
    before: Cond = Field(description="Compressed condition without the intervention (e.g. protect: none).")
    after: Cond = Field(description="Compressed condition with the intervention (e.g. protect: dev-selected).")
    reference: str = Field(default="eng_Latn", description="Reference language.")
    target: str | None = Field(default=None, description="One language; default: mean over all non-reference languages per item.")
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")
    sample: Literal["all", "compressed"] = Field(default="all", description=(
        "'all': every row with a baseline value (rows missing under before/after are left out with a note); "
        "'compressed': the rows measured under both before and after (their sample by design, e.g. records of a "
        "--subset run), the baseline restricted to them without a note."))


def _disparity_change(data: pd.DataFrame, params: DisparityChangeParams, ctx: ClaimContext, test: str) -> StatResult:
    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if df["model.model_id"].nunique() > 1:
        raise ValueError(f"`params.model` is required: the selection holds {df['model.model_id'].nunique()} models.")
    vals = {k: _level_values(df, getattr(params, k), f"params.{k}") for k in ("baseline", "before", "after")}
    if params.sample == "compressed":
        common = vals["before"].index.intersection(vals["after"].index)
        vals["baseline"] = vals["baseline"][vals["baseline"].index.isin(common)]
    j = _join(vals, "`params.baseline`, `params.before`, `params.after`")
    j["d_before"] = j["before"] - j["baseline"]
    j["d_after"] = j["after"] - j["baseline"]
    ref = j[j["language"] == params.reference].set_index("item_id")[["d_before", "d_after"]]
    if ref.empty:
        raise InsufficientDataError(f"`params.reference` language {params.reference!r} has no paired records.")
    others = j[j["language"] != params.reference]
    if params.target is not None:
        others = others[others["language"] == params.target]
    if others.empty:
        raise InsufficientDataError(f"no non-reference language ({params.target or 'any'}) has paired records.")
    per = others.set_index(["language", "item_id"])[["d_before", "d_after"]]
    items_ref = ref.reindex(per.index.get_level_values("item_id"))
    did_before = per["d_before"].to_numpy() - items_ref["d_before"].to_numpy()
    did_after = per["d_after"].to_numpy() - items_ref["d_after"].to_numpy()
    tab = pd.DataFrame({"item_id": per.index.get_level_values("item_id"), "x": did_before, "y": did_after}).dropna()
    if tab.empty:
        raise InsufficientDataError("no item is present in both the reference and the other language(s).")
    items = _item_means(tab, ["x", "y"])
    n_lang = int(others["language"].nunique())
    return _resampled_mean_diff(
        items["x"].to_numpy(), items["y"].to_numpy(), test=test, name="disparity_reduction", ctx=ctx,
        n_units={"items": len(items), "languages": n_lang + 1, "models": _count(j, "model.model_id")},
        details={"did_before": float(items["x"].mean()), "did_after": float(items["y"].mean()),
                 "reference": params.reference, "target": params.target or "mean of non-reference languages",
                 **_cost_details(data, params)},
        extra_warnings=j.attrs["note"],
    )


def _cost_details(data: pd.DataFrame, params: DisparityChangeParams) -> dict[str, Any]:
    cost = data[data["role"] == "cost"]
    if cost.empty:
        return {}
    out: dict[str, Any] = {"cost_quantity": str(cost["quantity"].iloc[0])}
    for k in ("before", "after"):
        sub = subset(cost, getattr(params, k), f"params.{k}")
        out[f"cost_{k}"] = float(sub["value"].mean()) if not sub.empty else math.nan
    return out


@register_test("disparity_change", params=DisparityChangeParams, roles=("y",), optional_roles=("cost",),
               description="Reduction of the DiD vs reference by an intervention: DiD(before) − DiD(after), paired by item.")
def disparity_change(data: pd.DataFrame, params: DisparityChangeParams, ctx: ClaimContext) -> StatResult:
    """DiD(before) − DiD(after) per item (positive = the intervention reduces disparity).

    Parameters
    ----------
    data : pandas.DataFrame
        Selected records (:func:`qdstats.records.to_frame` columns plus ``role``).
    params : DisparityChangeParams
        Validated parameters (see the class).
    ctx : ClaimContext
        Spec-level settings (alternative, confidence level, resamples, seed).

    Returns
    -------
    StatResult
        ``estimate`` = mean reduction of the difference in differences, BCa bootstrap CI over items, sign-flip ``pvalue``; ``details`` has ``did_before``, ``did_after`` and, with a ``cost`` role, ``cost_before``/``cost_after``.

    Raises
    ------
    InsufficientDataError
        Missing reference, conditions or common items.
    ValueError
        Several models without ``params.model``; ambiguous selection.

    Notes
    -----
    The baseline cancels in the contrast (it is kept for the reported DiDs). Without ``target`` the per-item contrast is averaged over all non-reference languages.
    Validated against: planted reduction recovered (atol 0.006 with noise SE 0.003); not independently validated beyond the resampling functions.
    """
    return _disparity_change(data, params, ctx, "disparity_change")


@register_test("protection_effect", params=DisparityChangeParams, roles=("y",), optional_roles=("cost",),
               description="Disparity reduction by protecting layers (DiD unprotected − DiD protected); optional 'cost' role (quant.bits_per_weight).")
def protection_effect(data: pd.DataFrame, params: DisparityChangeParams, ctx: ClaimContext) -> StatResult:
    """As :func:`disparity_change` (same estimand); for layer protection, with the ``cost`` role's true bits per
    weight (``quant.model_bits_per_weight``) before/after in ``details``.

    Notes
    -----
    The selection of the protected layers must happen on another split (the spec's ``selection_split``);
    the grading rule ``selection_not_separated`` lowers the grade otherwise.
    Validated against: planted reduction recovered (see :func:`disparity_change`).
    """
    return _disparity_change(data, params, ctx, "protection_effect")


class VsRandomParams(_P):
    """Parameters of ``protection_vs_random``."""

    baseline: Cond = Field(description="Full-precision condition, e.g. {scheme: fp32}.")
    before: Cond = Field(description="Compressed condition without protection, e.g. {scheme: int4-g64-sym, protect: none}.")
    after: Cond = Field(description="The targeted plan (selected on another split), e.g. {selection_rule: disparity, protect_k: 3}.")
    control: Cond = Field(description="The random plans at the same storage cost: one record per item and draw.")
    draw: str = Field(default="selection_seed", description="Column that tells the random draws apart (a condition key or column).")
    pvalue: Literal["randomization", "prediction"] = Field(default="randomization", description=(
        "'randomization': rank of the targeted plan among the draws, (1 + #{R_d >= R_t}) / (D + 1), assumption-free "
        "but never below 1/(D + 1); 'prediction': t test of the targeted plan against the draws' distribution, "
        "(R_t - mean R_d) / (sd R_d * sqrt(1 + 1/D)) on D - 1 degrees of freedom (assumes roughly normal draws; "
        "not floored, so a Holm family of several rows can reach alpha with few draws)."))
    reference: str = Field(default="eng_Latn", description="Reference language.")
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")


def _t_tail(t: float, df: int, alternative: str) -> float:
    """p-value of a t statistic on ``df`` degrees of freedom for ``alternative`` (NaN t gives NaN)."""
    from scipy import stats as st

    dist = st.t(df=df)
    return {"greater": float(dist.sf(t)), "less": float(dist.cdf(t))}.get(
        alternative, float(min(1.0, 2 * dist.sf(abs(t)))))


def _items_and_draws_ci(plus: np.ndarray, minus: np.ndarray, ctx: ClaimContext) -> tuple[float, float]:
    """Percentile CI of ``mean(plus) - mean(minus)`` over items (rows) and draws (columns).

    Each resample draws the items once (shared by both sides, which are paired by item) and, independently for each
    side with more than one column, the draws; a one-column side is a fixed condition and keeps its column.
    """
    rng = np.random.default_rng(ctx.seed)
    n = plus.shape[0]
    boot = np.empty(ctx.n_resamples)
    for r in range(ctx.n_resamples):
        ii = rng.integers(0, n, n)
        side = [m[np.ix_(ii, rng.integers(0, m.shape[1], m.shape[1]))].mean() if m.shape[1] > 1 else m[ii, 0].mean()
                for m in (plus, minus)]
        boot[r] = side[0] - side[1]
    alpha = 1 - ctx.confidence_level
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _did_by_item(j: pd.DataFrame, col: str, reference: str) -> pd.Series:
    """Per item: Δ(``col``) of each non-reference language minus the reference's, averaged over the languages."""
    d = j.assign(delta=j[col] - j["baseline"])
    ref = d[d["language"] == reference].set_index("item_id")["delta"]
    oth = d[d["language"] != reference]
    did = oth["delta"].to_numpy() - ref.reindex(oth["item_id"]).to_numpy()
    return pd.Series(did, index=oth["item_id"].to_numpy()).dropna().groupby(level=0).mean()


@register_test("protection_vs_random", params=VsRandomParams, roles=("y",),
               description="Targeted protection vs random plans at the same cost: disparity reduction of the targeted "
                           "plan minus the mean over random draws (randomization p over draws, or a prediction t test).")
def protection_vs_random(data: pd.DataFrame, params: VsRandomParams, ctx: ClaimContext) -> StatResult:
    """Does the targeted choice of layers reduce the disparity more than protecting the same number of random layers?

    Parameters
    ----------
    data : pandas.DataFrame
        Selected records (:func:`qdstats.records.to_frame` columns plus ``role``).
    params : VsRandomParams
        Validated parameters (see the class).
    ctx : ClaimContext
        Spec-level settings (alternative, confidence level, resamples, seed).

    Returns
    -------
    StatResult
        ``estimate`` = R(targeted) − mean over draws of R(draw), where R is the mean over items of the disparity
        reduction DiD(before) − DiD(plan) vs the reference (averaged over the other languages per item), on the
        items measured under every plan. ``pvalue`` (``params.pvalue='randomization'``) = (1 + #{draws with R ≥
        R(targeted)}) / (1 + draws) for ``alternative='greater'`` (≤ for 'less'; twice the smaller one-sided p for
        'two-sided'); with ``'prediction'``, the t test of R(targeted) against the draws' mean with the prediction
        standard error sd · √(1 + 1/D) on D − 1 degrees of freedom (both are in ``details``). CI: percentile
        bootstrap resampling items and draws together. ``details``: ``reduction_targeted``,
        ``reduction_random_mean``/``_sd``/``_min``/``_max``, ``n_draws``, ``rank``, ``did_before``.

    Raises
    ------
    InsufficientDataError
        Fewer than 2 draws, no common items, missing reference.
    ValueError
        Several models without ``params.model``; a draw with several records per item.

    Notes
    -----
    The comparison uses the items the random plans were measured on (a subset of the targeted plan's is fine);
    an item missing under some draw or condition is left out with a note. The p-value treats the targeted plan as
    one more draw under the null that the selection is no better than
    chance (a Monte Carlo randomization test), so with D draws it cannot fall below 1/(D + 1): a note says so
    when 1/(D + 1) > 0.05. The draws are the control's sample; the CI reflects both the items and the draws.
    Validated against: closed form (estimate and both p-values by direct computation from the per-draw
    reductions, the prediction p with scipy.stats.t, rtol 1e-12); planted advantage recovered.
    """
    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if df["model.model_id"].nunique() > 1:
        raise ValueError(f"`params.model` is required: the selection holds {df['model.model_id'].nunique()} models.")
    vals = {k: _level_values(df, getattr(params, k), f"params.{k}") for k in ("baseline", "before", "after")}
    ctrl = subset(df, params.control, "params.control")
    if ctrl.empty:
        raise InsufficientDataError(f"no records match `params.control` = {params.control!r}.")
    col = resolve_column(ctrl, params.draw, "params.draw")
    draws = sorted(ctrl[col].dropna().unique().tolist())
    if len(draws) < 2:
        raise InsufficientDataError(f"`params.control` matches {len(draws)} draw(s) of {params.draw!r}; at least 2 are needed.")
    for d in draws:
        vals[f"draw:{d}"] = _level_values(ctrl[ctrl[col] == d], params.control, f"params.control ({params.draw}={d!r})")
    # the random plans may be measured on a subset of the items (many draws are costly): that subset is the
    # comparison's sample by design, so the other conditions are restricted to it before the join
    measured = pd.Index(sorted({k for key, v in vals.items() if key.startswith("draw:") for k in v.index}))
    for k in ("baseline", "before", "after"):
        vals[k] = vals[k][vals[k].index.isin(measured)]
    j = _join(vals, "`params.baseline`, `params.before`, `params.after` and every draw of `params.control`")
    if params.reference not in set(j["language"]):
        raise InsufficientDataError(f"`params.reference` language {params.reference!r} has no paired records.")
    if set(j["language"]) == {params.reference}:
        raise InsufficientDataError("no non-reference language has paired records.")
    did_before = _did_by_item(j, "before", params.reference)
    per = pd.DataFrame({"after": did_before - _did_by_item(j, "after", params.reference),
                        **{d: did_before - _did_by_item(j, f"draw:{d}", params.reference) for d in draws}}).dropna()
    if len(per) < 2:
        raise InsufficientDataError(f"protection_vs_random: {len(per)} common item(s); at least 2 are needed.")
    r_t = float(per["after"].mean())
    r_d = per[draws].mean().to_numpy(dtype=float)
    est = r_t - float(r_d.mean())
    n_draws = len(draws)
    p_greater = (1 + int(np.sum(r_d >= r_t))) / (n_draws + 1)
    p_less = (1 + int(np.sum(r_d <= r_t))) / (n_draws + 1)
    p_rand = {"greater": p_greater, "less": p_less}.get(ctx.alternative, min(1.0, 2 * min(p_greater, p_less)))
    sd = float(r_d.std(ddof=1))
    t_stat = (r_t - float(r_d.mean())) / (sd * math.sqrt(1 + 1 / n_draws)) if sd > 0 else math.nan
    p_pred = _t_tail(t_stat, n_draws - 1, ctx.alternative)
    p = p_rand if params.pvalue == "randomization" else p_pred
    lo, hi = _items_and_draws_ci(per[["after"]].to_numpy(dtype=float), per[draws].to_numpy(dtype=float), ctx)
    wc = WarningCollector()
    wc.extend(j.attrs["note"])
    if params.pvalue == "randomization" and 1 / (n_draws + 1) > 0.05:
        wc.extend([f"{n_draws} random draws: the randomization p cannot fall below 1/{n_draws + 1} = "
                   f"{1 / (n_draws + 1):.3f}."])
    return StatResult(
        test="protection_vs_random", estimate_name="reduction_vs_random", estimate=est,
        ci=ConfidenceInterval(low=lo, high=hi, level=ctx.confidence_level, method="bootstrap-percentile-items-and-draws"),
        statistic_name="reduction_targeted", statistic=r_t, pvalue=p, alternative=ctx.alternative, n=len(per),
        n_units={"items": len(per), "draws": n_draws, "languages": _count(j, "language"),
                 "models": _count(j, "model.model_id")},
        warnings=wc.messages,
        details={"reduction_targeted": r_t, "reduction_random_mean": float(r_d.mean()),
                 "reduction_random_sd": float(r_d.std(ddof=1)), "reduction_random_min": float(r_d.min()),
                 "reduction_random_max": float(r_d.max()), "n_draws": n_draws,
                 "rank": int(np.sum(r_d < r_t)) + 1, "draws": [str(d) for d in draws],
                 "pvalue_method": ("Monte Carlo randomization over the random draws" if params.pvalue == "randomization"
                                   else "prediction t test against the random draws (df = draws - 1)"),
                 "p_randomization": p_rand, "p_prediction": p_pred, "t_prediction": t_stat,
                 "n_resamples": ctx.n_resamples,
                 "seed": ctx.seed, "did_before": float(did_before.reindex(per.index).mean()),
                 "reference": params.reference},
    )


class DrawsParams(_P):
    """Parameters of ``disparity_change_draws``."""

    baseline: Cond = Field(description="Full-precision condition, e.g. {scheme: fp32}.")
    before: Cond = Field(description="Compressed condition without the intervention, e.g. {calibration: eng}; one "
                         "record per item and draw (or one draw only).")
    after: Cond = Field(description="Compressed condition with the intervention, e.g. {calibration: multi}; one record "
                        "per item and draw.")
    draw: str = Field(default="calib_seed", description="Column that tells the draws apart (a condition key or column).")
    reference: str = Field(default="eng_Latn", description="Reference language.")
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")


def _draw_values(df: pd.DataFrame, cond: Cond, draw: str, param: str) -> dict[Any, pd.Series]:
    """The values of ``cond``, one series per draw (a single key ``None`` when the records carry no draw)."""
    sub = subset(df, cond, param)
    if sub.empty:
        raise InsufficientDataError(f"no records match `{param}` = {cond!r}.")
    col = resolve_column(sub, draw, "params.draw", required=False)
    if col is None or sub[col].isna().all():
        return {None: _level_values(sub, cond, param)}
    if sub[col].isna().any():
        raise ValueError(f"`{param}` = {cond!r} matches records with and without {draw!r}; filter the draws.")
    def label(d: Any) -> Any:  # seeds read back as floats from a mixed frame: 1.0 -> 1
        return int(d) if isinstance(d, float) and d.is_integer() else d

    return {label(d): _level_values(sub[sub[col] == d], cond, f"{param} ({draw}={d!r})")
            for d in sorted(sub[col].unique().tolist(), key=str)}


def _draw_pvalue(b: np.ndarray, a: np.ndarray, alternative: str, *, b_random: bool,
                 a_random: bool) -> tuple[float, str]:
    """p of DiD(before) − DiD(after) across draws: Welch t test of the per-draw DiDs; when one side has a single
    draw, a one-sample t test against it if it is a fixed condition (no draw key, e.g. round-to-nearest), or a
    prediction t test if it is itself one random draw, (mean − single) / (sd · √(1 + 1/n)) on n − 1 df."""
    from scipy import stats as st

    if len(b) >= 2 and len(a) >= 2:
        res = st.ttest_ind(b, a, equal_var=False, alternative=alternative)
        return float(res.pvalue), "Welch t test of the per-draw DiDs (scipy.stats.ttest_ind, equal_var=False)"
    many, one, single_random, sign = (a, float(b[0]), b_random, -1.0) if len(a) >= 2 else (b, float(a[0]), a_random, 1.0)
    side = "after" if len(a) >= 2 else "before"
    if not single_random:
        t = sign * (float(many.mean()) - one) / (float(many.std(ddof=1)) / math.sqrt(len(many)))
        how = f"one-sample t test of the {side} draws' DiDs against the single fixed condition"
    else:
        t = sign * (float(many.mean()) - one) / (float(many.std(ddof=1)) * math.sqrt(1 + 1 / len(many)))
        how = f"prediction t test of the {side} draws' DiDs against the single draw of the other side"
    return _t_tail(t, len(many) - 1, alternative), f"{how} (df = {len(many) - 1})"


@register_test("disparity_change_draws", params=DrawsParams, roles=("y",),
               description="Reduction of the DiD vs reference by an intervention repeated over random draws (e.g. "
                           "calibration seeds): mean over draws, CI over items and draws, p from draws and items.")
def disparity_change_draws(data: pd.DataFrame, params: DrawsParams, ctx: ClaimContext) -> StatResult:
    """Does the intervention reduce the disparity when the calibration (or any random draw) is repeated?

    Parameters
    ----------
    data : pandas.DataFrame
        Selected records (:func:`qdstats.records.to_frame` columns plus ``role``).
    params : DrawsParams
        Validated parameters (see the class).
    ctx : ClaimContext
        Spec-level settings (alternative, confidence level, resamples, seed).

    Returns
    -------
    StatResult
        ``estimate`` = mean over the before draws of DiD(before) − mean over the after draws of DiD(after), where
        DiD is the mean over items of the per-item Δ of the other languages (averaged per item) minus the
        reference's Δ. ``pvalue`` = the larger of two p-values (an intersection-union test, so the claim must
        hold across draws and across items): the draw-level t test (Welch on the per-draw DiDs; when one side
        has a single draw, a one-sample t test against it if it carries no draw key, else a prediction t test
        that counts it as one draw) and the item-level sign-flip permutation test of the draw-averaged
        per-item DiDs. CI: percentile bootstrap resampling the items and, independently, the before and after
        draws. ``details``: ``did_before``/``did_after`` (draw means), the per-draw DiDs, their standard
        deviations, ``p_draws``, ``p_items``, ``n_draws_before``/``n_draws_after``.

    Raises
    ------
    InsufficientDataError
        Neither side has two draws; no common items; missing reference.
    ValueError
        Several models without ``params.model``; a draw with several records per item; draws mixed with
        records that carry no draw.

    Notes
    -----
    The draws may be measured on a subset of the items (repeated calibrations are costly): every condition is
    restricted to the (model, language, item) rows measured under every draw, by design, before the join
    (``details['rows_by_draw']``); the draws' sample is the rows of the draws of the most common size, and a
    note counts its rows missing under some draw (e.g. a failed measurement). Draws are not paired across before and after (seed ``s`` of one calibration
    set draws other text than seed ``s`` of another).
    Validated against: closed form (estimate, per-draw DiDs and both p-values by direct computation with
    scipy.stats.ttest_ind and a sign-flip permutation, rtol 1e-12); planted reduction recovered; a reduction
    that varies in sign across draws is not supported although the item-level p is small.
    """
    from qdstats.resampling import paired_permutation_test

    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if df["model.model_id"].nunique() > 1:
        raise ValueError(f"`params.model` is required: the selection holds {df['model.model_id'].nunique()} models.")
    sides = {k: _draw_values(df, getattr(params, k), params.draw, f"params.{k}") for k in ("before", "after")}
    if max(len(v) for v in sides.values()) < 2:
        raise InsufficientDataError(f"neither `params.before` nor `params.after` has 2 or more draws of "
                                    f"{params.draw!r}; use disparity_change for one draw.")
    vals = {f"{k}:{d}": v for k, dv in sides.items() for d, v in dv.items()}
    sides_rows = {k: len(v) for k, v in vals.items()}
    # repeated draws are costly, so they may cover a subset of the items (and an earlier draw all of them): the
    # items measured under every draw are the comparison's sample by design, said in a note when the draws differ
    measured = vals[next(iter(vals))].index
    for v in vals.values():
        measured = measured.intersection(v.index)
    # the design sample: the rows of the draws of the most common size (the subset draws when one earlier draw
    # covers every sentence); rows of it missing under some draw (e.g. a failed measurement) are counted
    sizes = pd.Series([len(v) for v in vals.values()])
    counts = sizes.value_counts()
    modal = int(min(counts[counts == counts.max()].index))  # a tie (one full and one subset draw) is the subset
    design = pd.Index([])
    for v in vals.values():
        if len(v) == modal:
            design = design.union(v.index)
    notes: tuple[str, ...] = ()
    if len(measured) < len(design):
        notes = ((f"{len(design) - len(measured)} of {len(design)} (model, language, item) rows of the draws' "
                  "sample are missing under some draw and were left out."),)
    vals = {k: v[v.index.isin(measured)] for k, v in vals.items()}
    base = _level_values(df, params.baseline, "params.baseline")
    vals["baseline"] = base[base.index.isin(measured)]
    j = _join(vals, "`params.baseline` and every draw of `params.before` and `params.after`")
    if params.reference not in set(j["language"]):
        raise InsufficientDataError(f"`params.reference` language {params.reference!r} has no paired records.")
    if set(j["language"]) == {params.reference}:
        raise InsufficientDataError("no non-reference language has paired records.")
    did = {k: _did_by_item(j, k, params.reference) for k in vals if k != "baseline"}
    per = pd.DataFrame(did).dropna()
    if len(per) < 2:
        raise InsufficientDataError(f"disparity_change_draws: {len(per)} common item(s); at least 2 are needed.")
    bcols = [f"before:{d}" for d in sides["before"]]
    acols = [f"after:{d}" for d in sides["after"]]
    B = per[bcols].to_numpy(dtype=float)
    A = per[acols].to_numpy(dtype=float)
    b_d, a_d = B.mean(axis=0), A.mean(axis=0)
    est = float(b_d.mean() - a_d.mean())
    p_draws, draw_method = _draw_pvalue(b_d, a_d, ctx.alternative, b_random=None not in sides["before"],
                                        a_random=None not in sides["after"])
    wc = WarningCollector()
    wc.extend(notes)
    wc.extend(j.attrs["note"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perm = paired_permutation_test(B.mean(axis=1), A.mean(axis=1), alternative=ctx.alternative,
                                       n_resamples=ctx.n_resamples, rng=ctx.seed + 1)
    wc.extend(perm.warnings)
    n, nb, na = len(per), B.shape[1], A.shape[1]
    lo, hi = _items_and_draws_ci(B, A, ctx)
    sd = {k: float(v.std(ddof=1)) if len(v) > 1 else math.nan for k, v in (("before", b_d), ("after", a_d))}
    return StatResult(
        test="disparity_change_draws", estimate_name="disparity_reduction", estimate=est,
        ci=ConfidenceInterval(low=lo, high=hi, level=ctx.confidence_level, method="bootstrap-percentile-items-and-draws"),
        statistic_name="disparity_reduction", statistic=est, pvalue=max(p_draws, perm.pvalue),
        alternative=ctx.alternative, n=n,
        n_units={"items": n, "draws": min(nb, na) if min(nb, na) > 1 else max(nb, na),
                 "languages": _count(j, "language"), "models": _count(j, "model.model_id")},
        warnings=wc.messages,
        details={"did_before": float(b_d.mean()), "did_after": float(a_d.mean()),
                 "did_before_by_draw": {str(d): float(x) for d, x in zip(sides["before"], b_d)},
                 "did_after_by_draw": {str(d): float(x) for d, x in zip(sides["after"], a_d)},
                 "did_before_sd_draws": sd["before"], "did_after_sd_draws": sd["after"],
                 "n_draws_before": nb, "n_draws_after": na, "draw": params.draw,
                 "rows_by_draw": sides_rows,
                 "p_draws": p_draws, "p_items": perm.pvalue, "permutation_exact": perm.exact,
                 "pvalue_method": f"max of the draw-level p ({draw_method}) and the item-level sign-flip permutation "
                                  "p of the draw-averaged DiDs (intersection-union test)",
                 "n_resamples": ctx.n_resamples, "seed": ctx.seed, "reference": params.reference},
    )


# ----------------------------------------------------------------------------- across units
class CorrParams(_P):
    """Parameters of ``pearson`` / ``spearman`` / ``kendall``."""

    x: str = Field(description="Role name (values aggregated per unit) or column (e.g. 'n_params', 'attributes.alignment').")
    y: str = Field(default="y", description="Role name or column.")
    aggregate: Literal["mean", "median"] = Field(default="mean", description="Aggregation within a unit.")


def _unit_series(data: pd.DataFrame, ref: str, unit: str, agg: str, param: str) -> pd.Series:
    roles = set(data["role"])
    if ref in roles:
        df = data[data["role"] == ref]
        col = "value"
    else:
        df = data[data["role"] == "y"] if "y" in roles else data
        col = resolve_column(df, ref, param)
    ucol = resolve_column(df, unit, "unit_of_analysis")
    vals = pd.to_numeric(df[col], errors="coerce")
    return vals.groupby(df[ucol].astype(str)).agg(agg)


def _across_units(data: pd.DataFrame, refs: dict[str, str], ctx: ClaimContext, agg: str) -> pd.DataFrame:
    """One row per unit present in every series with no missing value; ``attrs['dropped']`` counts the rest."""
    series = {name: _unit_series(data, ref, ctx.unit_of_analysis, agg, f"params.{name}") for name, ref in refs.items()}
    outer = pd.concat(series, axis=1, join="outer").sort_index()
    tab = outer.dropna()
    tab.attrs["dropped"] = [str(u) for u in outer.index.difference(tab.index)]
    return tab


def _dropped_note(tab: pd.DataFrame) -> tuple[str, ...]:
    d = tab.attrs.get("dropped") or []
    if not d:
        return ()
    shown = ", ".join(d[:10]) + (" ..." if len(d) > 10 else "")
    return (f"{len(d)} of {len(d) + len(tab)} unit(s) lacking a value for some variable were left out: {shown}.",)


def _corr_test(method: str):
    def fn(data: pd.DataFrame, params: CorrParams, ctx: ClaimContext) -> StatResult:
        from qdstats.correlation import corr

        tab = _across_units(data, {"x": params.x, "y": params.y}, ctx, params.aggregate)
        if len(tab) < 3:
            raise InsufficientDataError(f"{method}: {len(tab)} unit(s) with both x and y; at least 3 are needed.")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = corr(tab["x"].to_numpy(), tab["y"].to_numpy(), method=method, alternative=ctx.alternative,
                       confidence_level=ctx.confidence_level)
        if ctx.alternative != "two-sided":  # CIs are two-sided in claims tables
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                two = corr(tab["x"].to_numpy(), tab["y"].to_numpy(), method=method, confidence_level=ctx.confidence_level)
            res = res.model_copy(update={"ci": two.ci})
        return res.model_copy(update={"variables": (params.x, params.y), "n_units": {ctx.unit_of_analysis: len(tab)},
                                      "warnings": (*_dropped_note(tab), *res.warnings),
                                      "details": {**res.details, "units": list(tab.index)}})
    fn.__doc__ = (f"{method.capitalize()} correlation across units of analysis (qdstats.correlation.corr).\n\n"
                  "    Notes\n    -----\n    Values of each role are aggregated per unit and inner-joined; CIs are two-sided.\n"
                  f"    Validated against: scipy.stats ({method}) estimate and p-value, rtol 1e-10.\n")
    return fn


for _m in ("pearson", "spearman", "kendall"):
    register_test(_m, params=CorrParams, roles=("y",), optional_roles=("x",),
                  description=f"{_m.capitalize()} correlation across units (values aggregated per unit).")(_corr_test(_m))


class PartialParams(_P):
    """Parameters of ``partial_corr``."""

    x: str = Field(description="Role or column.")
    y: str = Field(default="y", description="Role or column.")
    method: Literal["pearson", "spearman"] = Field(default="pearson", description="Correlation type.")
    aggregate: Literal["mean", "median"] = Field(default="mean", description="Aggregation within a unit.")


@register_test("partial_corr", params=PartialParams, roles=("y",), optional_roles=("x",), accepts_covariates=True,
               description="Partial correlation across units controlling for the spec's covariates; VIF of x + covariates in details.")
def partial_corr_test(data: pd.DataFrame, params: PartialParams, ctx: ClaimContext) -> StatResult:
    """Partial correlation across units (:func:`qdstats.correlation.partial_corr`) plus VIFs
    (:func:`qdstats.collinearity.vif`, intercept added) of ``x`` and the covariates in ``details['max_vif']``.

    Notes
    -----
    Roles are aggregated per unit (mean or median) and inner-joined on the unit; CIs are two-sided.
    Validated against: pingouin 0.7 ``partial_corr`` (r and p), rtol 1e-10.
    """
    from qdstats.collinearity import vif
    from qdstats.correlation import partial_corr

    refs = {"x": params.x, "y": params.y, **{f"c{i}": c for i, c in enumerate(ctx.covariates)}}
    tab = _across_units(data, refs, ctx, params.aggregate)
    k = len(ctx.covariates)
    if len(tab) < k + 4:
        raise InsufficientDataError(f"partial_corr: {len(tab)} unit(s) for {k} covariate(s); at least {k + 4} are needed.")
    covs = [f"c{i}" for i in range(k)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = partial_corr(tab, x="x", y="y", covar=covs, method=params.method, alternative=ctx.alternative,
                           confidence_level=ctx.confidence_level)
        if ctx.alternative != "two-sided":
            two = partial_corr(tab, x="x", y="y", covar=covs, method=params.method, confidence_level=ctx.confidence_level)
            res = res.model_copy(update={"ci": two.ci})
        details = dict(res.details)
        if k:
            v = vif(tab, ["x", *covs])
            details["max_vif"] = float(v.estimate)
            details["vif"] = {({"x": params.x} | {f"c{i}": c for i, c in enumerate(ctx.covariates)})[r.column]: r.vif
                              for r in v.per_predictor}
    return res.model_copy(update={"variables": (params.x, params.y), "covariates": tuple(ctx.covariates),
                                  "warnings": (*_dropped_note(tab), *res.warnings),
                                  "n_units": {ctx.unit_of_analysis: len(tab)}, "details": details})


# ----------------------------------------------------------------------------- layers
_NAMED_POSITIONS = {"first": 0.0, "last": 1.0}


class LayerContrastParams(_P):
    """Parameters of ``layer_group_contrast``."""

    group: list[int | float | str] = Field(
        description="Layers of the group: integer index (negative from the end), 'first', 'last', or a depth "
                    "fraction in (0, 1) mapped to round(f * (L - 1)).", min_length=1)
    language: str | None = Field(default=None, description="Restrict to one language.")
    reference: str | None = Field(default=None, description="If given, contrast language minus reference per layer (excess sensitivity).")
    layer_column: str = Field(default="site", description="Column holding the layer (site name or condition key).")
    layer_pattern: str = Field(default=r"(?:^|\.)layers\.(\d+)(?:\.|$)", description="Regex whose first group is the layer index.")
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")

    @field_validator("group")
    @classmethod
    def _positions(cls, v: list[Any]) -> list[Any]:
        for g in v:
            if isinstance(g, str) and g not in _NAMED_POSITIONS:
                raise ValueError(f"`group` entries must be ints, 'first', 'last' or fractions in (0, 1); got {g!r}.")
            if isinstance(g, float) and not (0.0 < g < 1.0):
                raise ValueError(f"`group` fractions must lie in (0, 1); got {g!r}.")
        return v


def _layer_means(df: pd.DataFrame, params: LayerContrastParams) -> pd.Series:
    col = resolve_column(df, params.layer_column, "params.layer_column")
    pat = re.compile(params.layer_pattern)

    def idx(v: Any) -> float:
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return float(v)
        m = pat.search(str(v))
        return float(m.group(1)) if m else math.nan

    layers = df[col].map(idx)
    if layers.isna().any():
        bad = df.loc[layers.isna(), col].iloc[0]
        raise ValueError(f"`params.layer_pattern` {params.layer_pattern!r} does not match {col} value {bad!r}.")
    return df["value"].astype(float).groupby(layers.astype(int)).mean().sort_index()


@register_test("layer_group_contrast", params=LayerContrastParams, roles=("y",),
               description="Mean sensitivity of a layer group (e.g. first, last, 75% depth) minus the other layers; exact/MC permutation p, bootstrap CI.")
def layer_group_contrast(data: pd.DataFrame, params: LayerContrastParams, ctx: ClaimContext) -> StatResult:
    """Group-vs-rest contrast of per-layer values (layers are the units).

    Parameters
    ----------
    data : pandas.DataFrame
        Selected per-layer records (e.g. ``sens.delta_bits_per_byte`` with the layer in ``site`` or ``condition.sites``).
    params : LayerContrastParams
        Group positions, optional language and reference, layer column and pattern.
    ctx : ClaimContext
        Spec-level settings.

    Returns
    -------
    StatResult
        ``estimate`` = mean(group) − mean(rest), percentile bootstrap CI, permutation ``pvalue`` (exact when the
        number of group splits is at most ``n_resamples``), ``n`` = layers.

    Raises
    ------
    InsufficientDataError
        Fewer than 4 layers with values, or no records for the language / reference.
    ValueError
        Several models without ``params.model``; a group position outside the layers; a layer value the
        pattern does not match.

    Notes
    -----
    With ``reference`` the per-layer values are language minus reference (excess sensitivity). Fractions map
    to ``round(f * (L - 1))``. With 3 group layers the bootstrap CI is rough (a warning says so); the
    permutation p-value is exact.
    Validated against: full enumeration of the C(12, 3) layer splits (closed form), rtol 1e-12.
    """
    from qdstats.resampling import bootstrap_ci, permutation_test_two_groups

    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if df["model.model_id"].nunique() > 1:
        raise ValueError(f"`params.model` is required: the selection holds {df['model.model_id'].nunique()} models.")
    lang = df if params.language is None else df[df["language"] == params.language]
    if lang.empty:
        raise InsufficientDataError(f"no records for language {params.language!r}.")
    vals = _layer_means(lang, params)
    if params.reference is not None:
        ref = df[df["language"] == params.reference]
        if ref.empty:
            raise InsufficientDataError(f"no records for reference language {params.reference!r}.")
        vals = (vals - _layer_means(ref, params)).dropna()
    n_layers = int(vals.index.max()) + 1 if len(vals) else 0
    if len(vals) < 4:
        raise InsufficientDataError(f"layer_group_contrast: {len(vals)} layer(s) with values; at least 4 are needed.")
    chosen: set[int] = set()
    for g in params.group:
        if isinstance(g, str):
            i = round(_NAMED_POSITIONS[g] * (n_layers - 1))
        elif isinstance(g, float):
            i = round(g * (n_layers - 1))
        else:
            i = g if g >= 0 else n_layers + g
        if not 0 <= i < n_layers:
            raise ValueError(f"`params.group` entry {g!r} is outside the {n_layers} layers.")
        chosen.add(int(i))
    in_g = vals.index.isin(sorted(chosen))
    a, b = vals[in_g].to_numpy(), vals[~in_g].to_numpy()
    if len(a) == 0 or len(b) < 2:
        raise InsufficientDataError("layer_group_contrast: the group or the rest has too few layers with values.")
    wc = WarningCollector()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        perm = permutation_test_two_groups(a, b, alternative=ctx.alternative, n_resamples=ctx.n_resamples, rng=ctx.seed + 1)
        boot = bootstrap_ci(a, b, statistic="mean_diff", kind="percentile", confidence_level=ctx.confidence_level,
                            n_resamples=ctx.n_resamples, rng=ctx.seed)
    wc.extend(perm.warnings)
    wc.extend(boot.warnings)
    if len(a) < 5:
        wc.extend([(f"group has {len(a)} layer(s): the bootstrap CI of a mean over so few layers is unreliable "
                    "(percentile intervals under-cover); read the permutation p-value.")])
    return StatResult(
        test="layer_group_contrast", estimate_name="group_minus_rest", estimate=float(a.mean() - b.mean()), ci=boot.ci,
        statistic_name="mean_diff", statistic=float(a.mean() - b.mean()), pvalue=perm.pvalue,
        alternative=ctx.alternative, n=len(vals), n_units={"layers": len(vals), "group_layers": len(a)},
        warnings=wc.messages,
        details={"group_layers": sorted(chosen), "n_layers": n_layers, "ratio_group_over_rest":
                 float(a.mean() / b.mean()) if b.mean() != 0 else math.nan,
                 "permutation_exact": perm.exact, "pvalue_method": "permutation of layer labels (qdstats.resampling)",
                 "ci_method_note": "percentile bootstrap of mean difference, layers resampled within group and rest"},
    )


# ----------------------------------------------------------------------------- mixed model
class MixedSlopeParams(_P):
    """Parameters of ``mixed_slope``."""

    x: str = Field(description="Predictor column, e.g. 'alignment' (attributes.alignment).")
    groups: str = Field(description="Grouping column for random intercepts, e.g. 'sentence_id' or 'item_id'.")
    language: str | None = Field(default=None, description="Restrict to one language.")
    model: str | None = Field(default=None, description="Restrict to one model (model_id or family).")
    standardize: bool = Field(default=False, description="z-score x and covariates before fitting.")


@register_test("mixed_slope", params=MixedSlopeParams, roles=("y",), accepts_covariates=True,
               description="Fixed slope of y on x with covariates and random intercepts per group (linear mixed model).")
def mixed_slope_test(data: pd.DataFrame, params: MixedSlopeParams, ctx: ClaimContext) -> StatResult:
    """Slope of ``x`` in ``value ~ x + covariates + (1 | groups)`` (qdstats.within.mixed_slope).

    ``n`` counts observations (words); the grouping is reported in ``n_units['groups']``. One-sided p-values
    come from the Wald z of the two-sided fit.
    """
    from qdstats import within

    df = _pair_frame(_filter_model(_role(data, "y"), params.model))
    if params.language is not None:
        df = df[df["language"] == params.language]
    if df.empty:
        raise InsufficientDataError(f"no records for language {params.language!r}.")
    xcol = resolve_column(df, params.x, "params.x")
    gcol = resolve_column(df, params.groups, "params.groups")
    covs = [resolve_column(df, c, "covariates") for c in ctx.covariates]
    frame = pd.DataFrame({"y": df["value"].astype(float).to_numpy(), "x": pd.to_numeric(df[xcol]).to_numpy(),
                          "g": df[gcol].astype(str).to_numpy()})
    for i, c in enumerate(covs):
        frame[f"c{i}"] = pd.to_numeric(df[c]).to_numpy()
    n_before = len(frame)
    frame = frame.dropna()
    dropped = n_before - len(frame)
    if len(frame) and frame["x"].nunique() < 2:  # no variation in the predictor: the slope is not identified
        raise InsufficientDataError(f"mixed_slope: `params.x` {params.x!r} is constant ({float(frame['x'].iloc[0]):g} in "
                                    f"all {len(frame)} observations); its slope is not identified.")
    if params.standardize:
        for c in ["x", *[f"c{i}" for i in range(len(covs))]]:
            sd = frame[c].std(ddof=1)
            frame[c] = (frame[c] - frame[c].mean()) / sd if sd > 0 else frame[c] - frame[c].mean()
    if frame["g"].nunique() < 2:
        raise InsufficientDataError(f"mixed_slope: {frame['g'].nunique()} group(s) of {params.groups!r}; at least 2 are needed.")
    res = within.mixed_slope(frame, y="y", x="x", covariates=[f"c{i}" for i in range(len(covs))],
                             group="g", confidence_level=ctx.confidence_level, nan_policy="raise")
    pvalue = res.pvalue
    if ctx.alternative != "two-sided" and res.statistic is not None and math.isfinite(res.statistic):
        from scipy.stats import (
            norm,  # Wald z, as the two-sided p of qdstats.within.mixed_slope
        )

        pvalue = float(norm.sf(res.statistic) if ctx.alternative == "greater" else norm.cdf(res.statistic))
    names = {"x": params.x, **{f"c{i}": c for i, c in enumerate(ctx.covariates)}}
    wl = list(res.warnings)
    if dropped:
        wl.insert(0, f"{dropped} of {n_before} observations with a missing outcome, `{params.x}`, group or covariate were dropped.")
    return StatResult(
        test="mixed_slope", estimate_name=f"slope_{params.x}", estimate=res.estimate, ci=res.ci,
        statistic_name=res.statistic_name, statistic=res.statistic, pvalue=pvalue, alternative=ctx.alternative,
        n=res.n, n_units={"observations": res.n, "groups": res.n_groups}, variables=(params.x, "value"),
        covariates=tuple(ctx.covariates), warnings=tuple(wl),
        details={**res.details, "backend": "qdstats.within.mixed_slope", "converged": res.converged,
                 "boundary": res.boundary, "singular": res.singular, "n_groups": res.n_groups,
                 "standardized": params.standardize,
                 "fixed_effects": {names.get(k, k): v for k, v in res.fixed_effects.items()},
                 "random_effects": res.random_effects},
    )


# ----------------------------------------------------------------------------- levels and trends
class RequiresLevelsParams(_P):
    """Parameters of ``requires_levels``."""

    column: str = Field(description="Column whose distinct values are counted, e.g. 'n_params' (model size).")
    k: int = Field(ge=2, description="Minimum number of distinct levels.")
    then: str = Field(description="Registered test run when there are enough levels.")
    then_params: dict[str, Any] = Field(default_factory=dict, description="Parameters of the `then` test.")
    within: dict[str, Scalar] = Field(default_factory=dict, description="Count levels only among rows matching this (e.g. {family: llama}).")
    group_by: str | None = Field(default=None, description="Count levels within each group (e.g. 'family'); the group with the most levels is tested.")

    @classmethod
    def check_spec(cls, spec: Any) -> None:
        params = cls.model_validate(spec.params)
        inner = get_test(params.then)
        if inner.name == "requires_levels":
            raise ValueError("`params.then` cannot be 'requires_levels'.")
        try:
            inner.validate_params(params.then_params)
        except ValueError as exc:  # pydantic ValidationError is a ValueError
            raise ValueError(f"`params.then_params` invalid for test {params.then!r}: {exc}") from None
        missing = [r for r in inner.roles if r not in spec.select]
        if missing:
            raise ValueError(f"`select` must define role(s) {missing} for `params.then` test {params.then!r}.")
        if spec.covariates and not inner.accepts_covariates:
            raise ValueError(f"`covariates` are not accepted by `params.then` test {params.then!r}; got {list(spec.covariates)}.")


@register_test("requires_levels", params=RequiresLevelsParams, roles=("y",), optional_roles=("x", "cost"),
               accepts_covariates=True,
               description="Insufficient data unless a column has >= k distinct levels; then runs the `then` test.")
def requires_levels(data: pd.DataFrame, params: RequiresLevelsParams, ctx: ClaimContext) -> StatResult:
    """Gate a test on the number of distinct levels of ``column`` (e.g. >= 3 model sizes of one family).

    Notes
    -----
    With ``group_by`` the levels are counted per group and the group with the most levels (ties: the first
    in sorted order) is passed to the ``then`` test. Raises :class:`InsufficientDataError` naming the levels
    found, so the claims table shows why a claim cannot be tested yet.
    Validated against: not independently validated (a gate); tested with 2 families of one size each and
    with 4 sizes of one family.
    """
    df = subset(data, dict(params.within), "params.within") if params.within else data
    col = resolve_column(df, params.column, "params.column", required=False)
    if col is None:
        raise InsufficientDataError(f"needs at least {params.k} distinct levels of {params.column!r}; no record has it.")
    groups: dict[str, pd.DataFrame] = {"all": df}
    if params.group_by is not None:
        gcol = resolve_column(df, params.group_by, "params.group_by", required=False)
        if gcol is None:
            raise InsufficientDataError(f"no record has the `params.group_by` column {params.group_by!r}.")
        groups = {str(g): sub for g, sub in df.groupby(gcol, sort=True)}
    counts = {g: sorted(map(str, sub[col].dropna().unique())) for g, sub in groups.items()}
    best = max(sorted(counts), key=lambda g: len(counts[g])) if counts else None
    if best is None or len(counts[best]) < params.k:
        found = "; ".join(f"{g}: {len(v)} {v}" for g, v in counts.items()) or "none"
        raise InsufficientDataError(
            f"needs at least {params.k} distinct levels of {params.column!r}"
            + (f" within one {params.group_by!r}" if params.group_by else "") + f"; found {found}."
        )
    inner = get_test(params.then)
    res = inner(groups[best], inner.validate_params(params.then_params), ctx)
    return res.model_copy(update={"details": {**res.details, "gate_levels": counts[best], "gate_group": best}})


class TrendParams(_P):
    """Parameters of ``did_trend``."""

    level_column: str = Field(default="n_params", description="Column of the level (e.g. model size).")
    baseline: Cond = Field(description="Full-precision condition.")
    treatment: Cond = Field(description="Compressed condition.")
    reference: str = Field(default="eng_Latn", description="Reference language.")
    method: Literal["spearman", "pearson", "kendall"] = Field(
        default="spearman", description="Trend statistic whose permutation p is reported.")
    log_level: bool = Field(default=True, description="Use log10(level) (the regression's x; Pearson's x).")
    max_exact_levels: int = Field(default=9, ge=3, le=10, description="Enumerate all k! orderings up to this "
                                  "many levels; beyond it, ``n_resamples`` random orderings (seeded).")


def trend_permutation_pvalue(x: np.ndarray, y: np.ndarray, *, method: str, alternative: str,
                             max_exact: int = 9, n_resamples: int = 9999, rng: int = 0) -> tuple[float, float, bool, int]:
    """Permutation p of a correlation between ``x`` and ``y`` over orderings of ``y``.

    Returns ``(statistic, p, exact, n_orderings)``. Exact when ``len(y) <= max_exact``: all ``k!``
    orderings, the observed one included, so ``p >= 1/k!`` (4 monotone levels: 1/24 one-sided; two-sided
    counts ``|stat| >= |observed|``, 2/24). Otherwise ``(hits + 1) / (B + 1)`` over ``B`` random orderings.
    """
    import itertools

    from scipy import stats as st

    def stat(v: np.ndarray) -> float:
        if method == "spearman":
            return float(st.spearmanr(x, v).statistic)
        if method == "kendall":
            return float(st.kendalltau(x, v).statistic)
        return float(np.corrcoef(x, v)[0, 1])

    obs = stat(y)
    if not math.isfinite(obs):  # a constant DiD across levels: no correlation to test (p would read 0)
        raise InsufficientDataError(f"did_trend: the statistic is undefined (the DiD is constant across the {len(y)} "
                                    "levels); no trend can be tested.")
    k = len(y)
    if k <= max_exact:
        null = np.array([stat(y[list(p)]) for p in itertools.permutations(range(k))])
        exact = True
    else:
        gen = np.random.default_rng(rng)
        null = np.array([stat(gen.permutation(y)) for _ in range(n_resamples)])
        exact = False
    tol = 1e-12 * max(1.0, abs(obs))
    if alternative == "greater":
        hits = int(np.sum(null >= obs - tol))
    elif alternative == "less":
        hits = int(np.sum(null <= obs + tol))
    else:
        hits = int(np.sum(np.abs(null) >= abs(obs) - tol))
    p = hits / len(null) if exact else (hits + 1) / (len(null) + 1)
    return obs, float(min(1.0, p)), exact, len(null)


def weighted_trend(x: np.ndarray, y: np.ndarray, se: np.ndarray, *, confidence_level: float) -> dict[str, float]:
    """Inverse-variance weighted least squares of ``y`` on ``x`` with known SEs (meta-regression, fixed effect).

    ``w = 1/se^2``; slope ``b = sum w (x - xw)(y - yw) / sum w (x - xw)^2``, ``se_b = 1/sqrt(sum w (x - xw)^2)``;
    Wald normal CI. ``Q`` is the residual heterogeneity statistic (chi-square, k - 2 df): a large Q means the
    levels scatter around the line more than their SEs allow, and the CI is then too narrow.
    """
    from scipy import stats as st

    w = 1.0 / np.square(se)
    xw = float(np.sum(w * x) / np.sum(w))
    yw = float(np.sum(w * y) / np.sum(w))
    sxx = float(np.sum(w * (x - xw) ** 2))
    b = float(np.sum(w * (x - xw) * (y - yw)) / sxx)
    se_b = 1.0 / math.sqrt(sxx)
    z = float(st.norm.ppf(0.5 + confidence_level / 2.0))
    resid = y - (yw + b * (x - xw))
    q = float(np.sum(w * resid**2))
    return {"slope": b, "slope_se": se_b, "ci_low": b - z * se_b, "ci_high": b + z * se_b,
            "intercept": yw - b * xw, "q": q, "q_df": len(x) - 2,
            "q_pvalue": float(st.chi2.sf(q, len(x) - 2)) if len(x) > 2 else math.nan}


@register_test("did_trend", params=TrendParams, roles=("y",),
               description="Trend of the mean DiD vs reference across levels (e.g. model sizes): weighted regression "
                           "on log size with each level's SE, exact permutation p over orderings of the levels.")
def did_trend(data: pd.DataFrame, params: TrendParams, ctx: ClaimContext) -> StatResult:
    """Per level: DiD = mean over items of (mean over non-reference languages of Δ_l) − Δ_ref; then its trend.

    Returns
    -------
    StatResult
        ``estimate`` = slope of DiD on log10(level) (DiD per decade of size) from inverse-variance weighted
        least squares with each level's standard error (SD of the item DiDs / sqrt(items)), Wald CI;
        ``statistic`` = the ``method`` correlation across levels; ``pvalue`` = its permutation p over all
        ``k!`` orderings of the levels (exact); ``n`` = levels. ``details``: per-level DiD and SE, the
        heterogeneity Q, the number of orderings.

    Notes
    -----
    With k levels the smallest attainable p is 1/k! one-sided (3 levels: 1/6, so a 3-size family can never
    reach alpha 0.05; 4 levels: 1/24 = 0.042 one-sided, 2/24 = 0.083 two-sided). The t-approximation used
    before gave p = 0 and CI [1, 1] for any perfectly monotone set of levels.
    Validated against: hand-counted permutation p (4 monotone levels: 1/24 and 2/24; 3 levels: 1/6, 2/6) and
    the closed-form weighted regression against statsmodels WLS (slope, rtol 1e-10);
    tests/qdstats/claims/test_did_trend.py.
    """
    df = _pair_frame(_role(data, "y"))
    lcol = resolve_column(df, params.level_column, "params.level_column")
    rows = []
    for level, sub in df.groupby(lcol, sort=True):
        pairs = _paired(sub, params.treatment, params.baseline, "params.treatment", "params.baseline")
        pairs["d"] = pairs["a"] - pairs["b"]
        ref = pairs[pairs["language"] == params.reference].groupby("item_id")["d"].mean()
        oth = pairs[pairs["language"] != params.reference].groupby("item_id")["d"].mean()
        both = pd.concat({"r": ref, "o": oth}, axis=1, join="inner").dropna()
        if len(both):
            dd = (both["o"] - both["r"]).to_numpy(dtype=float)
            se = float(np.std(dd, ddof=1) / math.sqrt(len(dd))) if len(dd) > 1 else math.nan
            rows.append((float(level), float(dd.mean()), se, len(dd)))
    if len(rows) < 3:
        raise InsufficientDataError(f"did_trend: {len(rows)} level(s) with paired data; at least 3 are needed.")
    lv = np.array([r[0] for r in rows])
    dd = np.array([r[1] for r in rows])
    ses = np.array([r[2] for r in rows])
    xs = np.log10(lv) if (params.log_level and np.all(lv > 0)) else lv
    wc = WarningCollector()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stat, p, exact, n_ord = trend_permutation_pvalue(xs, dd, method=params.method, alternative=ctx.alternative,
                                                         max_exact=params.max_exact_levels,
                                                         n_resamples=ctx.n_resamples, rng=ctx.seed)
    if np.all(np.isfinite(ses)) and np.all(ses > 0):
        reg = weighted_trend(xs, dd, ses, confidence_level=ctx.confidence_level)
        ci = ConfidenceInterval(low=reg["ci_low"], high=reg["ci_high"], level=ctx.confidence_level,
                                method="wls-wald (known SEs)")
        if math.isfinite(reg["q_pvalue"]) and reg["q_pvalue"] < 0.05:
            wc.extend([f"levels scatter around the weighted line more than their SEs allow (Q = {reg['q']:.3g}, "
                       f"df = {reg['q_df']}, p = {reg['q_pvalue']:.3g}): the slope CI is too narrow."])
    else:
        reg = {"slope": math.nan}
        ci = ConfidenceInterval(low=math.nan, high=math.nan, level=ctx.confidence_level, method="wls-wald (known SEs)")
        wc.extend(["a level has fewer than 2 items (no standard error): no weighted regression."])
    if math.factorial(len(rows)) * 0.05 < 1 + (ctx.alternative == "two-sided"):
        wc.extend([f"{len(rows)} levels: the smallest attainable permutation p is "
                   f"{(1 + (ctx.alternative == 'two-sided')) / math.factorial(len(rows)):.3g} > 0.05."])
    return StatResult(
        test="did_trend", estimate_name="did_slope_per_log10_level", estimate=float(reg["slope"]), ci=ci,
        statistic_name=params.method, statistic=stat, pvalue=p, alternative=ctx.alternative, n=len(rows),
        n_units={"levels": len(rows)}, warnings=wc.messages,
        details={"levels": lv.tolist(), "did": dd.tolist(), "did_se": ses.tolist(), "items": [r[3] for r in rows],
                 "pvalue_method": f"permutation of levels ({'exact, all' if exact else 'random'} {n_ord} orderings) "
                                  f"of the {params.method} correlation",
                 "permutation_exact": exact, "n_orderings": n_ord,
                 **{f"wls_{k}": v for k, v in reg.items()}},
    )
