"""Typed result objects returned by every :mod:`qdstats` statistic.

Results are frozen pydantic models: full precision, serializable into claims tables, never rounded.
Rounding happens only when rendering (:meth:`StatResult.summary`, ``_repr_markdown_``, claims renderers).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ConfidenceInterval", "StatResult", "ci_attributes"]


class ConfidenceInterval(BaseModel):
    """A confidence interval with its level and the method that produced it."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    low: float = Field(description="Lower bound (may be -inf for one-sided intervals, NaN when degenerate).")
    high: float = Field(description="Upper bound (may be +inf for one-sided intervals, NaN when degenerate).")
    level: float = Field(description="Nominal coverage, e.g. 0.95.", gt=0.0, lt=1.0)
    method: str = Field(description="How the interval was computed, e.g. 'fisher-z', 'bootstrap-bca', 'cluster-bootstrap-percentile'.")

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the closed interval (False when either bound is NaN)."""
        return bool(self.low <= value <= self.high)

    def excludes(self, value: float = 0.0) -> bool:
        """Whether the interval excludes ``value`` (False when either bound is NaN)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return False
        return not self.contains(value)


def ci_attributes(
    ci: ConfidenceInterval | None, *, level: float | None = None, n_clusters: int | None = None
) -> dict[str, Any]:
    """The attributes a record stores for a confidence interval (one convention for every producer).

    Parameters
    ----------
    ci : ConfidenceInterval or None
        The interval; ``None`` when none was computed (e.g. fewer than two clusters, or no resamples asked).
    level : float, optional
        The nominal level to record when ``ci`` is None (with a ``ci`` its own level is recorded).
    n_clusters : int, optional
        Independent units the interval resampled; recorded as ``n_clusters`` when given.

    Returns
    -------
    dict
        ``ci_low``, ``ci_high`` (``None``, JSON ``null``, when absent or undefined, i.e. NaN; infinite bounds of
        one-sided intervals are kept), ``ci_level``, ``ci_method`` (``'none'`` when absent) and ``n_clusters``.

    Examples
    --------
    >>> ci_attributes(ConfidenceInterval(low=0.1, high=float("nan"), level=0.95, method="bootstrap-bca"))
    {'ci_low': 0.1, 'ci_high': None, 'ci_level': 0.95, 'ci_method': 'bootstrap-bca'}
    >>> ci_attributes(None, level=0.95, n_clusters=1)
    {'ci_low': None, 'ci_high': None, 'ci_level': 0.95, 'ci_method': 'none', 'n_clusters': 1}
    """

    def bound(x: float) -> float | None:
        return None if math.isnan(x) else float(x)

    if ci is None:
        out: dict[str, Any] = {"ci_low": None, "ci_high": None, "ci_level": level, "ci_method": "none"}
    else:
        out = {"ci_low": bound(ci.low), "ci_high": bound(ci.high), "ci_level": ci.level, "ci_method": ci.method}
    if n_clusters is not None:
        out["n_clusters"] = int(n_clusters)
    return out


class StatResult(BaseModel):
    """Base result of a statistical procedure.

    Subclasses add typed fields (e.g. ``CorrelationResult.fisher_z_se``). ``estimate`` is the effect
    (r, slope, Δ, ratio); ``statistic`` is the test statistic (t, z, F...) when there is one.
    ``warnings`` holds degeneracy and small-sample notes that travel into claims tables.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True, ser_json_inf_nan="constants")

    test: str = Field(description="Name of the procedure, e.g. 'pearson', 'partial-spearman', 'mixedlm-slope'.")
    estimate_name: str = Field(description="Name of the effect estimate, e.g. 'r', 'rho', 'slope', 'delta_bpb'.")
    estimate: float = Field(description="Point estimate at full precision (NaN when degenerate).")
    ci: ConfidenceInterval | None = Field(default=None, description="Confidence interval for the estimate.")
    statistic_name: str | None = Field(default=None, description="Name of the test statistic, e.g. 't', 'z'.")
    statistic: float | None = Field(default=None, description="Value of the test statistic.")
    df: float | None = Field(default=None, description="Degrees of freedom of the test statistic, when defined.")
    pvalue: float | None = Field(default=None, description="p-value (None where not meaningful).")
    alternative: str | None = Field(default=None, description="'two-sided', 'less' or 'greater'.")
    n: int = Field(description="Number of observations actually used (after NaN handling).", ge=0)
    n_units: dict[str, int] = Field(
        default_factory=dict,
        description="Counts per level of analysis, e.g. {'languages': 8, 'sentences': 1600}.",
    )
    variables: tuple[str, ...] = Field(default=(), description="Names of the analysed variables.")
    covariates: tuple[str, ...] = Field(default=(), description="Names of covariates adjusted for.")
    warnings: tuple[str, ...] = Field(default=(), description="Degeneracy / small-sample notes.")
    details: dict[str, Any] = Field(default_factory=dict, description="Method-specific extras (JSON-serializable).")

    @field_validator("pvalue")
    @classmethod
    def _p_in_unit_interval(cls, v: float | None) -> float | None:
        if v is not None and not math.isnan(v) and not (0.0 <= v <= 1.0 + 1e-12):
            raise ValueError(f"`pvalue` must lie in [0, 1]; got {v}.")
        return v

    # ------------------------------------------------------------------ rendering
    def to_frame(self) -> pd.DataFrame:
        """One-row tidy DataFrame (full precision; no rounding)."""
        row: dict[str, Any] = {
            "test": self.test,
            "n": self.n,
            "estimate_name": self.estimate_name,
            "estimate": self.estimate,
            "ci_low": self.ci.low if self.ci else math.nan,
            "ci_high": self.ci.high if self.ci else math.nan,
            "ci_level": self.ci.level if self.ci else math.nan,
            "ci_method": self.ci.method if self.ci else None,
            "statistic_name": self.statistic_name,
            "statistic": self.statistic if self.statistic is not None else math.nan,
            "df": self.df if self.df is not None else math.nan,
            "pvalue": self.pvalue if self.pvalue is not None else math.nan,
            "alternative": self.alternative,
            "variables": ",".join(self.variables),
            "covariates": ",".join(self.covariates),
            "warnings": " | ".join(self.warnings),
        }
        for k, v in self.n_units.items():
            row[f"n_{k}"] = v
        return pd.DataFrame([row], index=pd.Index([self.test], name="test")).drop(columns="test")

    def summary(self, digits: int = 4) -> str:
        """Human-readable one-paragraph summary (rounded for display only)."""
        parts = [f"{self.test}: {self.estimate_name} = {self.estimate:.{digits}g}"]
        if self.ci is not None:
            parts.append(
                f"{self.ci.level:.0%} CI [{self.ci.low:.{digits}g}, {self.ci.high:.{digits}g}] ({self.ci.method})"
            )
        if self.statistic is not None and self.statistic_name:
            parts.append(f"{self.statistic_name} = {self.statistic:.{digits}g}")
        if self.pvalue is not None:
            parts.append(f"p = {self.pvalue:.{digits}g}")
        parts.append(f"n = {self.n}")
        text = ", ".join(parts)
        if self.warnings:
            text += "\nwarnings: " + "; ".join(self.warnings)
        return text

    def _repr_markdown_(self) -> str:
        return self.to_frame().to_markdown() if _has_tabulate() else self.summary()

    def __str__(self) -> str:
        return self.summary()


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True
