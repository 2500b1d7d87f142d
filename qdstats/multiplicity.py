"""Multiple-testing adjustment of p-values (Holm, Benjamini-Hochberg, Bonferroni).

Public function: :func:`adjust_pvalues`, returning an :class:`AdjustedPValues` record.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from statsmodels.stats.multitest import multipletests

from qdstats.options import ADJUST_METHODS, AdjustMethod
from qdstats.validation import (
    DegenerateDataWarning,
    WarningCollector,
    check_confidence_level,
    check_option,
)

__all__ = ["METHOD_ALIASES", "AdjustedPValues", "adjust_pvalues", "canonical_method"]

#: qdstats method name -> statsmodels ``multipletests`` method name.
_STATSMODELS_METHOD = {"holm": "holm", "fdr_bh": "fdr_bh", "bonferroni": "bonferroni"}
#: Other names of the same procedures: R ``p.adjust`` (``"BH"``, ``"fdr"``) and statsmodels ``multipletests``
#: (``"h"``/``"b"``/``"fdr_i"`` short forms are not accepted: too easy to confuse). Case-insensitive.
METHOD_ALIASES: dict[str, str] = {
    "holm": "holm", "bonferroni": "bonferroni", "fdr_bh": "fdr_bh",
    "bh": "fdr_bh", "fdr": "fdr_bh", "benjamini-hochberg": "fdr_bh", "benjamini_hochberg": "fdr_bh",
}


def canonical_method(method: Any) -> str:
    """The canonical name (``'holm'``, ``'fdr_bh'``, ``'bonferroni'``) of a correction method or its R/statsmodels alias.

    Examples
    --------
    >>> canonical_method("BH"), canonical_method("fdr_bh"), canonical_method("Holm")
    ('fdr_bh', 'fdr_bh', 'holm')
    """
    if isinstance(method, str) and method.lower() in METHOD_ALIASES:
        return METHOD_ALIASES[method.lower()]
    return check_option(method, "method", (*ADJUST_METHODS, "BH", "fdr"))


class AdjustedPValues(BaseModel):
    """p-values adjusted for multiple testing within one family.

    All tuples are in input order. NaN p-values stay NaN in ``p_adjusted`` and have ``reject=False``;
    they are not counted in the family size ``n_tests``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: str = Field(description="Adjustment method: 'holm', 'fdr_bh' or 'bonferroni'.")
    alpha: float = Field(description="Family-wise error rate (Holm, Bonferroni) or false discovery rate (BH).")
    p: tuple[float, ...] = Field(description="Unadjusted p-values, input order.")
    p_adjusted: tuple[float, ...] = Field(description="Adjusted p-values (R p.adjust convention, capped at 1).")
    reject: tuple[bool, ...] = Field(description="Whether the null is rejected at `alpha` after adjustment.")
    n_tests: int = Field(description="Family size: the number of non-NaN p-values.", ge=0)
    labels: tuple[str, ...] | None = Field(default=None, description="Labels of the tests (a pandas Series' index).")
    warnings: tuple[str, ...] = Field(default=(), description="Notes such as NaN p-values left out of the family.")

    def to_frame(self) -> pd.DataFrame:
        """One row per test: ``p, p_adjusted, reject`` (full precision), indexed by ``labels`` if any."""
        index = pd.Index(list(self.labels), name="test") if self.labels is not None else None
        return pd.DataFrame(
            {"p": list(self.p), "p_adjusted": list(self.p_adjusted), "reject": list(self.reject)}, index=index
        )

    def __len__(self) -> int:
        return len(self.p)


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values, R ``p.adjust(method = "holm")``:
    ``pmin(1, cummax((m - i + 1) * p_(i)))`` mapped back to input order."""
    m = p.size
    order = np.argsort(p, kind="stable")
    adj = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    out = np.empty(m)
    out[order] = adj
    return out


def adjust_pvalues(
    pvalues: Any,
    *,
    method: AdjustMethod = "holm",
    alpha: float = 0.05,
) -> AdjustedPValues:
    """Adjust a family of p-values for multiple testing.

    Parameters
    ----------
    pvalues : array_like or pandas.Series
        1-D p-values in [0, 1]; NaN is allowed (see Notes). A Series' index becomes ``labels``.
    method : {'holm', 'fdr_bh', 'bonferroni'}
        Also accepted, case-insensitively: R ``p.adjust``'s names ``'BH'`` and ``'fdr'`` (= ``'fdr_bh'``); the
        result's ``method`` is always the canonical name.
        ``'holm'`` (default): Holm (1979) step-down, controls the family-wise error rate.
        ``'fdr_bh'``: Benjamini & Hochberg (1995) step-up, controls the false discovery rate
        (independent or positively dependent tests). ``'bonferroni'``: ``min(1, m * p)``.
    alpha : float
        Level for ``reject``, in (0, 1).

    Returns
    -------
    AdjustedPValues
        ``p``, ``p_adjusted``, ``reject`` (tuples in input order), ``method``, ``alpha``, ``n_tests``,
        ``labels``, ``warnings``; ``.to_frame()`` gives a table.

    Raises
    ------
    ValueError
        Unknown ``method``, ``alpha`` outside (0, 1), p-values outside [0, 1] or infinite, input that is
        not 1-D.
    TypeError
        Non-numeric input.

    Warns
    -----
    DegenerateDataWarning
        Some or all p-values are NaN (they are excluded from the family; the text is also in
        ``result.warnings``).

    Notes
    -----
    BH and Bonferroni are computed with :func:`statsmodels.stats.multitest.multipletests`; Holm uses
    the same closed form written out here (``min(1, cummax((m - i + 1) p_(i)))``, ``reject = p_adj <=
    alpha``) because statsmodels' Holm branch calls ``gc.collect()`` on every call (about 0.1 s each in
    a large process, which adds up over many claim families); the test-suite checks it against both R
    and ``multipletests(method="holm")``. Adjustment uses the non-NaN p-values only, so
    NaN p-values (e.g. from a degenerate test) are kept as NaN and **do not count** toward the family
    size ``m``; this is also R ``p.adjust``'s default (``n`` = number of non-NA values). Report
    ``n_tests`` alongside the adjusted values, since dropping a test makes the correction milder for the
    others. Adjusted p-values are capped at 1 and made monotone in the raw p-values, as in R.

    Validated against: R 4.2.2 ``p.adjust(p, method = "holm" | "BH" | "bonferroni")`` including NA
    inputs, rtol 1e-10; statsmodels 0.15 ``multipletests(method="holm")`` (p_adjusted and reject).

    References
    ----------
    .. [1] Holm, S. (1979). A simple sequentially rejective multiple test procedure. Scandinavian
       Journal of Statistics, 6(2), 65-70. https://www.jstor.org/stable/4615733
    .. [2] Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate. JRSS B, 57(1),
       289-300. https://doi.org/10.1111/j.2517-6161.1995.tb02031.x

    Examples
    --------
    >>> res = adjust_pvalues([0.01, 0.04, 0.03], method="holm")
    >>> [round(v, 6) for v in res.p_adjusted]
    [0.03, 0.06, 0.06]
    >>> res.reject
    (True, False, False)
    """
    method = canonical_method(method)
    a = check_confidence_level(alpha, "alpha")
    labels: tuple[str, ...] | None = None
    if isinstance(pvalues, pd.Series):
        labels = tuple(str(i) for i in pvalues.index)
        pvalues = pvalues.to_numpy()
    try:
        p = np.asarray(pvalues, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"`pvalues` must be a 1-D array of numbers; could not convert: {exc}") from None
    if p.ndim == 0:
        p = p.reshape(1)
    if p.ndim != 1:
        raise ValueError(f"`pvalues` must be 1-D; got an array with shape {p.shape}.")
    finite = ~np.isnan(p)
    bad = finite & ((p < 0.0) | (p > 1.0))
    if np.isinf(p).any() or bad.any():
        shown = [float(v) for v in p[bad | np.isinf(p)][:5]]
        raise ValueError(f"`pvalues` must lie in [0, 1] (or be NaN); got {shown}.")

    wc = WarningCollector()
    n_nan = int((~finite).sum())
    if p.size and n_nan == p.size:
        wc.warn(f"all {p.size} p-values are NaN; nothing to adjust.", DegenerateDataWarning)
    elif n_nan:
        wc.warn(
            f"{n_nan} of {p.size} p-values are NaN; they stay NaN and are excluded from the family "
            f"(family size {p.size - n_nan}).",
            DegenerateDataWarning,
        )

    p_adj = np.full(p.shape, math.nan)
    reject = np.zeros(p.shape, dtype=bool)
    if finite.any():
        if method == "holm":
            padj = _holm(p[finite])
            rej = padj <= a
        else:
            rej, padj, _, _ = multipletests(p[finite], alpha=a, method=_STATSMODELS_METHOD[method])
        p_adj[finite] = np.minimum(padj, 1.0)
        reject[finite] = rej
    return AdjustedPValues(
        method=method,
        alpha=a,
        p=tuple(float(v) for v in p),
        p_adjusted=tuple(float(v) for v in p_adj),
        reject=tuple(bool(v) for v in reject),
        n_tests=int(finite.sum()),
        labels=labels,
        warnings=wc.messages,
    )
