"""Tests for qdstats.multiplicity.adjust_pvalues.

Oracles: R 4.2.2 ``p.adjust`` values frozen in tests/reference/correlation_oracles.py (generator
tests/reference/r/correlation.R), and independent closed-form re-implementations of Holm, BH and
Bonferroni for the property tests.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal

from qdstats.validation import DegenerateDataWarning
from qdstats.multiplicity import AdjustedPValues, adjust_pvalues


def _load_oracles():
    path = Path(__file__).resolve().parents[1] / "reference" / "correlation_oracles.py"
    spec = importlib.util.spec_from_file_location("correlation_oracles", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


O = _load_oracles()
R_TO_QD = {"holm": "holm", "BH": "fdr_bh", "bonferroni": "bonferroni"}
SAME_FORMULA = 1e-10  # style-anchors §2.8


@pytest.mark.parametrize("case", sorted(O.P_ADJUST))
def test_matches_r_p_adjust(case):
    """Oracle: R p.adjust(p, method) (NA p-values excluded from n, R's default)."""
    c = O.P_ADJUST[case]
    if any(math.isnan(v) for v in c["p"]):
        with pytest.warns(DegenerateDataWarning, match=r"2 of 8 p-values are NaN; .*family size 6"):
            res = adjust_pvalues(c["p"], method=R_TO_QD[c["method"]])
    else:
        res = adjust_pvalues(c["p"], method=R_TO_QD[c["method"]])
    assert_allclose(res.p_adjusted, c["p_adjusted"], rtol=SAME_FORMULA, equal_nan=True, err_msg=case)
    assert_allclose(res.p, c["p"], rtol=0, equal_nan=True)
    p_adj = np.array(res.p_adjusted)
    assert_array_equal(res.reject, np.nan_to_num(p_adj, nan=2.0) <= 0.05)
    assert res.n_tests == sum(not math.isnan(v) for v in c["p"])


def test_nan_excluded_from_family_size():
    p = [0.01, 0.02, 0.04]
    with pytest.warns(DegenerateDataWarning):
        with_nan = adjust_pvalues([0.01, float("nan"), 0.02, 0.04])
    plain = adjust_pvalues(p)
    assert_allclose(np.array(with_nan.p_adjusted)[[0, 2, 3]], plain.p_adjusted, rtol=0)
    assert math.isnan(with_nan.p_adjusted[1]) and with_nan.reject[1] is False
    assert with_nan.n_tests == 3 and with_nan.warnings


def test_all_nan_and_empty():
    with pytest.warns(DegenerateDataWarning, match="all 2 p-values are NaN"):
        res = adjust_pvalues([np.nan, np.nan])
    assert res.n_tests == 0 and all(math.isnan(v) for v in res.p_adjusted) and res.reject == (False, False)
    empty = adjust_pvalues([])
    assert len(empty) == 0 and empty.n_tests == 0 and empty.warnings == ()


def test_series_labels_and_frame():
    s = pd.Series([0.001, 0.2, 0.03], index=["heb", "ara", "fin"])
    res = adjust_pvalues(s, method="fdr_bh", alpha=0.1)
    frame = res.to_frame()
    assert list(frame.index) == ["heb", "ara", "fin"] and list(frame.columns) == ["p", "p_adjusted", "reject"]
    assert_allclose(frame["p_adjusted"], [0.003, 0.2, 0.045], rtol=SAME_FORMULA)  # BH by hand: m p / rank
    assert res.alpha == 0.1 and res.method == "fdr_bh"
    assert AdjustedPValues.model_validate_json(res.model_dump_json()) == res


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"pvalues": [0.1, 1.2]}, ValueError, r"`pvalues` must lie in \[0, 1\] \(or be NaN\); got \[1\.2\]"),
        ({"pvalues": [-0.1]}, ValueError, r"`pvalues` must lie in \[0, 1\]"),
        ({"pvalues": [0.1, np.inf]}, ValueError, r"`pvalues` must lie in \[0, 1\].*got \[inf\]"),
        ({"pvalues": [[0.1, 0.2]]}, ValueError, r"`pvalues` must be 1-D; got an array with shape \(1, 2\)"),
        ({"pvalues": ["a"]}, TypeError, r"`pvalues` must be a 1-D array of numbers"),
        ({"pvalues": [0.1], "method": "BY"}, ValueError, r"`method` must be one of \{'holm', 'fdr_bh', 'bonferroni', 'BH', 'fdr'\}; got 'BY'"),
        ({"pvalues": [0.1], "method": "hlm"}, ValueError, r"got 'hlm'\. Did you mean 'holm'\?"),
        ({"pvalues": [0.1], "alpha": 0}, ValueError, r"`alpha` must be strictly between 0 and 1; got 0"),
    ],
)
def test_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        adjust_pvalues(**kwargs)


# ============================================================================ properties
def _holm_by_hand(p):
    m = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def _bh_by_hand(p):
    m = len(p)
    order = np.argsort(p, kind="stable")[::-1]
    adj = np.minimum.accumulate(m / np.arange(m, 0, -1) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


_pvals = hnp.arrays(
    np.float64, st.integers(min_value=1, max_value=40),
    elements=st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 0.01, 0.05, 1.0])),
)


@given(_pvals, st.sampled_from(["holm", "fdr_bh", "bonferroni"]))
def test_prop_adjusted_at_least_raw_and_monotone(p, method):
    res = adjust_pvalues(p, method=method)
    padj = np.array(res.p_adjusted)
    assert np.all(padj >= p - 1e-15) and np.all(padj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(padj[order]) >= -1e-15)  # non-decreasing in the raw p-values


@given(_pvals)
def test_prop_match_closed_forms_and_ordering(p):
    holm, bh, bonf = (np.array(adjust_pvalues(p, method=m).p_adjusted) for m in ("holm", "fdr_bh", "bonferroni"))
    assert_allclose(holm, _holm_by_hand(p), rtol=1e-12, atol=1e-15)
    assert_allclose(bh, _bh_by_hand(p), rtol=1e-12, atol=1e-15)
    assert_allclose(bonf, np.minimum(len(p) * p, 1.0), rtol=1e-12, atol=1e-15)
    assert np.all(bh <= holm + 1e-15) and np.all(holm <= bonf + 1e-15)


@given(_pvals, st.randoms(use_true_random=False), st.sampled_from(["holm", "fdr_bh", "bonferroni"]))
def test_prop_permutation_equivariant(p, rnd, method):
    perm = np.array(rnd.sample(range(len(p)), len(p)))
    a = adjust_pvalues(p, method=method)
    b = adjust_pvalues(p[perm], method=method)
    assert_allclose(np.array(b.p_adjusted), np.array(a.p_adjusted)[perm], rtol=1e-12, atol=1e-15)
    assert_array_equal(np.array(b.reject), np.array(a.reject)[perm])


@settings(max_examples=15)  # statsmodels' Holm calls gc.collect() per call (~0.1 s under pytest)
@given(_pvals, st.sampled_from([0.01, 0.05, 0.2]))
def test_prop_holm_matches_statsmodels_multipletests(p, alpha):
    """Oracle: statsmodels multipletests(method='holm'), which qdstats does not call for Holm (gc.collect)."""
    from statsmodels.stats.multitest import multipletests

    rej, padj, _, _ = multipletests(p, alpha=alpha, method="holm")
    res = adjust_pvalues(p, method="holm", alpha=alpha)
    assert_allclose(res.p_adjusted, padj, rtol=1e-12, atol=1e-15)
    assert_array_equal(res.reject, rej)


@pytest.mark.parametrize("case", sorted(O.P_ADJUST))
def test_r_method_names_are_accepted(case):
    """Regression: method='BH' (R's name) was rejected; the R names give the R values directly."""
    import warnings

    c = O.P_ADJUST[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = adjust_pvalues(c["p"], method=c["method"])
    assert res.method == R_TO_QD[c["method"]]
    assert_allclose(res.p_adjusted, c["p_adjusted"], rtol=SAME_FORMULA, equal_nan=True, err_msg=case)


def test_method_aliases_and_unknown_names():
    p = [0.01, 0.04, 0.03]
    assert adjust_pvalues(p, method="fdr").p_adjusted == adjust_pvalues(p, method="fdr_bh").p_adjusted
    assert adjust_pvalues(p, method="Holm").method == "holm"
    with pytest.raises(ValueError, match="`method` must be one of"):
        adjust_pvalues(p, method="hochberg")


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh"])
def test_reject_at_exactly_alpha(method):
    """Kills the mutation `p_adj < alpha`: an adjusted p equal to alpha is rejected (R: p.adjust(...) <= alpha)."""
    res = adjust_pvalues([0.025, 0.5], method=method, alpha=0.05)
    assert res.p_adjusted[0] == 0.05
    assert res.reject == (True, False)
