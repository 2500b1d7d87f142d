"""Tests for :mod:`qdstats.within`.

Oracles: pingouin 0.7 ``rm_corr`` / ``compute_esci``; statsmodels OLS with group dummies (closed
form of the pooled within-group correlation); statsmodels ``multipletests``; R lme4 1.1-31
``lmer`` on committed data (tests/reference/within_oracles.py).
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import statsmodels.formula.api as smf
from hypothesis import given, settings
from hypothesis import strategies as hs
from numpy.testing import assert_allclose
from statsmodels.stats.multitest import multipletests

from qdstats.validation import DegenerateDataWarning, SmallSampleWarning, UnknownNameError
from qdstats.correlation import corr
from qdstats.within import corr_by_group, mixed_slope, pooled_within_corr, rm_corr

REF = Path(__file__).resolve().parents[1] / "reference"
sys.path.insert(0, str(REF))
import within_oracles as ORACLE  # noqa: E402


def make_groups(n_groups=8, per=15, seed=0, slope=0.5, between=3.0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), per)
    u = rng.normal(size=n_groups)  # group effect: raises x, lowers y (between-group slope -2)
    x = rng.normal(size=n_groups * per) + between * u[g]
    y = slope * x - (slope + 2.0) * between * u[g] + rng.normal(size=n_groups * per)
    return pd.DataFrame({"language": [f"l{i}" for i in g], "x": x, "y": y})


# ----------------------------------------------------------------------------- rm_corr / pooled within
def test_rm_corr_against_pingouin():
    """Oracle: pingouin 0.7 rm_corr (r, dof, p rtol 1e-10); CI vs pingouin.compute_esci(decimals=15), rtol 1e-10."""
    df = make_groups()
    res = rm_corr(df, x="x", y="y", group="language")
    ref = pg.rm_corr(data=df, x="x", y="y", subject="language")
    assert_allclose(res.estimate, ref["r"].iloc[0], rtol=1e-10)
    assert res.df == ref["dof"].iloc[0]
    assert_allclose(res.pvalue, ref["pval"].iloc[0], rtol=1e-10)
    ci = pg.compute_esci(stat=ref["r"].iloc[0], nx=int(ref["dof"].iloc[0]) + 2, eftype="pearson", decimals=15)
    assert_allclose([res.ci.low, res.ci.high], ci, rtol=1e-10)
    assert_allclose([res.ci.low, res.ci.high], ref["CI95"].iloc[0], atol=5e-3)  # pingouin rounds to 2 decimals
    assert res.test == "rm_corr" and res.n_units == {"observations": 120, "groups": 8}


def test_pooled_within_equals_ols_with_group_dummies():
    """Closed form: r_w = partial correlation from OLS y ~ x + C(g): t/sqrt(t^2 + df); p equal (rtol 1e-10)."""
    df = make_groups(seed=3)
    res = pooled_within_corr(df, x="x", y="y", group="language")
    ols = smf.ols("y ~ x + C(language)", data=df).fit()
    t = ols.tvalues["x"]
    assert res.df == ols.df_resid == len(df) - 8 - 1
    assert_allclose(res.estimate, t / math.sqrt(t**2 + ols.df_resid), rtol=1e-10)
    assert_allclose(res.statistic, t, rtol=1e-10)
    assert_allclose(res.pvalue, ols.pvalues["x"], rtol=1e-10)
    # and it is not the pooled (between-contaminated) correlation, which has the opposite sign here
    assert res.estimate > 0 > corr(df["x"], df["y"]).estimate


def test_pooled_within_one_sided_and_single_obs_groups():
    df = make_groups()
    two = pooled_within_corr(df, x="x", y="y")
    greater = pooled_within_corr(df, x="x", y="y", alternative="greater")
    assert_allclose(greater.pvalue, two.pvalue / 2, rtol=1e-10)
    assert greater.ci.high == 1.0
    extra = pd.concat([df, pd.DataFrame({"language": ["solo"], "x": [100.0], "y": [-100.0]})], ignore_index=True)
    res = pooled_within_corr(extra, x="x", y="y")
    assert_allclose(res.estimate, two.estimate, rtol=1e-12)
    assert res.df == two.df
    assert any("single observation" in w for w in res.warnings)


def test_pooled_within_degenerate_and_errors():
    df = make_groups(n_groups=6)
    df["c"] = df.groupby("language")["x"].transform("mean")  # constant within each group
    with pytest.warns(DegenerateDataWarning, match="constant within every group"):
        res = pooled_within_corr(df, x="c", y="y")
    assert math.isnan(res.estimate) and math.isnan(res.ci.low)
    with pytest.raises(UnknownNameError, match=r"`x` column 'xx'.*Did you mean 'x'"):
        pooled_within_corr(df, x="xx", y="y")
    with pytest.raises(TypeError, match="`y` column 'language' must be numeric"):
        pooled_within_corr(df, x="x", y="language", group="c")
    df.loc[0, "x"] = np.nan
    with pytest.raises(ValueError, match="nan_policy"):
        pooled_within_corr(df, x="x", y="y")
    assert pooled_within_corr(df, x="x", y="y", nan_policy="omit").n == len(df) - 1
    with pytest.warns(SmallSampleWarning):
        small = pooled_within_corr(make_groups(n_groups=3), x="x", y="y")
    assert any("only 3 groups" in w for w in small.warnings)


@settings(max_examples=30)
@given(hs.integers(0, 2**16), hs.lists(hs.floats(-50, 50, allow_nan=False), min_size=5, max_size=5))
def test_property_within_corr_invariances(seed, offsets):
    """Row order, per-group additive shifts of x and y, and negation (sign flip) behave as theory says."""
    df = make_groups(n_groups=5, per=6, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        base = pooled_within_corr(df, x="x", y="y")
        perm = pooled_within_corr(df.sample(frac=1.0, random_state=seed), x="x", y="y")
        shift = dict(zip([f"l{i}" for i in range(5)], offsets))
        moved = pooled_within_corr(df.assign(x=df.x + df.language.map(shift), y=df.y - df.language.map(shift)),
                                   x="x", y="y")
        neg = pooled_within_corr(df.assign(x=-df.x), x="x", y="y")
    assert_allclose(perm.estimate, base.estimate, rtol=1e-10)
    assert_allclose(moved.estimate, base.estimate, rtol=1e-8, atol=1e-10)
    assert_allclose(neg.estimate, -base.estimate, rtol=1e-12)
    assert -1.0 <= base.estimate <= 1.0


# ----------------------------------------------------------------------------- corr_by_group
def test_corr_by_group_equals_corr_per_group_and_holm():
    """Oracles: qdstats.correlation.corr per subset (rtol 1e-12); statsmodels multipletests Holm (rtol 1e-12)."""
    df = make_groups(n_groups=5, per=12)
    tab = corr_by_group(df, x="x", y="y", method="spearman", adjust="holm")
    p = []
    for g, sub in df.groupby("language"):
        ref = corr(sub["x"], sub["y"], method="spearman")
        assert_allclose([tab[g].estimate, tab[g].pvalue, tab[g].ci.low], [ref.estimate, ref.pvalue, ref.ci.low],
                        rtol=1e-12)
        p.append(ref.pvalue)
    holm = multipletests(p, method="holm")[1]
    assert_allclose(tab.to_frame()["pvalue_adjusted"].to_numpy(), holm, rtol=1e-12)
    assert list(tab.to_frame().index) == sorted(df.language.unique())
    with pytest.raises(ValueError, match=r"`adjust`.*Did you mean 'holm'"):
        corr_by_group(df, x="x", y="y", adjust="hólm")


def test_corr_by_group_tiny_group_nan_not_adjusted():
    df = make_groups(n_groups=3, per=10)
    df = pd.concat([df, pd.DataFrame({"language": ["tiny"] * 2, "x": [1.0, 2.0], "y": [2.0, 1.0]})])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateDataWarning)
        tab = corr_by_group(df, x="x", y="y", adjust="bonferroni")
    assert math.isnan(tab.pvalues_adjusted["tiny"])
    assert any(w.startswith("bonferroni adjustment:") for w in tab.warnings)
    finite = [tab[g].pvalue for g in ("l0", "l1", "l2")]
    assert_allclose([tab.pvalues_adjusted[g] for g in ("l0", "l1", "l2")], np.minimum(1, np.array(finite) * 3),
                    rtol=1e-12)


# ----------------------------------------------------------------------------- mixed_slope vs lme4
D1 = REF / "data" / "mixed_slope.csv"
D2 = REF / "data" / "mixed_nested.csv"

CASES = {
    "intercept": (D1, {"covariates": ["cov"]}, ORACLE.INTERCEPT),
    "slope": (D1, {"covariates": ["cov"], "random_slope": True}, ORACLE.SLOPE),
    "intercept_ml": (D1, {"covariates": ["cov"], "reml": False}, ORACLE.INTERCEPT_ML),
    "nested": (D2, {"variance_components": {"sentence": "sentence"}}, ORACLE.NESTED),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mixed_slope_against_lme4(case):
    """Oracle: R lme4 1.1-31 lmer (tests/reference/within_oracles.py).

    Tolerances: fixed effects atol 1e-5 and SEs rtol 2e-4, variance components rtol 5e-4, log-likelihood
    atol 1e-6 -- statsmodels (BFGS/Powell) and lme4 (bobyqa) stop at slightly different points of a flat
    (restricted) likelihood; observed differences are below a fifth of these bounds.
    """
    path, kwargs, ref = CASES[case]
    res = mixed_slope(pd.read_csv(path), y="y", x="x", **kwargs)
    for k, v in ref["fe"].items():
        assert_allclose(res.fixed_effects[k], v, atol=1e-5, err_msg=f"{case} fe {k}")
        assert_allclose(res.fixed_effects_se[k], ref["se"][k], rtol=2e-4, err_msg=f"{case} se {k}")
    for k, v in ref["vc"].items():
        assert_allclose(res.random_effects[k], v, rtol=5e-4, err_msg=f"{case} vc {k}")
    assert_allclose(res.log_likelihood, ref["loglik"], atol=1e-6, err_msg=f"{case} loglik")
    assert res.converged and not res.boundary and not res.singular
    assert res.estimate == res.fixed_effects["x"]
    assert_allclose([res.ci.low, res.ci.high],
                    res.estimate + np.array([-1, 1]) * 1.959963984540054 * res.fixed_effects_se["x"], rtol=1e-12)
    assert res.n_groups == (12 if path == D1 else 8)


def test_mixed_slope_boundary_flag_when_no_group_variance():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(10), 20)
    x = rng.normal(size=200)
    df = pd.DataFrame({"language": g, "x": x, "y": 0.3 * x + rng.normal(size=200) * 0.5})
    df.loc[:, "y"] -= df.groupby("language")["y"].transform("mean")  # remove all between-group variation
    with pytest.warns(DegenerateDataWarning, match="boundary"):
        res = mixed_slope(df, y="y", x="x")
    assert res.boundary and res.singular
    assert res.random_effects["group_var"] < 1e-6
    assert any("boundary fit" in w for w in res.warnings)


def test_mixed_slope_few_groups_nonconvergence_and_errors():
    df = pd.read_csv(D1)
    few = df[df.language.isin(["l00", "l01", "l02"])]
    with pytest.warns(SmallSampleWarning, match="only 3 groups"):
        res = mixed_slope(few, y="y", x="x")
    assert any("only 3 groups" in w for w in res.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stuck = mixed_slope(df, y="y", x="x", random_slope=True, optimizer="bfgs", maxiter=1)
    assert not stuck.converged
    assert any("converge" in w for w in stuck.warnings)
    with pytest.raises(UnknownNameError, match=r"`y` column 'yy'"):
        mixed_slope(df, y="yy", x="x")
    with pytest.raises(ValueError, match="rank-deficient"):
        mixed_slope(df.assign(x2=2 * df.x), y="y", x="x", covariates=["x2"])
    with pytest.raises(ValueError, match="at least 2 groups"):
        mixed_slope(df[df.language == "l00"], y="y", x="x")


def test_mixed_slope_validates_optimizer_and_maxiter():
    """Regression (review): an unknown optimizer reached statsmodels and surfaced as 'MixedLM failed with
    every optimizer', and a bad ``maxiter`` was not checked; both now name the parameter."""
    df = pd.DataFrame({"language": np.repeat(["a", "b", "c"], 4), "x": np.arange(12.0),
                       "y": np.arange(12.0) % 5})
    with pytest.raises(ValueError, match=r"`optimizer` must be one of .*got 'bfgss'. Did you mean 'bfgs'"):
        mixed_slope(df, y="y", x="x", optimizer="bfgss")
    with pytest.raises(ValueError, match=r"`optimizer` must be one of"):
        mixed_slope(df, y="y", x="x", optimizer=("bfgs", "simplex"))
    with pytest.raises(TypeError, match=r"`maxiter` must be an integer"):
        mixed_slope(df, y="y", x="x", maxiter=10.5)
    with pytest.raises(ValueError, match=r"`maxiter` must be >= 1"):
        mixed_slope(df, y="y", x="x", maxiter=0)


def test_mixed_slope_one_sided_alternative():
    """Regression (review): mixed_slope had no ``alternative`` (every other inferential function has one);
    one-sided claims re-derived p by hand. Closed form from the same Wald z and SE (rtol 1e-12): p_greater
    = 1 - Phi(z), p_less = Phi(z); one-sided CI bound slope -/+ Phi^-1(level) * SE, the other bound infinite."""
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(8), 15)
    x = rng.normal(size=g.size)
    df = pd.DataFrame({"language": g, "x": x, "y": 0.3 * x + rng.normal(size=8)[g] + rng.normal(size=g.size)})
    two = mixed_slope(df, y="y", x="x")
    gt = mixed_slope(df, y="y", x="x", alternative="greater")
    lt = mixed_slope(df, y="y", x="x", alternative="less")
    se, z = two.fixed_effects_se["x"], two.statistic
    assert gt.estimate == two.estimate and gt.statistic == z
    assert_allclose([gt.pvalue, lt.pvalue], [norm.sf(z), norm.cdf(z)], rtol=1e-12)
    assert_allclose(two.pvalue, 2 * min(gt.pvalue, lt.pvalue), rtol=1e-12)
    assert_allclose(gt.ci.low, two.estimate - norm.ppf(0.95) * se, rtol=1e-12)
    assert gt.ci.high == math.inf and lt.ci.low == -math.inf
    assert_allclose(lt.ci.high, two.estimate + norm.ppf(0.95) * se, rtol=1e-12)
    assert (gt.alternative, lt.alternative, two.alternative) == ("greater", "less", "two-sided")
    with pytest.raises(ValueError, match=r"`alternative` must be one of .*Did you mean 'greater'"):
        mixed_slope(df, y="y", x="x", alternative="greatr")
