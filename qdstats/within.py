"""Within-language analyses on tidy data with a grouping column (``language`` by default).

* :func:`corr_by_group`: one correlation per language (optionally multiplicity-adjusted).
* :func:`pooled_within_corr` / :func:`rm_corr`: the correlation of group-demeaned x and y, i.e. the
  common within-language association (repeated-measures correlation, Bakdash & Marusich 2017).
* :func:`mixed_slope`: the fixed-effect slope of a linear mixed model (statsmodels ``MixedLM``) with
  random intercepts (and optionally slopes) per language, plus convergence/boundary/singularity flags.

Across-language correlations on a handful of languages confound within- and between-language
variation; these functions separate the within part.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from qdstats.options import ADJUST_METHODS, ALTERNATIVES, CORR_METHODS, AdjustMethod, Alternative, CorrMethod, NanPolicy
from qdstats.validation import (
    DegenerateDataWarning,
    SmallSampleWarning,
    UnknownNameError,
    WarningCollector,
    check_confidence_level,
    check_int,
    check_option,
    did_you_mean,
)
from qdstats.correlation import CorrelationResult, t_pvalue, corr, fisher_z_ci, fisher_z_se
from qdstats.multiplicity import adjust_pvalues
from qdstats.results import ConfidenceInterval, StatResult

__all__ = [
    "GroupCorrelationTable",
    "MixedModelResult",
    "corr_by_group",
    "mixed_slope",
    "pooled_within_corr",
    "rm_corr",
]

MIN_GROUPS_MIXED = 5
#: ``method`` names accepted by statsmodels ``MixedLM.fit`` (through ``LikelihoodModel.fit``).
MIXEDLM_OPTIMIZERS: tuple[str, ...] = ("bfgs", "lbfgs", "powell", "cg", "ncg", "nm", "newton", "basinhopping",
                                       "minimize")
# lme4's isSingular() flags a relative Cholesky factor entry below 1e-4; lme4's bounded optimizer
# lands exactly on 0, while statsmodels (sqrt parametrisation, unbounded optimizers) only approaches
# it (sd ratios ~1e-4 seen), so the threshold here is a relative sd of 1e-3 (variance ratio 1e-6).
_SINGULAR_TOL = 1e-3


# ----------------------------------------------------------------------------- helpers
def _need_frame(data: Any) -> pd.DataFrame:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"`data` must be a pandas DataFrame; got {type(data).__name__}.")
    return data


def _need_column(data: pd.DataFrame, col: Any, param: str, *, numeric: bool = False) -> None:
    if not isinstance(col, str):
        raise TypeError(f"`{param}` must be a column name (str); got {col!r}.")
    if col not in data.columns:
        cols = [str(c) for c in data.columns]
        raise UnknownNameError(
            f"`{param}` column {col!r} not found in `data`; available columns: {cols}." + did_you_mean(col, cols)
        )
    if numeric and not pd.api.types.is_numeric_dtype(data[col]):
        raise TypeError(f"`{param}` column {col!r} must be numeric; got dtype {data[col].dtype}.")


def _select(
    data: pd.DataFrame, cols: dict[str, str], numeric: Sequence[str], group_param: str, nan_policy: str,
) -> tuple[pd.DataFrame, int, bool]:
    """Columns renamed to their parameter names; NaN handling row-wise."""
    check_option(nan_policy, "nan_policy", ("raise", "omit", "propagate"))
    names = list(cols.values())
    if len(set(names)) < len(names):
        raise ValueError(f"columns must be distinct; got {cols}.")
    for param, col in cols.items():
        _need_column(data, col, param, numeric=param in numeric)
    frame = data[names].copy()
    frame.columns = list(cols)
    for param in numeric:
        if np.isinf(frame[param].to_numpy(dtype=np.float64)).any():
            raise ValueError(f"`{param}` column {cols[param]!r} contains infinite values.")
    if frame[group_param].isna().any():
        raise ValueError(f"`{group_param}` column {cols[group_param]!r} contains missing labels.")
    mask = frame[list(numeric)].isna().any(axis=1).to_numpy()
    if mask.any():
        if nan_policy == "raise":
            bad = [f"`{p}`" for p in numeric if frame[p].isna().any()]
            raise ValueError(f"{', '.join(bad)} contain NaN ({int(mask.sum())} rows); pass nan_policy='omit' to drop "
                             "those rows or 'propagate' to return NaN.")
        if nan_policy == "propagate":
            return frame, 0, True
        return frame[~mask].reset_index(drop=True), int(mask.sum()), False
    return frame, 0, False


# ----------------------------------------------------------------------------- corr_by_group
class GroupCorrelationTable(BaseModel):
    """Per-group correlations: ``results[group]`` is a :class:`~qdstats.correlation.CorrelationResult`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: str = Field(description="Column correlated (x).")
    y: str = Field(description="Column correlated (y).")
    group: str = Field(description="Grouping column, e.g. 'language'.")
    method: str = Field(description="'pearson', 'spearman' or 'kendall'.")
    adjust: str | None = Field(default=None, description="Multiplicity adjustment across groups, or None.")
    results: dict[str, CorrelationResult] = Field(description="Per-group results, sorted by group label.")
    pvalues_adjusted: dict[str, float] = Field(default_factory=dict, description="Adjusted p per group (NaN if p NaN).")
    warnings: tuple[str, ...] = Field(default=(), description="Table-level notes.")

    def __getitem__(self, group: str) -> CorrelationResult:
        if group not in self.results:
            raise UnknownNameError(f"group {group!r} not in this table; available: {list(self.results)}."
                                   + did_you_mean(group, self.results))
        return self.results[group]

    def __len__(self) -> int:
        return len(self.results)

    def to_frame(self) -> pd.DataFrame:
        """One row per group at full precision."""
        rows = []
        for g, r in self.results.items():
            row = {self.group: g, "method": self.method, "n": r.n, "estimate": r.estimate,
                   "ci_low": r.ci.low if r.ci else math.nan, "ci_high": r.ci.high if r.ci else math.nan,
                   "ci_level": r.ci.level if r.ci else math.nan, "ci_method": r.ci.method if r.ci else None,
                   "pvalue": r.pvalue if r.pvalue is not None else math.nan}
            if self.adjust:
                row["pvalue_adjusted"] = self.pvalues_adjusted.get(g, math.nan)
                row["adjust"] = self.adjust
            row["warnings"] = " | ".join(r.warnings)
            rows.append(row)
        return pd.DataFrame(rows).set_index(self.group)


def corr_by_group(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str = "language",
    method: CorrMethod = "pearson",
    alternative: Alternative = "two-sided",
    confidence_level: float = 0.95,
    adjust: AdjustMethod | None = None,
    nan_policy: NanPolicy = "raise",
) -> GroupCorrelationTable:
    """Correlation of ``x`` and ``y`` separately within each group (language).

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy data, one row per observation (e.g. per sentence).
    x, y : str
        Numeric columns.
    group : str, default 'language'
        Grouping column.
    method : {'pearson', 'spearman', 'kendall'}, default 'pearson'
    alternative : {'two-sided', 'less', 'greater'}, default 'two-sided'
    confidence_level : float, default 0.95
    adjust : {'holm', 'fdr_bh', 'bonferroni'} or None, default None
        Multiplicity adjustment of the per-group p-values (over groups with a finite p).
    nan_policy : {'raise', 'omit', 'propagate'}, default 'raise'
        Passed to :func:`qdstats.correlation.corr` per group.

    Returns
    -------
    GroupCorrelationTable
        ``results`` (group -> ``CorrelationResult``), ``pvalues_adjusted``, ``to_frame()``.

    Raises
    ------
    UnknownNameError
        Missing column.
    ValueError
        Bad option, NaN with ``nan_policy='raise'``, fewer than one group.
    TypeError
        Non-numeric ``x``/``y``.

    Warns
    -----
    DegenerateDataWarning
        Per group (constant input, n < 3 ...), from :func:`~qdstats.correlation.corr`.

    Notes
    -----
    Each group is analysed by :func:`qdstats.correlation.corr` (Fisher-z CIs); the adjustment uses
    :func:`qdstats.multiplicity.adjust_pvalues` over the groups with a finite p-value (NaN p-values
    stay NaN and do not count toward the family size; a warning says so).
    Validated against: per-group values equal ``corr`` on the subset (rtol 1e-12); Holm against
    statsmodels ``multipletests`` (rtol 1e-12).

    References
    ----------
    Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scand. J. Stat.* 6, 65-70.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"language": np.repeat(["a", "b"], 20), "x": rng.normal(size=40)})
    >>> df["y"] = df["x"] + rng.normal(size=40)
    >>> tab = corr_by_group(df, x="x", y="y", adjust="holm")
    >>> list(tab.to_frame().index)
    ['a', 'b']
    """
    data = _need_frame(data)
    check_option(method, "method", CORR_METHODS)
    check_option(alternative, "alternative", ALTERNATIVES)
    level = check_confidence_level(confidence_level)
    if adjust is not None:
        check_option(adjust, "adjust", ADJUST_METHODS)
    check_option(nan_policy, "nan_policy", ("raise", "omit", "propagate"))
    for col, param in ((x, "x"), (y, "y")):
        _need_column(data, col, param, numeric=True)
    _need_column(data, group, "group")
    if data[group].isna().any():
        raise ValueError(f"`group` column {group!r} contains missing labels.")
    labels = sorted(pd.unique(data[group]), key=str)
    if not labels:
        raise ValueError("`data` has no rows.")
    results: dict[str, CorrelationResult] = {}
    for g in labels:
        sub = data[data[group] == g]
        results[str(g)] = corr(sub[x].to_numpy(dtype=np.float64), sub[y].to_numpy(dtype=np.float64), method=method,
                               alternative=alternative, confidence_level=level, nan_policy=nan_policy)
    adj: dict[str, float] = {}
    wc = WarningCollector()
    if adjust is not None:
        p = pd.Series([r.pvalue if r.pvalue is not None else np.nan for r in results.values()],
                      index=list(results), dtype=np.float64)
        if p.notna().any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DegenerateDataWarning)  # re-issued below via the collector
                adjusted = adjust_pvalues(p, method=adjust)
            adj = dict(zip(results, map(float, adjusted.p_adjusted)))
            for msg in adjusted.warnings:
                wc.warn(f"{adjust} adjustment: {msg}", DegenerateDataWarning)
        else:
            adj = dict.fromkeys(results, math.nan)
            wc.warn("no finite per-group p-value: nothing to adjust.", DegenerateDataWarning)
    return GroupCorrelationTable(x=x, y=y, group=group, method=method, adjust=adjust, results=results,
                                 pvalues_adjusted=adj, warnings=wc.messages)


# ----------------------------------------------------------------------------- pooled within corr / rm_corr
def _within_corr(
    data: pd.DataFrame, *, x: str, y: str, group: str, group_param: str, alternative: str,
    confidence_level: Any, nan_policy: str, test: str,
) -> CorrelationResult:
    data = _need_frame(data)
    check_option(alternative, "alternative", ALTERNATIVES)
    level = check_confidence_level(confidence_level)
    frame, n_dropped, has_nan = _select(data, {"x": x, "y": y, group_param: group}, ("x", "y"), group_param,
                                        nan_policy)
    wc = WarningCollector()
    if n_dropped:
        wc.extend([f"{n_dropped} row(s) with NaN omitted."])
    method_ci = "fisher-z"

    def nan_result(msg: str, n: int, n_groups: int) -> CorrelationResult:
        wc.warn(msg, DegenerateDataWarning, stacklevel=4)
        return CorrelationResult(
            test=test, estimate_name="r", estimate=math.nan,
            ci=ConfidenceInterval(low=math.nan, high=math.nan, level=level, method=method_ci),
            statistic_name="t", statistic=math.nan, df=None, pvalue=math.nan, alternative=alternative, n=n,
            n_units={"observations": n, "groups": n_groups}, variables=(x, y), covariates=(group,),
            warnings=wc.messages, method="pearson",
        )

    if has_nan:
        return nan_result("data contain NaN and nan_policy='propagate': result is NaN.", len(frame),
                          int(frame[group_param].nunique()))
    sizes = frame.groupby(group_param, sort=True)["x"].transform("size").to_numpy()
    singles = int((frame.groupby(group_param)["x"].size() == 1).sum())
    if singles:
        wc.extend([f"{singles} group(s) with a single observation carry no within-group information "
                   "(they are dropped; the degrees of freedom are unchanged)."])
        frame = frame[sizes > 1]
    n = len(frame)
    n_groups = int(frame[group_param].nunique())
    df = n - n_groups - 1
    if n_groups == 0 or df < 1:
        return nan_result(f"too few observations for a within-group correlation: n = {n}, groups = {n_groups}, "
                          f"df = n - groups - 1 = {df} < 1.", n, n_groups)
    xd = (frame["x"] - frame.groupby(group_param)["x"].transform("mean")).to_numpy(dtype=np.float64)
    yd = (frame["y"] - frame.groupby(group_param)["y"].transform("mean")).to_numpy(dtype=np.float64)
    sxx, syy, sxy = float(xd @ xd), float(yd @ yd), float(xd @ yd)
    scale_x = float(np.abs(frame["x"]).max()) or 1.0
    scale_y = float(np.abs(frame["y"]).max()) or 1.0
    if sxx <= (1e-13 * scale_x) ** 2 * n or syy <= (1e-13 * scale_y) ** 2 * n:
        return nan_result("x or y is constant within every group: the within-group correlation is undefined.",
                          n, n_groups)
    r = float(np.clip(sxy / math.sqrt(sxx * syy), -1.0, 1.0))
    with np.errstate(divide="ignore"):
        t = float(r * math.sqrt(df / ((1.0 - r) * (1.0 + r)))) if abs(r) < 1 else math.copysign(math.inf, r)
    p = t_pvalue(t, df, alternative)
    # Fisher z with the ANCOVA degrees of freedom: se = 1/sqrt(df - 1) = 1/sqrt(n_eff - 3), n_eff = df + 2
    n_eff = df + 2
    se = float(fisher_z_se(r, n_eff, method="pearson"))
    low, high = fisher_z_ci(r, se, confidence_level=level, alternative=alternative)
    if not math.isfinite(se):
        wc.warn(f"df = {df} too small for a Fisher-z CI (needs df >= 2): CI is NaN.", DegenerateDataWarning,
                stacklevel=4)
    if n_groups < MIN_GROUPS_MIXED:
        wc.warn(f"only {n_groups} groups: the within-group association rests on few groups.", SmallSampleWarning,
                stacklevel=4)
    return CorrelationResult(
        test=test, estimate_name="r", estimate=r,
        ci=ConfidenceInterval(low=float(low), high=float(high), level=level, method=method_ci),
        statistic_name="t", statistic=t, df=float(df), pvalue=p, alternative=alternative, n=n,
        n_units={"observations": n, "groups": n_groups}, variables=(x, y), covariates=(group,),
        warnings=wc.messages, method="pearson", fisher_z_se=se,
        details={"df_formula": "n - groups - 1", "ci_n_eff": n_eff, "within_ss_x": sxx, "within_ss_y": syy},
    )


def pooled_within_corr(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str = "language",
    alternative: Alternative = "two-sided",
    confidence_level: float = 0.95,
    nan_policy: NanPolicy = "raise",
) -> CorrelationResult:
    """Pooled within-group correlation: Pearson r of group-demeaned ``x`` and ``y``.

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy data, one row per observation.
    x, y : str
        Numeric columns.
    group : str, default 'language'
        Grouping column; each group gets its own mean (intercept).
    alternative : {'two-sided', 'less', 'greater'}, default 'two-sided'
    confidence_level : float, default 0.95
    nan_policy : {'raise', 'omit', 'propagate'}, default 'raise'

    Returns
    -------
    CorrelationResult
        ``estimate`` = r, ``statistic`` = t with ``df = n - G - 1``, ``pvalue``, Fisher-z ``ci`` with
        standard error ``1/sqrt(df - 1)``, ``n_units`` (``observations``, ``groups``).

    Raises
    ------
    UnknownNameError
        Missing column.
    ValueError
        Bad option, NaN with ``nan_policy='raise'``, infinite values, missing group labels.
    TypeError
        Non-numeric column or ``data`` not a DataFrame.

    Warns
    -----
    DegenerateDataWarning
        ``x`` or ``y`` constant within every group, or ``df < 1`` (NaN result).
    SmallSampleWarning
        Fewer than 5 groups.

    Notes
    -----
    ``r_w = sum(dx*dy)/sqrt(sum(dx^2) sum(dy^2))`` with ``dx = x - mean_g(x)``. It equals the partial
    correlation of x and y given group dummies, i.e. the ANCOVA ``y ~ x + C(group)``; the t-test of the
    slope has ``n - G - 1`` df. This is exactly the repeated-measures correlation (:func:`rm_corr`).
    Groups with one observation are dropped (they change n and G by the same amount).
    Validated against: statsmodels OLS ``y ~ x + C(g)`` (r from the slope t, rtol 1e-10; p rtol 1e-10)
    and pingouin 0.7 ``rm_corr`` (r, dof, p rtol 1e-10; its CI is rounded to 2 decimals, atol 5e-3).

    References
    ----------
    Bakdash, J. Z. & Marusich, L. R. (2017). Repeated measures correlation. *Front. Psychol.* 8, 456.
    DOI: 10.3389/fpsyg.2017.00456

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"language": list("aaabbb"), "x": [1., 2, 3, 10, 11, 12], "y": [5., 6, 8, 0, 1, 2]})
    >>> round(pooled_within_corr(df, x="x", y="y").estimate, 6)
    0.968246
    """
    return _within_corr(data, x=x, y=y, group=group, group_param="group", alternative=alternative,
                        confidence_level=confidence_level, nan_policy=nan_policy, test="pooled-within-pearson")


def rm_corr(
    data: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str = "language",
    alternative: Alternative = "two-sided",
    confidence_level: float = 0.95,
    nan_policy: NanPolicy = "raise",
) -> CorrelationResult:
    """Repeated-measures correlation (Bakdash & Marusich 2017) with a Fisher-z CI.

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy data with several observations per group (here: per language; pingouin calls it the subject).
    x, y : str
        Numeric columns.
    group : str, default 'language'
        The repeated unit (its intercepts are removed); ``subject`` in pingouin's ``rm_corr``.
    alternative : {'two-sided', 'less', 'greater'}, default 'two-sided'
    confidence_level : float, default 0.95
    nan_policy : {'raise', 'omit', 'propagate'}, default 'raise'

    Returns
    -------
    CorrelationResult
        As :func:`pooled_within_corr` (``test='rm_corr'``).

    Raises
    ------
    UnknownNameError, ValueError, TypeError
        As :func:`pooled_within_corr`.

    Warns
    -----
    DegenerateDataWarning, SmallSampleWarning
        As :func:`pooled_within_corr`.

    Notes
    -----
    rmcorr is the ANCOVA ``y ~ C(group) + x``: ``r = sign(b) sqrt(SS_x / (SS_x + SS_error))`` with
    ``df = N - k - 1``; algebraically identical to the pooled within-subject correlation, which is
    how it is computed here. The CI is Fisher z with ``n = df + 2`` (as R ``rmcorr`` and pingouin).
    Validated against: pingouin 0.7 ``rm_corr`` (r, dof, p: rtol 1e-10; CI rounded by pingouin to
    2 decimals: atol 5e-3) and the closed form via statsmodels OLS with subject dummies (rtol 1e-10).

    References
    ----------
    Bakdash, J. Z. & Marusich, L. R. (2017). Repeated measures correlation. *Front. Psychol.* 8, 456.
    DOI: 10.3389/fpsyg.2017.00456

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"language": list("aaabbb"), "x": [1., 2, 3, 10, 11, 12], "y": [5., 6, 8, 0, 1, 2]})
    >>> res = rm_corr(df, x="x", y="y", group="language")
    >>> res.df
    3.0
    """
    return _within_corr(data, x=x, y=y, group=group, group_param="group", alternative=alternative,
                        confidence_level=confidence_level, nan_policy=nan_policy, test="rm_corr")


# ----------------------------------------------------------------------------- mixed_slope
class MixedModelResult(StatResult):
    """Fixed-effect slope of a linear mixed model with diagnostics."""

    fixed_effects: dict[str, float] = Field(
        description="All fixed-effect estimates (intercept, predictor, covariates)."
    )
    fixed_effects_se: dict[str, float] = Field(description="Standard errors of the fixed effects.")
    random_effects: dict[str, float] = Field(
        description="Variance components: 'group_var', 'slope_var', 'intercept_slope_cov', '<name>_var', "
        "'residual_var'."
    )
    n_groups: int = Field(description="Number of groups (languages).", ge=0)
    converged: bool = Field(description="statsmodels reported convergence and no ConvergenceWarning about failure.")
    boundary: bool = Field(description="A variance component is ~0 (sd relative to the residual sd < 1e-3).")
    singular: bool = Field(description="The random-effects covariance is singular (lme4 isSingular analogue).")
    reml: bool = Field(description="Fitted by REML (True) or ML.")
    log_likelihood: float = Field(description="(Restricted) log-likelihood at the optimum.")
    optimizer: str = Field(description="Optimizer(s) tried by statsmodels.")


def _gls_fe_cov(
    exog: np.ndarray, z_re: np.ndarray, group_codes: np.ndarray, vc_codes: list[np.ndarray], cov_re: np.ndarray,
    vcomp: np.ndarray, scale: float,
) -> np.ndarray:
    """``(X' V^-1 X)^-1``, the fixed-effect covariance lme4 reports (``vcov``), at the fitted variances.

    ``V_g = Z_g G Z_g' + scale I`` with ``Z_g = [random-effect columns, variance-component dummies]`` and
    ``G = blockdiag(cov_re, vcomp_k I)``; inverted with ``(sI + ZGZ')^-1 = (I - Z (sI + GZ'Z)^-1 G Z')/s``,
    which stays valid when ``G`` is singular (boundary fits).
    """
    p = exog.shape[1]
    info = np.zeros((p, p))
    for g in np.unique(group_codes):
        idx = np.flatnonzero(group_codes == g)
        x = exog[idx]
        cols = [z_re[idx]]
        diag = [cov_re]
        for codes, v in zip(vc_codes, vcomp):
            lv, inv = np.unique(codes[idx], return_inverse=True)
            d = np.zeros((len(idx), len(lv)))
            d[np.arange(len(idx)), inv] = 1.0
            cols.append(d)
            diag.append(v * np.eye(len(lv)))
        z = np.hstack(cols)
        q = z.shape[1]
        gm = np.zeros((q, q))
        at = 0
        for blk in diag:
            k = blk.shape[0]
            gm[at:at + k, at:at + k] = blk
            at += k
        zx = z.T @ x
        middle = np.linalg.solve(scale * np.eye(q) + gm @ (z.T @ z), gm @ zx)
        info += (x.T @ x - zx.T @ middle) / scale
    return np.linalg.inv(info)


def _mixed_slope_iv(
    data: Any, y: Any, x: Any, covariates: Any, group: Any, random_slope: Any,
    variance_components: Any, reml: Any, confidence_level: Any, alternative: Any, nan_policy: Any,
    optimizer: Any, maxiter: Any,
) -> tuple[float, list[str], int, tuple[str, ...], dict[str, str], pd.DataFrame, int, bool]:
    """Validate :func:`mixed_slope`'s arguments; returns the cleaned options and the selected frame."""
    data = _need_frame(data)
    level = check_confidence_level(confidence_level)
    check_option(alternative, "alternative", ALTERNATIVES)
    methods = [optimizer] if isinstance(optimizer, str) else list(optimizer)
    if not methods:
        raise ValueError("`optimizer` must name at least one statsmodels optimizer; got an empty sequence.")
    for m in methods:
        check_option(m, "optimizer", MIXEDLM_OPTIMIZERS)
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    if isinstance(covariates, str):
        covariates = (covariates,)
    covariates = tuple(covariates)
    vcs = dict(variance_components or {})
    if not isinstance(random_slope, (bool, np.bool_)):
        raise TypeError(f"`random_slope` must be a bool; got {random_slope!r}.")
    if not isinstance(reml, (bool, np.bool_)):
        raise TypeError(f"`reml` must be a bool; got {reml!r}.")
    cols: dict[str, str] = {"y": y, "x": x, "group": group}
    for i, c in enumerate(covariates):
        cols[f"covariates[{i}]"] = c
    for name, c in vcs.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"`variance_components` keys must be identifiers; got {name!r}.")
        cols[f"variance_components[{name!r}]"] = c
    numeric = ["y", "x"] + [f"covariates[{i}]" for i in range(len(covariates))]
    frame, n_dropped, has_nan = _select(data, cols, numeric, "group", nan_policy)
    n_groups = int(frame["group"].nunique())
    if not has_nan and n_groups < 2:  # a propagated NaN returns a NaN result before this check
        raise ValueError(f"`group` column {group!r} must have at least 2 groups for a mixed model; got {n_groups}.")
    return level, methods, maxiter, covariates, vcs, frame, n_dropped, has_nan


def _mixed_design(
    frame: pd.DataFrame, predictor: str, covariates: tuple[str, ...], vcs: dict[str, str],
) -> tuple[list[str], np.ndarray, pd.DataFrame, dict[str, str], str]:
    """Full-rank fixed-effect design plus the internal frame and formulas (safe column names)."""
    n = len(frame)
    exog_names = ["Intercept", predictor, *covariates]
    exog = np.column_stack([np.ones(n), frame["x"].to_numpy(dtype=np.float64)]
                           + [frame[f"covariates[{i}]"].to_numpy(dtype=np.float64) for i in range(len(covariates))])
    if np.linalg.matrix_rank(exog) < exog.shape[1]:
        raise ValueError(f"the fixed-effect design ({exog_names}) is rank-deficient (collinear or constant "
                         "x/covariates).")
    internal = pd.DataFrame({"_y": frame["y"].to_numpy(dtype=np.float64),
                             "_x": frame["x"].to_numpy(dtype=np.float64),
                             "_g": frame["group"].astype(str).to_numpy()})
    for i in range(len(covariates)):
        internal[f"_c{i}"] = frame[f"covariates[{i}]"].to_numpy(dtype=np.float64)
    vc_formula = {}
    for i, name in enumerate(vcs):
        internal[f"_vc{i}"] = frame[f"variance_components[{name!r}]"].astype(str).to_numpy()
        vc_formula[name] = f"0 + C(_vc{i})"
    formula = "_y ~ " + " + ".join(["_x"] + [f"_c{i}" for i in range(len(covariates))])
    return exog_names, exog, internal, vc_formula, formula


def _fit_best_mixedlm(
    model: Any, methods: list[str], reml: bool, maxiter: int, wc: WarningCollector,
) -> tuple[Any, list[warnings.WarningMessage], str, dict[str, float]]:
    """Fit with each optimizer separately and keep the best finite (restricted) log-likelihood."""
    best: Any = None
    best_caught: list[warnings.WarningMessage] = []
    best_method = ""
    tried: dict[str, float] = {}
    for m in methods:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                cand = model.fit(reml=bool(reml), method=[m], maxiter=maxiter)
            except (np.linalg.LinAlgError, ValueError) as exc:
                tried[m] = math.nan
                wc.extend([f"optimizer {m!r} failed: {exc}"])
                continue
        llf = float(cand.llf)
        tried[m] = llf
        # a later optimizer replaces the kept fit only when clearly better: optimizers that reach the same
        # optimum differ in the last digits of llf by thread count and BLAS, which must not flip the choice
        if math.isfinite(llf) and (best is None or llf > float(best.llf) + 1e-6 * max(1.0, abs(float(best.llf)))):
            best, best_caught, best_method = cand, list(caught), m
    if best is None:
        raise ValueError(f"MixedLM failed with every optimizer {methods} (log-likelihoods {tried}); the model "
                         "may be over-parameterised for these data.")
    return best, best_caught, best_method, tried


def _report_fit_warnings(caught: list[warnings.WarningMessage], method: str, wc: WarningCollector) -> bool:
    """Re-issue statsmodels' convergence/singularity warnings; True when it reported non-convergence."""
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    conv_fail = False
    for w in caught:
        if issubclass(w.category, ConvergenceWarning) or "singular" in str(w.message).lower() or "boundary" in str(
            w.message
        ).lower():
            text = str(w.message).strip().replace("\n", " ")
            if "failed to converge" in text.lower() or "did not converge" in text.lower():
                conv_fail = True
            # stacklevel 5: _report_fit_warnings <- _mixed_slope_fit <- mixed_slope <- its caller
            wc.warn(f"statsmodels MixedLM ({method}): {text}", DegenerateDataWarning, stacklevel=5)
    return conv_fail


def _mixed_variances(
    fit: Any, vcs: dict[str, str], random_slope: bool,
) -> tuple[float, np.ndarray, np.ndarray, dict[str, float]]:
    """Residual scale, random-effect covariance, variance components and the named variances."""
    scale = float(fit.scale)
    cov_re = np.asarray(fit.cov_re, dtype=np.float64)
    re_vars: dict[str, float] = {"group_var": float(cov_re[0, 0])}
    if random_slope:
        re_vars["slope_var"] = float(cov_re[1, 1])
        re_vars["intercept_slope_cov"] = float(cov_re[0, 1])
    vcomp = np.asarray(fit.vcomp, dtype=np.float64) if vcs else np.array([])
    for name, v in zip(vcs, vcomp):
        re_vars[f"{name}_var"] = float(v)
    re_vars["residual_var"] = scale
    return scale, cov_re, vcomp, re_vars


def _fe_standard_errors(
    exog: np.ndarray, internal: pd.DataFrame, n_vcs: int, random_slope: bool, cov_re: np.ndarray,
    vcomp: np.ndarray, scale: float,
) -> np.ndarray:
    """lme4-style fixed-effect SEs ``sqrt(diag((X' V^-1 X)^-1))``; NaN when that matrix is singular."""
    vc_codes = [internal[f"_vc{i}"].to_numpy() for i in range(n_vcs)]
    z_re = exog[:, :2] if random_slope else exog[:, :1]
    gcodes = internal["_g"].to_numpy()
    with np.errstate(all="ignore"):
        try:
            fe_cov = _gls_fe_cov(exog, z_re, gcodes, vc_codes, cov_re, vcomp, scale)
            bse = np.sqrt(np.diag(fe_cov))
        except np.linalg.LinAlgError:
            bse = np.full(exog.shape[1], np.nan)
    return bse


def _mixed_flags(
    re_vars: dict[str, float], cov_re: np.ndarray, vcomp: np.ndarray, scale: float, random_slope: bool,
) -> tuple[bool, bool]:
    """``(boundary, singular)``: a relative variance or covariance eigenvalue below ``_SINGULAR_TOL**2``."""
    tol = _SINGULAR_TOL**2
    rel_vars = [re_vars["group_var"] / scale] + ([re_vars["slope_var"] / scale] if random_slope else [])
    rel_vars += list(vcomp / scale)
    boundary = bool(any(v < tol for v in rel_vars))
    eig_min = float(np.linalg.eigvalsh(cov_re / scale).min()) if cov_re.size else 0.0
    singular = bool(boundary or eig_min < tol)
    return boundary, singular


class _MixedFit(NamedTuple):
    """What :func:`mixed_slope` reports from the chosen MixedLM fit."""

    exog_names: list[str]
    fe: np.ndarray
    bse: np.ndarray
    re_vars: dict[str, float]
    converged: bool
    boundary: bool
    singular: bool
    log_likelihood: float
    optimizer_used: str
    loglik_by_optimizer: dict[str, float]


def _mixed_slope_fit(
    frame: pd.DataFrame, predictor: str, covariates: tuple[str, ...], vcs: dict[str, str], random_slope: bool,
    reml: bool, methods: list[str], maxiter: int, wc: WarningCollector,
) -> _MixedFit:
    """Fit MixedLM (best of ``methods``) and summarise estimates, SEs, variances and diagnostic flags."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    exog_names, exog, internal, vc_formula, formula = _mixed_design(frame, predictor, covariates, vcs)
    model = MixedLM.from_formula(formula, data=internal, groups="_g", re_formula="1 + _x" if random_slope else "1",
                                 vc_formula=vc_formula or None)
    fit, caught, best_method, tried = _fit_best_mixedlm(model, methods, reml, maxiter, wc)
    conv_fail = _report_fit_warnings(caught, best_method, wc)
    scale, cov_re, vcomp, re_vars = _mixed_variances(fit, vcs, random_slope)
    fe = np.asarray(fit.fe_params, dtype=np.float64)
    bse = _fe_standard_errors(exog, internal, len(vcs), random_slope, cov_re, vcomp, scale)
    boundary, singular = _mixed_flags(re_vars, cov_re, vcomp, scale, random_slope)
    converged = bool(getattr(fit, "converged", True)) and not conv_fail
    # stacklevel 4: _mixed_slope_fit <- mixed_slope <- its caller
    if not converged:
        wc.warn("MixedLM did not converge: estimates are unreliable.", DegenerateDataWarning, stacklevel=4)
    if boundary:
        wc.warn("boundary fit: a random-effect variance is ~0 (sd < 1e-3 x residual sd).", DegenerateDataWarning,
                stacklevel=4)
    elif singular:
        wc.warn("singular fit: the random-effects covariance is singular (correlation ~ +/-1).", DegenerateDataWarning,
                stacklevel=4)
    return _MixedFit(exog_names, fe, bse, re_vars, converged, boundary, singular, float(fit.llf), best_method, tried)


def _wald_slope(slope: float, se: float, level: float, alternative: str) -> tuple[float, float, float, float]:
    """Wald ``(z, p, ci_low, ci_high)`` of the slope with normal quantiles (one-sided bounds infinite)."""
    zstat = slope / se if se > 0 else math.nan
    if alternative == "two-sided":
        zq = float(stats.norm.ppf(0.5 + level / 2.0))
        ci_low, ci_high = slope - zq * se, slope + zq * se
        p = float(2.0 * stats.norm.sf(abs(zstat))) if math.isfinite(zstat) else math.nan
    else:
        zq = float(stats.norm.ppf(level))
        if alternative == "greater":
            ci_low, ci_high = slope - zq * se, math.inf
            p = float(stats.norm.sf(zstat)) if math.isfinite(zstat) else math.nan
        else:
            ci_low, ci_high = -math.inf, slope + zq * se
            p = float(stats.norm.cdf(zstat)) if math.isfinite(zstat) else math.nan
        if not math.isfinite(se):
            ci_low = ci_high = math.nan
    return zstat, p, ci_low, ci_high


def mixed_slope(
    data: pd.DataFrame,
    *,
    y: str,
    x: str,
    covariates: Sequence[str] = (),
    group: str = "language",
    random_slope: bool = False,
    variance_components: Mapping[str, str] | None = None,
    reml: bool = True,
    confidence_level: float = 0.95,
    alternative: Alternative = "two-sided",
    nan_policy: NanPolicy = "raise",
    optimizer: str | Sequence[str] = ("bfgs", "powell"),
    maxiter: int = 2000,
) -> MixedModelResult:
    """Fixed-effect slope of ``x`` on ``y`` with random intercepts per group.

    Fits ``y ~ x + covariates + (1 | group)`` (``(1 + x | group)`` with
    ``random_slope=True``) with statsmodels :class:`~statsmodels.regression.mixed_linear_model.MixedLM`.

    Parameters
    ----------
    data : pandas.DataFrame
        Tidy data, one row per observation (e.g. sentence x language).
    y, x : str
        Numeric columns.
    covariates : sequence of str, default ()
        Further numeric fixed-effect columns.
    group : str, default 'language'
        Grouping column of the random effects.
    random_slope : bool, default False
        Add a random slope of ``x`` (correlated with the intercept).
    variance_components : mapping of str to str, optional
        Extra random intercepts nested within ``group``: ``{'sentence': 'item_id'}`` adds
        ``(1 | group:item_id)`` as a variance component named ``'sentence'``.
    reml : bool, default True
        REML (default) or ML estimation.
    confidence_level : float, default 0.95
        Level of the Wald interval of the slope.
    alternative : {'two-sided', 'less', 'greater'}, default 'two-sided'
        Alternative for the Wald p-value of the slope; one-sided alternatives also give one-sided
        intervals (``[low, inf)`` for ``'greater'``, ``(-inf, high]`` for ``'less'``), as :func:`corr` does.
    nan_policy : {'raise', 'omit', 'propagate'}, default 'raise'
    optimizer : str or sequence of str, default ('bfgs', 'powell')
        statsmodels ``fit(method=...)`` optimizers; each is run separately and the fit with the highest
        finite (restricted) log-likelihood is kept (``details['loglik_by_optimizer']``). ``'lbfgs'``
        is not a default: with statsmodels 0.15 it can stop at an infinite log-likelihood with a zero
        group variance.
    maxiter : int, default 2000

    Returns
    -------
    MixedModelResult
        ``estimate`` (slope), ``ci`` (Wald, normal quantile), ``statistic`` (z), ``pvalue``, ``n``,
        ``n_groups``, ``fixed_effects``, ``fixed_effects_se``, ``random_effects`` (variances),
        ``converged``, ``boundary``, ``singular``, ``log_likelihood``, ``warnings``.

    Raises
    ------
    UnknownNameError
        Missing column.
    ValueError
        Bad option, NaN with ``nan_policy='raise'``, duplicate column roles, fewer than 2 groups.
    TypeError
        Non-numeric ``y`` / ``x`` / covariate.

    Warns
    -----
    SmallSampleWarning
        Fewer than 5 groups: variance components (and the slope SE) are poorly estimated.
    DegenerateDataWarning
        Non-convergence (statsmodels ``ConvergenceWarning`` text is captured), boundary or singular
        fits. All texts are copied into ``result.warnings``.

    Notes
    -----
    Fixed-effect standard errors are ``sqrt(diag((X' V^-1 X)^-1))`` at the fitted variances, the
    formula lme4's ``vcov`` uses (statsmodels' own ``bse`` comes from the full observed Hessian and
    differs from lme4 by ~0.2% on the oracle data).
    Wald inference uses the normal distribution (statsmodels' convention); lme4 reports no p-value
    and Satterthwaite/Kenward-Roger df would be smaller with few groups, so treat p as optimistic
    when ``n_groups`` is small. ``boundary``: some variance / residual variance < 1e-6 (relative sd
    < 1e-3; lme4's ``isSingular`` uses 1e-4 but its bounded optimizer reaches 0 exactly, whereas
    statsmodels' optimizers only approach it). ``singular``: the smallest eigenvalue of the relative
    random-effects covariance is below 1e-6 (includes ``boundary``, and a +/-1 correlation).
    Variance components nest within ``group``; crossed effects (the same sentence in every language)
    are not modelled as crossed here.
    Validated against: R 4.2.2 lme4 1.1-31 ``lmer`` (REML) on committed simulated data
    (``tests/reference/data/mixed_*.csv``): fixed effects atol 1e-5, SEs rtol 2e-4, variance
    components rtol 5e-4, log-likelihood atol 1e-6 (different optimizers stop at slightly different
    points of a flat likelihood).

    References
    ----------
    Bates, D., Maechler, M., Bolker, B. & Walker, S. (2015). Fitting linear mixed-effects models using
    lme4. *J. Stat. Softw.* 67(1). DOI: 10.18637/jss.v067.i01

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> g = np.repeat(np.arange(8), 20)
    >>> x = rng.normal(size=160)
    >>> df = pd.DataFrame({"language": g, "x": x, "y": 0.5 * x + rng.normal(size=8)[g] + rng.normal(size=160)})
    >>> res = mixed_slope(df, y="y", x="x")
    >>> res.n_groups, res.converged
    (8, True)
    """
    level, methods, maxiter, covariates, vcs, frame, n_dropped, has_nan = _mixed_slope_iv(
        data, y, x, covariates, group, random_slope, variance_components, reml, confidence_level,
        alternative, nan_policy, optimizer, maxiter,
    )
    wc = WarningCollector()
    if n_dropped:
        wc.extend([f"{n_dropped} row(s) with NaN omitted."])
    n = len(frame)
    n_groups = int(frame["group"].nunique())
    method_ci = "wald-z"
    if has_nan:
        wc.warn("data contain NaN and nan_policy='propagate': result is NaN.", DegenerateDataWarning)
        return MixedModelResult(
            test="mixedlm-slope", estimate_name="slope", estimate=math.nan,
            ci=ConfidenceInterval(low=math.nan, high=math.nan, level=level, method=method_ci), n=n,
            warnings=wc.messages, fixed_effects={}, fixed_effects_se={}, random_effects={}, n_groups=n_groups,
            converged=False, boundary=False, singular=False, reml=bool(reml), log_likelihood=math.nan,
            optimizer=",".join(methods), alternative=alternative,
        )
    if n_groups < MIN_GROUPS_MIXED:
        wc.warn(f"only {n_groups} groups (< {MIN_GROUPS_MIXED}): random-effect variances and the slope SE are "
                "poorly estimated.", SmallSampleWarning)
    fit = _mixed_slope_fit(frame, x, covariates, vcs, random_slope, reml, methods, maxiter, wc)
    slope, se = float(fit.fe[1]), float(fit.bse[1])
    zstat, p, ci_low, ci_high = _wald_slope(slope, se, level, alternative)
    if not math.isfinite(se):
        wc.warn("the slope's standard error is not finite (Hessian not positive definite).", DegenerateDataWarning)
    return MixedModelResult(
        test="mixedlm-slope", estimate_name="slope", estimate=slope,
        ci=ConfidenceInterval(low=ci_low, high=ci_high, level=level, method=method_ci),
        statistic_name="z", statistic=zstat, pvalue=p, alternative=alternative, n=n,
        n_units={"observations": n, "groups": n_groups}, variables=(y, x), covariates=covariates,
        warnings=wc.messages,
        details={"formula": f"{y} ~ {' + '.join([x, *covariates])} + "
                            f"({'1 + ' + x if random_slope else '1'} | {group})"
                            + "".join(f" + (1 | {group}:{c})" for c in vcs.values()),
                 "backend": "statsmodels.MixedLM", "optimizer_used": fit.optimizer_used,
                 "loglik_by_optimizer": fit.loglik_by_optimizer},
        fixed_effects=dict(zip(fit.exog_names, map(float, fit.fe))),
        fixed_effects_se=dict(zip(fit.exog_names, map(float, fit.bse))),
        random_effects=fit.re_vars, n_groups=n_groups, converged=fit.converged, boundary=fit.boundary,
        singular=fit.singular, reml=bool(reml), log_likelihood=fit.log_likelihood, optimizer=",".join(methods),
    )
