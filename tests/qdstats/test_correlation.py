"""Tests for qdstats.correlation: corr, partial_corr, semipartial_corr and the Fisher-z helpers.

Oracles: R 4.2.2 values frozen in tests/reference/correlation_oracles.py (generator:
tests/reference/r/correlation.R), pingouin 0.7, published pingouin/scipy anchors from
/work/shared/research/field-anchors.md, closed forms, and simulation coverage.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose

from qdstats.validation import DegenerateDataWarning, UnknownNameError
from qdstats.correlation import (
    CorrelationResult,
    _pearson_along,
    corr,
    fisher_z_ci,
    fisher_z_se,
    partial_corr,
    semipartial_corr,
)


def _load_oracles():
    path = Path(__file__).resolve().parents[1] / "reference" / "correlation_oracles.py"
    spec = importlib.util.spec_from_file_location("correlation_oracles", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


O = _load_oracles()
DATA = {"d1": (O.D1_X, O.D1_Y), "d2": (O.D2_X, O.D2_Y), "d3": (O.D3_X, O.D3_Y)}
MT = pd.DataFrame(O.MTCARS)
R_ALT = {"two.sided": "two-sided", "less": "less", "greater": "greater"}

# Tolerances (style-anchors §2.8)
SAME_FORMULA = 1e-10  # same closed form as the oracle
OTHER_DIST = 1e-7  # p-values through different distribution code (R pt/ckendall vs scipy)


# ============================================================================ R cor.test oracles
@pytest.mark.parametrize("case", sorted(O.COR_TEST))
def test_corr_matches_r_cor_test(case):
    """Oracle: R 4.2.2 cor.test (estimate, p-value, t, and CI where R gives one)."""
    c = O.COR_TEST[case]
    data_key, method = case.split("_")[:2]
    x, y = DATA[data_key]
    res = corr(x, y, method=method, alternative=R_ALT[c["alternative"]], confidence_level=c.get("ci_level", 0.95))
    assert isinstance(res, CorrelationResult)
    assert res.n == c["n"]
    assert_allclose(res.estimate, c["estimate"], rtol=SAME_FORMULA, err_msg=f"{case} estimate")
    assert_allclose(res.pvalue, c["pvalue"], rtol=OTHER_DIST, err_msg=f"{case} p")
    if method == "pearson":
        assert_allclose(res.statistic, c["statistic"], rtol=SAME_FORMULA, err_msg=f"{case} t")
        assert res.df == c["df"]
        assert_allclose([res.ci.low, res.ci.high], [c["ci_low"], c["ci_high"]], rtol=SAME_FORMULA, err_msg=f"{case} CI")
        assert res.ci.level == pytest.approx(c["ci_level"])
        assert res.ci.method == "fisher-z"


def test_one_sided_ci_bounds_are_exact():
    """Oracle: R cor.test one-sided CIs are [-1, u] ('less') and [l, 1] ('greater')."""
    x, y = DATA["d1"]
    less = corr(x, y, alternative="less", confidence_level=0.9)
    greater = corr(x, y, alternative="greater", confidence_level=0.9)
    assert less.ci.low == -1.0 and greater.ci.high == 1.0
    assert less.ci.high > less.estimate > greater.ci.low


@pytest.mark.parametrize(
    ("case", "method", "data_key", "alternative", "level"),
    [
        ("d1_spearman_bonett_wright", "spearman", "d1", "two-sided", 0.95),
        ("d1_kendall_fieller", "kendall", "d1", "two-sided", 0.95),
        ("d2_spearman_bonett_wright_greater_90", "spearman", "d2", "greater", 0.9),
    ],
)
def test_rank_fisher_z_ci_matches_hand_coded_r(case, method, data_key, alternative, level):
    """Oracle: Bonett-Wright (Spearman) and Fieller (Kendall) SEs hand-coded in R."""
    c = O.RANK_CI[case]
    res = corr(*DATA[data_key], method=method, alternative=alternative, confidence_level=level)
    assert_allclose(res.estimate, c["estimate"], rtol=SAME_FORMULA)
    assert_allclose(res.fisher_z_se, c["se"], rtol=SAME_FORMULA)
    assert_allclose([res.ci.low, res.ci.high], [c["ci_low"], c["ci_high"]], rtol=SAME_FORMULA)


def test_kendall_uses_exact_p_without_ties_below_50_like_r():
    """Oracle: R cor.test default (exact Kendall for n < 50 without ties, normal otherwise)."""
    assert corr(*DATA["d1"], method="kendall").details["pvalue_method"].startswith("exact")
    assert corr(*DATA["d2"], method="kendall").details["pvalue_method"].startswith("asymptotic")
    assert corr(*DATA["d3"], method="kendall").details["pvalue_method"].startswith("asymptotic")


# ============================================================================ partial / semipartial oracles
@pytest.mark.parametrize("case", sorted(O.PARTIAL))
def test_partial_corr_matches_r(case):
    """Oracle: R lm() residualization + ppcor pcor() precision-matrix formula + lm coefficient p."""
    c = O.PARTIAL[case]
    res = partial_corr(
        MT, x=c["x"], y=c["y"], covar=c["covar"], method=c["method"], alternative=c["alternative"],
        confidence_level=c["level"],
    )
    assert res.n == c["n"] and res.df == c["df"]
    assert res.covariates == tuple(c["covar"]) and res.variables == (c["x"], c["y"])
    assert_allclose(res.estimate, c["estimate"], rtol=SAME_FORMULA, err_msg="partial r (lm residuals)")
    assert_allclose(res.estimate, c["estimate_ppcor_formula"], rtol=SAME_FORMULA, err_msg="partial r (ppcor)")
    assert_allclose(res.statistic, c["statistic"], rtol=SAME_FORMULA, err_msg="t")
    assert_allclose(res.pvalue, c["pvalue"], rtol=OTHER_DIST, err_msg="p")
    if c["alternative"] == "two-sided":
        assert_allclose(res.pvalue, c["pvalue_lm"], rtol=OTHER_DIST, err_msg="p vs lm coefficient")
    assert_allclose([res.ci.low, res.ci.high], [c["ci_low"], c["ci_high"]], rtol=SAME_FORMULA, err_msg="CI")


@pytest.mark.parametrize("case", sorted(O.SEMIPARTIAL))
def test_semipartial_corr_matches_r(case):
    """Oracle: R cor(resid(lm(x ~ z)), y), ppcor 1.1 spcor() formula, summary(lm(y ~ x + z)) p."""
    c = O.SEMIPARTIAL[case]
    kw = {"x": c["x"], "y": c["y"], "covar": c["covar"], "method": c["method"]}
    rx = semipartial_corr(MT, residualize="x", **kw)
    ry = semipartial_corr(MT, residualize="y", **kw)
    assert_allclose(rx.estimate, c["sr_x"], rtol=SAME_FORMULA)
    assert_allclose(ry.estimate, c["sr_y"], rtol=SAME_FORMULA)
    # ppcor spcor.test(a, b, z) removes z from its SECOND argument: spcor[1,2] = cor(a, resid(b ~ z))
    assert_allclose(ry.estimate, c["spcor_12"], rtol=SAME_FORMULA)
    assert_allclose(rx.estimate, c["spcor_21"], rtol=SAME_FORMULA)
    for res in (rx, ry):
        assert res.ci is None and res.df == c["df"]
        assert_allclose(res.pvalue, c["pvalue"], rtol=OTHER_DIST)
        assert_allclose(res.pvalue, c["pvalue_lm"], rtol=OTHER_DIST)
        assert_allclose(res.details["partial_r"], c["partial_r"], rtol=SAME_FORMULA)
    assert_allclose(rx.details["ppcor_pvalue"], c["pvalue_ppcor_x"], rtol=OTHER_DIST)
    assert_allclose(ry.details["ppcor_pvalue"], c["pvalue_ppcor_y"], rtol=OTHER_DIST)
    # the ppcor convention is conservative relative to the coefficient t-test
    assert rx.details["ppcor_pvalue"] >= rx.pvalue


def test_partial_corr_published_pingouin_pcorr_anchor():
    """Oracle: pingouin docs, read_dataset('mediation')[['X','Y','M']].pcorr(): 0.036649, 0.412804, 0.540140."""
    pg = pytest.importorskip("pingouin")
    d = pg.read_dataset("mediation")
    got = [
        partial_corr(d, x="X", y="Y", covar=["M"]).estimate,
        partial_corr(d, x="X", y="M", covar=["Y"]).estimate,
        partial_corr(d, x="Y", y="M", covar=["X"]).estimate,
    ]
    # published to 6 decimals -> half a unit in the last place
    assert_allclose(got, [0.036649, 0.412804, 0.540140], atol=5e-7)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_partial_and_semipartial_match_pingouin(method):
    """Oracle: pingouin 0.7 partial_corr (r and p; its CI95 is rounded to 2 decimals, so atol 0.005)."""
    pg = pytest.importorskip("pingouin")
    d = pg.read_dataset("mediation")
    ref = pg.partial_corr(d, x="X", y="Y", covar=["M", "W1"], method=method)
    res = partial_corr(d, x="X", y="Y", covar=["M", "W1"], method=method)
    assert_allclose(res.estimate, ref["r"].iloc[0], rtol=SAME_FORMULA)
    assert_allclose(res.pvalue, ref["p_val"].iloc[0], rtol=OTHER_DIST)
    if method == "pearson":  # pingouin uses 1/sqrt(n-k-3) for both methods; we use Bonett-Wright for Spearman
        assert_allclose([res.ci.low, res.ci.high], ref["CI95"].iloc[0], atol=0.005 + 1e-12)
    sref = pg.partial_corr(d, x="X", y="Y", x_covar=["M"], method=method)
    sres = semipartial_corr(d, x="X", y="Y", covar=["M"], residualize="x", method=method)
    assert_allclose(sres.estimate, sref["r"].iloc[0], rtol=SAME_FORMULA)
    assert_allclose(sres.details["ppcor_pvalue"], sref["p_val"].iloc[0], rtol=OTHER_DIST)


# ============================================================================ bootstrap
def test_spearman_bca_bootstrap_matches_published_anchor():
    """Oracle: scipy #17746 (field-anchors §2.4): rho = 0.9726290516, BCa CI ~ (0.9516, 0.9885)."""
    x = np.linspace(0, 10)
    y = 1.5 * x + np.random.default_rng(82468935639010).normal(size=x.size)
    res = corr(x, y, method="spearman", ci_method="bootstrap", rng=12345)
    assert_allclose(res.estimate, 0.9726290516, atol=5e-11)  # anchor printed to 10 decimals
    assert res.ci.method == "bootstrap-bca"
    # Monte-Carlo error of BCa endpoints with 9999 resamples and a different rng stream: ~1e-3
    assert_allclose([res.ci.low, res.ci.high], [0.9516, 0.9885], atol=2e-3)
    assert res.details["rng_seed"] == 12345 and res.details["n_resamples"] == 9999


def test_bootstrap_is_seeded_and_close_to_fisher_for_normal_data():
    """Closed form: for bivariate normal data (n=300) the BCa CI approximates the Fisher-z CI."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=300)
    y = 0.5 * x + rng.normal(size=300)
    b1 = corr(x, y, ci_method="bootstrap", n_resamples=2000, rng=3)
    b2 = corr(x, y, ci_method="bootstrap", n_resamples=2000, rng=np.random.default_rng(3))
    b3 = corr(x, y, ci_method="bootstrap", n_resamples=2000, rng=4)
    fz = corr(x, y)
    assert (b1.ci.low, b1.ci.high) == (b2.ci.low, b2.ci.high)
    assert (b1.ci.low, b1.ci.high) != (b3.ci.low, b3.ci.high)
    # sampling + Monte-Carlo difference between two valid 95% intervals at n=300: well under 0.03
    assert_allclose([b1.ci.low, b1.ci.high], [fz.ci.low, fz.ci.high], atol=0.03)
    assert b1.fisher_z_se is None and b1.details["bootstrap_standard_error"] > 0


@pytest.mark.parametrize("kind", ["percentile", "basic", "bca"])
def test_bootstrap_kinds_and_one_sided(kind):
    rng = np.random.default_rng(11)
    x = rng.normal(size=40)
    y = x + rng.normal(size=40)
    res = corr(x, y, method="kendall", ci_method="bootstrap", bootstrap_kind=kind, n_resamples=499, rng=1,
               alternative="greater")
    assert res.ci.high == 1.0 and -1.0 < res.ci.low < res.estimate
    assert res.ci.method == f"bootstrap-{kind}"


def test_bootstrap_degenerate_distribution_gives_nan_and_warning():
    """x has one distinct outlier: many resamples are constant -> NaN statistics -> NaN CI + warning."""
    x = np.r_[np.zeros(5), 1.0]
    y = np.arange(6.0)
    with pytest.warns(DegenerateDataWarning):
        res = corr(x, y, ci_method="bootstrap", n_resamples=200, rng=0)
    assert math.isnan(res.ci.low) and math.isnan(res.ci.high)
    assert any("bootstrap" in w for w in res.warnings)


# ============================================================================ degenerate data
def test_constant_input_returns_nan_with_warning():
    with pytest.warns(DegenerateDataWarning, match=r"`x` is constant; the correlation is undefined"):
        res = corr([1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0])
    assert math.isnan(res.estimate) and math.isnan(res.pvalue) and math.isnan(res.ci.low)
    assert res.warnings == ("`x` is constant; the correlation is undefined (NaN).",)


@pytest.mark.parametrize(("method", "n"), [("pearson", 3), ("spearman", 3), ("kendall", 4)])
def test_too_few_points_for_fisher_ci(method, n):
    x = np.arange(n, dtype=float)
    y = np.array([0.0, 2.0, 1.0, 3.0][:n])
    with pytest.warns(DegenerateDataWarning, match=r"confidence interval for .* needs n >= \d; got n=\d\. CI is NaN"):
        res = corr(x, y, method=method)
    assert np.isfinite(res.estimate) and np.isfinite(res.pvalue)
    assert math.isnan(res.ci.low) and math.isnan(res.ci.high)
    assert len(res.warnings) == 1


def test_fewer_than_three_pairs_is_all_nan():
    with pytest.warns(DegenerateDataWarning, match="at least 3 pairs; got n=2"):
        res = corr([1.0, 2.0], [2.0, 1.0])
    assert math.isnan(res.estimate) and res.n == 2


def test_nan_policies():
    x = [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]
    y = [2.0, 1.0, 3.0, 5.0, 4.0, 6.0]
    with pytest.raises(ValueError, match=r"`x` contain NaN \(1 rows\); pass nan_policy='omit'"):
        corr(x, y)
    res = corr(x, y, nan_policy="omit")
    ref = corr(np.delete(x, 2), np.delete(y, 2))
    assert res.n == 5 and res.details["n_dropped"] == 1
    assert_allclose(res.estimate, ref.estimate, rtol=SAME_FORMULA)
    with pytest.warns(DegenerateDataWarning, match="nan_policy='propagate'"):
        res = corr(x, y, nan_policy="propagate")
    assert math.isnan(res.estimate) and res.warnings


# ============================================================================ errors
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"method": "pearsonn"}, ValueError, r"`method` must be one of \{'pearson', 'spearman', 'kendall'\}; got 'pearsonn'\. Did you mean 'pearson'\?"),
        ({"alternative": "two_sided"}, ValueError, r"`alternative` must be one of .*; got 'two_sided'\. Did you mean 'two-sided'\?"),
        ({"confidence_level": 95}, ValueError, r"`confidence_level` must be strictly between 0 and 1; got 95"),
        ({"ci_method": "bootstrp"}, ValueError, r"`ci_method` must be one of \{'fisher-z', 'bootstrap'\}; got 'bootstrp'"),
        ({"bootstrap_kind": "bcaa"}, ValueError, r"`bootstrap_kind` must be one of .*; got 'bcaa'\. Did you mean 'bca'\?"),
        ({"n_resamples": 0}, ValueError, r"`n_resamples` must be >= 1; got 0"),
        ({"ci_method": "bootstrap", "rng": "seed"}, TypeError, r"`rng` must be None, an int seed or a numpy\.random\.Generator; got 'seed'"),
        ({"nan_policy": "drop"}, ValueError, r"`nan_policy` must be one of .*; got 'drop'"),
    ],
)
def test_corr_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        corr([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], **kwargs)


def test_corr_bad_data():
    with pytest.raises(ValueError, match=r"inputs must have the same length; `x` has 3, `y` has 2"):
        corr([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"`y` must be 1-D; got an array with shape \(2, 2\)"):
        corr([1.0, 2.0], [[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match=r"`x` contains infinite values"):
        corr([1.0, np.inf, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(TypeError, match=r"`x` must be a 1-D array of numbers"):
        corr(["a", "b", "c"], [1.0, 2.0, 3.0])


def _frame():
    rng = np.random.default_rng(3)
    z = rng.normal(size=40)
    return pd.DataFrame({"x": z + rng.normal(size=40), "y": z + rng.normal(size=40), "z": z,
                         "w": rng.normal(size=40)})


def test_partial_bad_input():
    df = _frame()
    with pytest.raises(UnknownNameError, match=r"`covar`: column 'zz' is not in `data`\. Did you mean 'z'\?"):
        partial_corr(df, x="x", y="y", covar=["zz"])
    with pytest.raises(UnknownNameError, match=r"`x`: column 'X' is not in `data`"):
        partial_corr(df, x="X", y="y")
    with pytest.raises(ValueError, match=r"`x` and `y` must be different columns; both are 'x'"):
        partial_corr(df, x="x", y="x")
    with pytest.raises(ValueError, match=r"`covar` must not contain `x` or `y`"):
        partial_corr(df, x="x", y="y", covar=["x"])
    with pytest.raises(ValueError, match=r"`covar` contains duplicate names"):
        partial_corr(df, x="x", y="y", covar=["z", "z"])
    with pytest.raises(TypeError, match=r"`data` must be a pandas DataFrame; got dict"):
        partial_corr({"x": [1]}, x="x", y="y")
    with pytest.raises(ValueError, match=r"`method` must be one of \{'pearson', 'spearman'\}; got 'kendall'"):
        partial_corr(df, x="x", y="y", covar=["z"], method="kendall")
    with pytest.raises(ValueError, match=r"`residualize` must be one of \{'x', 'y'\}; got 'both'"):
        semipartial_corr(df, x="x", y="y", covar=["z"], residualize="both")


def test_partial_covariate_collinear_with_x_gives_nan_and_warning():
    df = _frame()
    df["z2"] = 2.0 * df["x"] - 1.0  # x is an exact linear function of a covariate
    with pytest.warns(DegenerateDataWarning, match=r"`x` is \(almost\) perfectly explained by the covariates"):
        res = partial_corr(df, x="x", y="y", covar=["z", "z2"])
    assert math.isnan(res.estimate) and math.isnan(res.pvalue) and math.isnan(res.ci.low)
    assert "perfectly explained" in res.warnings[0]


def test_partial_collinear_covariates_use_rank_for_df():
    df = _frame()
    df["z_copy"] = 3.0 * df["z"]
    with pytest.warns(DegenerateDataWarning, match=r"covariates are collinear"):
        res = partial_corr(df, x="x", y="y", covar=["z", "z_copy"])
    ref = partial_corr(df, x="x", y="y", covar=["z"])
    assert res.details["k_effective"] == 1 and res.df == ref.df
    assert_allclose(res.estimate, ref.estimate, rtol=1e-9)  # lstsq min-norm vs full-rank solve


def test_partial_too_few_rows():
    df = _frame().iloc[:4]
    with pytest.warns(DegenerateDataWarning, match=r"needs n >= k \+ 3 rows; got n=4"):
        res = partial_corr(df, x="x", y="y", covar=["z", "w"])
    assert math.isnan(res.estimate)
    df6 = _frame().iloc[:6].assign(v=np.arange(6.0) ** 2)
    with pytest.warns(DegenerateDataWarning, match=r"needs n - k >= 4; got n - k = 3"):
        res = partial_corr(df6, x="x", y="y", covar=["z", "w", "v"])
    assert np.isfinite(res.estimate) and math.isnan(res.ci.low)


def test_partial_nan_policy_omit_reports_n():
    df = _frame()
    df.loc[3, "z"] = np.nan
    with pytest.raises(ValueError, match=r"`covar` contain NaN \(1 rows\)"):
        partial_corr(df, x="x", y="y", covar=["z"])
    res = partial_corr(df, x="x", y="y", covar=["z"], nan_policy="omit")
    ref = partial_corr(df.drop(index=3), x="x", y="y", covar=["z"])
    assert res.n == 39 and res.details["n_dropped"] == 1
    assert_allclose(res.estimate, ref.estimate, rtol=SAME_FORMULA)


def test_result_serializes_round_trip():
    res = partial_corr(_frame(), x="x", y="y", covar=["z"])
    assert CorrelationResult.model_validate_json(res.model_dump_json()) == res
    row = res.to_frame()
    assert row["estimate"].iloc[0] == res.estimate and row["covariates"].iloc[0] == "z"


# ============================================================================ Fisher-z helpers
def test_fisher_z_helpers_closed_form():
    """Closed form: SE = 1/sqrt(n-3); CI = tanh(atanh(r) -/+ 1.959963984540054 * SE)."""
    assert_allclose(fisher_z_se(0.3, 28), 0.2, rtol=SAME_FORMULA)
    assert_allclose(fisher_z_se(0.5, 23, method="spearman"), math.sqrt(1.125 / 20), rtol=SAME_FORMULA)
    assert_allclose(fisher_z_se(0.5, 24, method="kendall"), math.sqrt(0.437 / 20), rtol=SAME_FORMULA)
    assert math.isnan(float(fisher_z_se(0.5, 3))) and math.isnan(float(fisher_z_se(0.5, 4, method="kendall")))
    low, high = fisher_z_ci(0.3, 0.2)
    q = 1.959963984540054
    assert_allclose([low, high], [math.tanh(math.atanh(0.3) - q * 0.2), math.tanh(math.atanh(0.3) + q * 0.2)],
                    rtol=SAME_FORMULA)


# ============================================================================ properties
# values on a 1e-3 grid in [-1e3, 1e3]: affine maps below cannot merge distinct values by rounding
_floats = st.integers(min_value=-1_000_000, max_value=1_000_000).map(lambda i: i / 1000.0)


@st.composite
def _pairs(draw, min_n=5, max_n=30):
    n = draw(st.integers(min_value=min_n, max_value=max_n))
    x = draw(hnp.arrays(np.float64, n, elements=_floats))
    y = draw(hnp.arrays(np.float64, n, elements=_floats))
    assume(np.ptp(x) > 1e-3 * (1 + np.abs(x).max()) and np.ptp(y) > 1e-3 * (1 + np.abs(y).max()))
    return x, y


@st.composite
def _int_pairs(draw, min_n=5, max_n=30):
    n = draw(st.integers(min_value=min_n, max_value=max_n))
    ints = st.integers(min_value=-1000, max_value=1000)
    x = draw(hnp.arrays(np.int64, n, elements=ints)).astype(float)
    y = draw(hnp.arrays(np.int64, n, elements=ints)).astype(float)
    assume(np.ptp(x) > 0 and np.ptp(y) > 0)
    return x, y


METHODS = ["pearson", "spearman", "kendall"]


@given(_pairs(), st.sampled_from(METHODS))
def test_prop_bounded_and_symmetric(xy, method):
    x, y = xy
    a, b = corr(x, y, method=method), corr(y, x, method=method)
    assert -1.0 <= a.estimate <= 1.0
    assert 0.0 <= a.pvalue <= 1.0
    assert_allclose(a.estimate, b.estimate, rtol=1e-12, atol=1e-14)
    assert_allclose(a.pvalue, b.pvalue, rtol=1e-9, atol=1e-14)
    assert a.ci.low <= a.estimate <= a.ci.high


@given(_pairs(), st.sampled_from(METHODS), st.floats(0.01, 100), st.floats(-100, 100))
def test_prop_affine_invariance_and_sign_flip(xy, method, scale, shift):
    x, y = xy
    base = corr(x, y, method=method)
    moved = corr(scale * x + shift, y, method=method)
    flipped = corr(-x, y, method=method)
    # Pearson: rounding of the affine map (relative 1e-15 per value) moves r by ~1e-12 at worst
    assert_allclose(moved.estimate, base.estimate, rtol=1e-9, atol=1e-9)
    assert_allclose(flipped.estimate, -base.estimate, rtol=1e-12, atol=1e-14)


@given(_int_pairs())
def test_prop_spearman_kendall_invariant_to_monotone_maps(xy):
    x, y = xy
    for method in ("spearman", "kendall"):
        base = corr(x, y, method=method)
        mapped = corr(x**3 + x, np.exp(y / 1000.0), method=method)  # strictly increasing, ties preserved
        assert_allclose(mapped.estimate, base.estimate, rtol=1e-12, atol=1e-14)
        assert_allclose(mapped.pvalue, base.pvalue, rtol=1e-12, atol=1e-14)


@given(_pairs(), st.sampled_from(["pearson", "spearman"]), st.sampled_from(["two-sided", "less", "greater"]))
def test_prop_partial_without_covariates_equals_corr(xy, method, alternative):
    x, y = xy
    df = pd.DataFrame({"a": x, "b": y})
    c = corr(x, y, method=method, alternative=alternative)
    p = partial_corr(df, x="a", y="b", method=method, alternative=alternative)
    s = semipartial_corr(df, x="a", y="b", method=method, alternative=alternative)
    assert_allclose(p.estimate, c.estimate, rtol=1e-9, atol=1e-12)
    assert_allclose(s.estimate, c.estimate, rtol=1e-9, atol=1e-12)
    # p: scipy's beta-distribution p (corr) vs t-distribution p (partial); relative differences ~1e-12
    assert_allclose(p.pvalue, c.pvalue, rtol=1e-7, atol=1e-12)
    assert_allclose([p.ci.low, p.ci.high], [c.ci.low, c.ci.high], rtol=1e-8, atol=1e-10)


@given(_pairs(min_n=8), st.randoms(use_true_random=False))
def test_prop_row_order_independent(xy, rnd):
    x, y = xy
    perm = np.array(rnd.sample(range(x.size), x.size))
    z = np.sin(np.arange(x.size))
    df = pd.DataFrame({"x": x, "y": y, "z": z})
    for method in METHODS:
        a, b = corr(x, y, method=method), corr(x[perm], y[perm], method=method)
        assert_allclose(b.estimate, a.estimate, rtol=1e-10, atol=1e-13)
    a = partial_corr(df, x="x", y="y", covar=["z"])
    b = partial_corr(df.iloc[perm], x="x", y="y", covar=["z"])
    if np.isfinite(a.estimate):
        assert_allclose(b.estimate, a.estimate, rtol=1e-8, atol=1e-11)


# ============================================================================ simulation coverage
def test_fisher_z_ci_coverage_pearson_simulation():
    """Simulation: 4000 bivariate-normal datasets (n=25, rho=0.5); 95% Fisher-z CIs cover in [0.93, 0.97]."""
    rng = np.random.default_rng(20261123)
    m, n, rho = 4000, 25, 0.5
    z1, z2 = rng.normal(size=(2, m, n))
    x, y = z1, rho * z1 + math.sqrt(1 - rho**2) * z2
    r = _pearson_along(x, y)
    se = fisher_z_se(r, n)
    for alternative in ("two-sided", "greater", "less"):
        low, high = fisher_z_ci(r, se, confidence_level=0.95, alternative=alternative)
        coverage = np.mean((low <= rho) & (rho <= high))
        assert 0.93 <= coverage <= 0.97, (alternative, coverage)
    # the vectorized helper is what the public function uses
    for i in range(5):
        res = corr(x[i], y[i])
        lo, hi = fisher_z_ci(r[i], se[i])
        assert_allclose([res.ci.low, res.ci.high], [lo, hi], rtol=1e-12)


def test_fisher_z_ci_coverage_partial_simulation():
    """Simulation: known partial rho = 0.3 given two covariates (n=30); coverage in [0.93, 0.97].

    x = 0.6 z1 - 0.5 z2 + e_x, y = 0.4 z1 + 0.8 z2 + e_y with corr(e_x, e_y) = 0.3 and independent
    normal z: the partial correlation of x and y given (z1, z2) is corr(e_x, e_y) = 0.3 exactly.
    """
    rng = np.random.default_rng(99)
    m, n, k, rho = 3000, 30, 2, 0.3
    z = rng.normal(size=(m, n, k))
    e1, e2 = rng.normal(size=(2, m, n))
    ex, ey = e1, rho * e1 + math.sqrt(1 - rho**2) * e2
    x = 0.6 * z[..., 0] - 0.5 * z[..., 1] + ex
    y = 0.4 * z[..., 0] + 0.8 * z[..., 1] + ey
    design = np.concatenate([np.ones((m, n, 1)), z], axis=2)
    dtd = np.einsum("mni,mnj->mij", design, design)

    def resid(v):
        beta = np.linalg.solve(dtd, np.einsum("mni,mn->mi", design, v)[..., None])[..., 0]
        return v - np.einsum("mni,mi->mn", design, beta)

    pr = _pearson_along(resid(x), resid(y))
    se = fisher_z_se(pr, n - k)
    low, high = fisher_z_ci(pr, se)
    coverage = np.mean((low <= rho) & (rho <= high))
    assert 0.93 <= coverage <= 0.97, coverage
    for i in range(3):  # the batched residualization equals the public function
        df = pd.DataFrame({"x": x[i], "y": y[i], "z1": z[i, :, 0], "z2": z[i, :, 1]})
        res = partial_corr(df, x="x", y="y", covar=["z1", "z2"])
        assert_allclose(res.estimate, pr[i], rtol=1e-10)
        assert_allclose([res.ci.low, res.ci.high], [low[i], high[i]], rtol=1e-10)


def test_no_warnings_on_clean_data():
    x, y = DATA["d1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = corr(x, y, method="kendall")
        partial_corr(MT, x="hp", y="mpg", covar=["wt"])
    assert res.warnings == ()


def test_bootstrap_config_object_equals_keywords():
    """ci_method=Bootstrap(...) (qdstats.resampling) is the same as the keyword settings."""
    from qdstats.resampling import Bootstrap

    x, y = DATA["d3"]
    a = corr(x, y, method="spearman", ci_method=Bootstrap(n_resamples=999, kind="percentile", rng=5))
    b = corr(x, y, method="spearman", ci_method="bootstrap", n_resamples=999, bootstrap_kind="percentile", rng=5)
    assert (a.ci.low, a.ci.high) == (b.ci.low, b.ci.high) and a.ci.method == "bootstrap-percentile"
    with pytest.raises(ValueError, match=r"`ci_method.confidence_level` \(0.9\) differs from `confidence_level` \(0.95\)"):
        corr(x, y, ci_method=Bootstrap(confidence_level=0.9))
    with pytest.raises(ValueError, match=r"either as `ci_method=Bootstrap\(\.\.\.\)` or as the keywords"):
        corr(x, y, ci_method=Bootstrap(), rng=1)


# ============================================================================ partial / semipartial bootstrap
def test_partial_bootstrap_vectorized_statistic_equals_scalar_path():
    """The batched resample statistic equals the scalar residualization on the same rows."""
    from qdstats.correlation import _partial_stat, _partial_stat_vectorized

    rng = np.random.default_rng(8)
    n = 25
    z = rng.normal(size=(n, 2))
    z[:, 1] = np.round(z[:, 1])  # ties in a covariate
    x, y = z @ [0.6, -0.5] + rng.normal(size=n), z @ [0.4, 0.8] + rng.normal(size=n)
    idx = rng.integers(0, n, size=(6, n))
    for method in ("pearson", "spearman"):
        for kind, side in (("partial", "x"), ("semipartial", "x"), ("semipartial", "y")):
            f = _partial_stat_vectorized(x, y, z, kind=kind, method=method, residualize=side)
            want = [_partial_stat(x[i], y[i], z[i], kind=kind, method=method, residualize=side) for i in idx]
            assert_allclose(f(idx), want, rtol=1e-10, atol=1e-13, err_msg=f"{method} {kind} {side}")
    # full data (identity indices) reproduces the public estimates
    df = pd.DataFrame({"x": x, "y": y, "z1": z[:, 0], "z2": z[:, 1]})
    f = _partial_stat_vectorized(x, y, z, kind="semipartial", method="spearman", residualize="y")
    ref = semipartial_corr(df, x="x", y="y", covar=["z1", "z2"], method="spearman", residualize="y")
    assert_allclose(f(np.arange(n)[None, :])[0], ref.estimate, rtol=1e-10)


def test_partial_bootstrap_ci_seeded_and_close_to_fisher():
    """Closed form: with n=300 normal data the BCa interval approximates the Fisher-z interval."""
    rng = np.random.default_rng(21)
    n = 300
    z = rng.normal(size=n)
    df = pd.DataFrame({"z": z, "x": z + rng.normal(size=n), "y": 0.5 * z + rng.normal(size=n)})
    df["y"] += 0.3 * (df["x"] - z)
    a = partial_corr(df, x="x", y="y", covar=["z"], ci_method="bootstrap", n_resamples=1999, rng=2)
    b = partial_corr(df, x="x", y="y", covar=["z"], ci_method="bootstrap", n_resamples=1999, rng=2)
    fz = partial_corr(df, x="x", y="y", covar=["z"])
    assert (a.ci.low, a.ci.high) == (b.ci.low, b.ci.high) and a.ci.method == "bootstrap-bca"
    assert a.estimate == fz.estimate and a.pvalue == fz.pvalue
    assert_allclose([a.ci.low, a.ci.high], [fz.ci.low, fz.ci.high], atol=0.03)  # MC + sampling gap at n=300
    assert a.details["rng_seed"] == 2 and a.fisher_z_se is None


def test_semipartial_ci_default_none_and_bootstrap_on_request():
    df = _frame()
    res = semipartial_corr(df, x="x", y="y", covar=["z"])
    assert res.ci is None and "ci_note" in res.details
    boot = semipartial_corr(df, x="x", y="y", covar=["z"], ci_method="bootstrap", n_resamples=999, rng=0,
                            alternative="less")
    assert boot.ci.low == -1.0 and boot.ci.high > boot.estimate and boot.ci.method == "bootstrap-bca"
    with pytest.raises(ValueError, match=r"`ci_method` must be one of \{'none', 'bootstrap'\}; got 'fisher-z'"):
        semipartial_corr(df, x="x", y="y", covar=["z"], ci_method="fisher-z")


@pytest.mark.slow
def test_partial_bootstrap_coverage_simulation():
    """Simulation: BCa partial-correlation CIs (known partial rho = 0.3, n = 50, one covariate) over
    500 datasets cover in [0.92, 0.975] (+-2.5 SE of a 0.95 proportion, widened below for BCa's known
    slight small-sample undercoverage)."""
    rng = np.random.default_rng(314)
    m, n, rho = 500, 50, 0.3
    hits = 0
    for _ in range(m):
        z = rng.normal(size=n)
        e1, e2 = rng.normal(size=(2, n))
        df = pd.DataFrame({"z": z, "x": 0.7 * z + e1, "y": -0.4 * z + rho * e1 + math.sqrt(1 - rho**2) * e2})
        res = partial_corr(df, x="x", y="y", covar=["z"], ci_method="bootstrap", n_resamples=999, rng=rng)
        hits += res.ci.contains(rho)
    assert 0.92 <= hits / m <= 0.975, hits / m


def test_warnings_point_at_the_caller():
    """stacklevel: degeneracy warnings are attributed to the calling line, not to qdstats internals."""
    df = _frame().assign(x2=lambda d: 2.0 * d["x"])
    with pytest.warns(DegenerateDataWarning) as rec:
        corr([1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 3.0, 4.0])
        partial_corr(df, x="x", y="y", covar=["x2"])
        partial_corr(df.iloc[:6].assign(v=np.arange(6.0) ** 2), x="x", y="y", covar=["z", "w", "v"])
    assert len(rec) == 3
    assert all(Path(w.filename).name == "test_correlation.py" for w in rec), [w.filename for w in rec]
