"""did_trend (H5): exact permutation p over orderings of the levels, weighted regression on log size.

Oracles: hand-counted permutation p (k! orderings), statsmodels WLS for the slope and its SE
(``cov_type='fixed scale'`` = known variances)."""
from __future__ import annotations

import numpy as np
import pytest

from qdstats.claims.tests_builtin import trend_permutation_pvalue, weighted_trend


@pytest.mark.parametrize(("alternative", "expected"), [("less", 1 / 24), ("two-sided", 2 / 24), ("greater", 1.0)])
def test_four_monotone_levels_exact_p(alternative, expected):
    x = np.log10([1e8, 3e8, 1e9, 3e9])
    y = np.array([0.4, 0.3, 0.2, 0.1])  # strictly decreasing: rho = -1, reached by 1 of 24 orderings
    stat, p, exact, n = trend_permutation_pvalue(x, y, method="spearman", alternative=alternative)
    assert exact and n == 24 and stat == pytest.approx(-1.0)
    assert p == pytest.approx(expected, rel=1e-12)


def test_three_levels_cannot_reach_alpha():
    x = np.array([1.0, 2.0, 3.0])
    y = np.array([0.1, 0.2, 0.3])
    _, p1, _, n = trend_permutation_pvalue(x, y, method="spearman", alternative="greater")
    _, p2, _, _ = trend_permutation_pvalue(x, y, method="spearman", alternative="two-sided")
    assert n == 6 and p1 == pytest.approx(1 / 6) and p2 == pytest.approx(2 / 6)


def test_non_monotone_hand_count():
    """y = (1, 3, 2, 4) vs x = 1..4: rho = 0.8; orderings with rho >= 0.8: the identity (1.0) and the three with one
    adjacent swap (0.8) = 4 of 24, by hand."""
    x = np.arange(4.0)
    y = np.array([1.0, 3.0, 2.0, 4.0])
    stat, p, _, _ = trend_permutation_pvalue(x, y, method="spearman", alternative="greater")
    assert stat == pytest.approx(0.8) and p == pytest.approx(4 / 24, rel=1e-12)


def test_weighted_trend_matches_statsmodels_wls():
    sm = pytest.importorskip("statsmodels.api")
    x = np.log10([1.35e8, 3.6e8, 1.7e9, 7e9])
    y = np.array([0.05, 0.11, 0.09, 0.2])
    se = np.array([0.01, 0.02, 0.015, 0.03])
    res = weighted_trend(x, y, se, confidence_level=0.95)
    fit = sm.WLS(y, sm.add_constant(x), weights=1 / se**2).fit(cov_type="fixed scale")
    np.testing.assert_allclose(res["slope"], fit.params[1], rtol=1e-10)
    np.testing.assert_allclose(res["slope_se"], fit.bse[1], rtol=1e-10)
    np.testing.assert_allclose([res["ci_low"], res["ci_high"]], fit.conf_int()[1], rtol=1e-10)


def test_constant_did_across_levels_is_insufficient_not_p_zero():
    """A constant DiD has no rank correlation (NaN); counting NaN >= NaN as no hit would report p = 0."""
    from qdstats.claims.registry import InsufficientDataError

    x = np.array([1e8, 2e8, 4e8, 8e8])
    with pytest.raises(InsufficientDataError, match="constant across the 4 levels"):
        trend_permutation_pvalue(x, np.full(4, 0.1), method="spearman", alternative="greater")
