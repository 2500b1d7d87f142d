"""Tests for :mod:`qdstats.resampling`.

Oracles: R boot 1.3 ``boot.ci`` (tests/reference/resampling_oracles.py), direct calls of
:func:`scipy.stats.bootstrap` (thin-wrapper check), full enumeration of permutations, and
simulation coverage.
"""

from __future__ import annotations

import itertools
import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from numpy.testing import assert_allclose

from qdstats.validation import DegenerateDataWarning, SmallSampleWarning
from qdstats.resampling import (
    Bootstrap,
    BootstrapResult,
    bootstrap_ci,
    cluster_bootstrap_ci,
    paired_permutation_test,
    permutation_test_two_groups,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import resampling_oracles as ORACLE  # noqa: E402

KINDS = ("percentile", "basic", "bca")


# ----------------------------------------------------------------------------- R oracles
@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_bootstrap_ci_mean_against_r_boot(kind):
    """Oracle: R boot 1.3 boot.ci(type=perc/basic/bca), 1e6 resamples; rtol 5e-3 (both Monte Carlo)."""
    res = bootstrap_ci(np.array(ORACLE.X), statistic="mean", kind=kind, n_resamples=1_000_000, rng=1)
    assert_allclose(res.estimate, ORACLE.MEAN_X["t0"], rtol=1e-12, err_msg="t0")
    assert_allclose([res.ci.low, res.ci.high], ORACLE.MEAN_X[kind], rtol=5e-3, err_msg=kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_cluster_bootstrap_against_r_boot(kind):
    """Oracle: R boot.ci on cluster-level (sum, size) rows, BCa with L = empinf(type='jack'); rtol 5e-3."""
    res = cluster_bootstrap_ci(np.array(ORACLE.V), np.array(ORACLE.CLUSTERS), kind=kind, n_resamples=1_000_000,
                               rng=1)
    assert_allclose(res.estimate, ORACLE.CLUSTER_MEAN["t0"], rtol=1e-10, err_msg="t0")
    assert_allclose([res.ci.low, res.ci.high], ORACLE.CLUSTER_MEAN[kind], rtol=5e-3, err_msg=kind)


# ----------------------------------------------------------------------------- bootstrap_ci
@pytest.mark.parametrize("kind", KINDS)
def test_bootstrap_ci_is_scipy_with_same_seed(kind):
    """Oracle: scipy.stats.bootstrap called directly with the same seed gives identical bounds (rtol 1e-12)."""
    x = np.random.default_rng(0).exponential(size=40)
    res = bootstrap_ci(x, statistic="mean", kind=kind, n_resamples=999, rng=7)
    ref = st.bootstrap((x,), np.mean, n_resamples=999, method={"bca": "BCa"}.get(kind, kind),
                       rng=np.random.default_rng(7))
    assert_allclose([res.ci.low, res.ci.high], [ref.confidence_interval.low, ref.confidence_interval.high],
                    rtol=1e-12)
    assert_allclose(res.standard_error, ref.standard_error, rtol=1e-12)
    assert res.estimate == pytest.approx(np.mean(x), rel=1e-15)
    assert res.ci.method == f"bootstrap-{kind}"
    assert res.n == 40 and res.n_resamples == 999


def test_bootstrap_ci_paired_mean_diff_equals_mean_of_differences():
    """Closed form: paired mean_diff estimate = mean(x - y); CI from paired resampling (scipy, same seed)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=25)
    y = x + rng.normal(0.3, 0.1, size=25)
    res = bootstrap_ci(x, y, statistic="mean_diff", paired=True, kind="percentile", n_resamples=999, rng=3)
    assert_allclose(res.estimate, np.mean(x - y), rtol=1e-12)
    assert res.ci.high < 0  # y is x + 0.3 +- 0.1: the interval is tight and negative
    assert res.ci.contains(res.estimate)


def test_bootstrap_ci_seed_reproducible_and_generator_accepted():
    x = np.random.default_rng(0).normal(size=30)
    a = bootstrap_ci(x, n_resamples=499, rng=5)
    b = bootstrap_ci(x, n_resamples=499, rng=5)
    c = bootstrap_ci(x, n_resamples=499, rng=np.random.default_rng(5))
    assert (a.ci.low, a.ci.high) == (b.ci.low, b.ci.high) == (c.ci.low, c.ci.high)
    assert a.details["rng_seed"] == 5


def test_bootstrap_ci_constant_data_bca_is_nan_with_warning():
    with pytest.warns(DegenerateDataWarning):
        res = bootstrap_ci(np.full(12, 3.0), kind="bca", n_resamples=199, rng=0)
    assert math.isnan(res.ci.low) and math.isnan(res.ci.high)
    assert res.estimate == 3.0
    assert any("BCa interval undefined" in w for w in res.warnings)


def test_bootstrap_ci_constant_data_percentile_is_point():
    with pytest.warns(DegenerateDataWarning):
        res = bootstrap_ci(np.full(12, 3.0), kind="percentile", n_resamples=199, rng=0)
    assert res.ci.low == res.ci.high == 3.0
    assert any("zero spread" in w for w in res.warnings)


def test_bootstrap_ci_one_sided():
    x = np.random.default_rng(0).normal(size=30)
    res = bootstrap_ci(x, kind="percentile", alternative="less", n_resamples=499, rng=0)
    assert res.ci.low == -np.inf and np.isfinite(res.ci.high)


def test_bootstrap_ci_serialization_excludes_distribution():
    res = bootstrap_ci(np.arange(10.0), kind="percentile", n_resamples=99, rng=0)
    assert res.distribution is not None and res.distribution.shape == (99,)
    dumped = res.model_dump()
    assert "distribution" not in dumped
    back = BootstrapResult.model_validate_json(res.model_dump_json())
    assert back.ci == res.ci and back.estimate == res.estimate and back.distribution is None
    with pytest.raises(ValueError):
        res.distribution[0] = 1.0  # read-only


def test_bootstrap_ci_callable_vector_statistic_refused():
    with pytest.raises(ValueError, match="scalar"):
        bootstrap_ci(np.arange(10.0), statistic=lambda x, axis=-1: np.stack([x.mean(axis), x.std(axis)]),
                     n_resamples=99, rng=0)


def test_bootstrap_ci_nan_policies():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="nan_policy"):
        bootstrap_ci(x, n_resamples=99, rng=0)
    res = bootstrap_ci(x, nan_policy="omit", kind="percentile", n_resamples=99, rng=0)
    assert res.n == 5 and res.estimate == pytest.approx(3.6)
    with pytest.warns(DegenerateDataWarning):
        res = bootstrap_ci(x, nan_policy="propagate", n_resamples=99, rng=0)
    assert math.isnan(res.estimate)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"kind": "bcaa"}, ValueError, r"`kind` must be one of .*Did you mean 'bca'"),
        ({"alternative": "two_sided"}, ValueError, r"`alternative`.*Did you mean 'two-sided'"),
        ({"n_resamples": 0}, ValueError, r"`n_resamples` must be >= 1"),
        ({"confidence_level": 95}, ValueError, r"`confidence_level`"),
        ({"rng": "seed"}, TypeError, r"`rng` must be"),
        ({"statistic": "mean_diff"}, ValueError, r"`statistic` 'mean_diff' needs 2 sample"),
        ({"statistic": "meen"}, ValueError, r"Did you mean 'mean'"),
    ],
)
def test_bootstrap_ci_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        bootstrap_ci(np.arange(10.0), **kwargs)


def test_bootstrap_ci_paired_needs_equal_lengths_and_two_points():
    with pytest.raises(ValueError, match="equal length"):
        bootstrap_ci(np.arange(5.0), np.arange(6.0), statistic="mean_diff", paired=True)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_ci(np.array([1.0]))


def test_bootstrap_config_object():
    cfg = Bootstrap(n_resamples=299, kind="basic", rng=3)
    res = bootstrap_ci(np.arange(20.0), **cfg.as_kwargs())
    assert res.kind == "basic" and res.n_resamples == 299
    with pytest.raises(ValueError, match="`kind`"):
        Bootstrap(kind="bc")


@pytest.mark.slow
def test_bca_mean_difference_coverage():
    """Simulation: 1000 data sets (normal, unequal variances, n=100/80); 95% BCa covers in [0.93, 0.97]."""
    rng = np.random.default_rng(2026)
    hits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(1000):
            a = rng.normal(0.0, 1.0, 100)
            b = rng.normal(0.5, 2.0, 80)
            res = bootstrap_ci(a, b, statistic="mean_diff", kind="bca", n_resamples=999, rng=rng)
            hits += res.ci.contains(-0.5)
    assert 0.93 <= hits / 1000 <= 0.97, hits / 1000


# ----------------------------------------------------------------------------- cluster bootstrap
def _clustered(rng, g=30, m=6, icc_sd=1.0):
    doc = np.repeat(np.arange(g), m)
    return 0.3 + rng.normal(0.0, icc_sd, g)[doc] + rng.normal(0.0, 1.0, g * m), doc


@pytest.mark.parametrize("kind", KINDS)
def test_cluster_bootstrap_vectorized_equals_loop(kind):
    """The closed-form 'mean' path (W @ sums / W @ sizes) equals the generic per-resample loop exactly."""
    v, doc = _clustered(np.random.default_rng(0), g=12, m=4)
    fast = cluster_bootstrap_ci(v, doc, kind=kind, n_resamples=300, rng=11)
    slow = cluster_bootstrap_ci(v, doc, kind=kind, statistic=lambda vals, ids: float(np.mean(vals)),
                                n_resamples=300, rng=11)
    assert_allclose([fast.ci.low, fast.ci.high], [slow.ci.low, slow.ci.high], rtol=1e-12)
    assert_allclose(fast.distribution, slow.distribution, rtol=1e-12)


def test_cluster_bootstrap_callable_gets_distinct_ids_for_repeated_clusters():
    v, doc = _clustered(np.random.default_rng(0), g=10, m=3)
    seen = []

    def n_clusters(vals, ids):
        seen.append(len(np.unique(ids)))
        return float(len(np.unique(ids)))

    res = cluster_bootstrap_ci(v, doc, statistic=n_clusters, kind="percentile", n_resamples=50, rng=0)
    assert res.estimate == 10.0
    assert set(seen) == {10}  # every resample has 10 cluster copies, each with its own id


def test_cluster_bootstrap_strata_keep_stratum_sizes():
    """Stratified: stratum A clusters all 0, B all 1, equal sizes -> every replicate mean is exactly 0.5."""
    doc = np.repeat(np.arange(20), 3)
    stratum = np.where(doc < 10, "A", "B")
    v = (doc >= 10).astype(float)
    res = cluster_bootstrap_ci(v, doc, strata=stratum, kind="percentile", n_resamples=200, rng=0)
    assert_allclose(res.distribution, 0.5, rtol=1e-12)
    unstrat = cluster_bootstrap_ci(v, doc, kind="percentile", n_resamples=200, rng=0)
    assert np.ptp(unstrat.distribution) > 0.1
    assert res.n_units == {"observations": 60, "clusters": 20, "strata": 2}


def test_cluster_bootstrap_errors_and_warnings():
    v = np.arange(12.0)
    with pytest.raises(ValueError, match="strata.*constant within each cluster"):
        cluster_bootstrap_ci(v, np.repeat(np.arange(4), 3), strata=np.tile([0, 1, 2], 4))
    with pytest.raises(ValueError, match="at least 2 distinct clusters"):
        cluster_bootstrap_ci(v, np.zeros(12))
    with pytest.raises(ValueError, match="same length"):
        cluster_bootstrap_ci(v, np.arange(11))
    with pytest.raises(ValueError, match="`statistic`"):
        cluster_bootstrap_ci(v, np.arange(12), statistic="median")
    with pytest.warns(SmallSampleWarning):
        res = cluster_bootstrap_ci(v, np.repeat(np.arange(4), 3), kind="percentile", n_resamples=99, rng=0)
    assert any("only 4 clusters" in w for w in res.warnings)


def test_cluster_bootstrap_bca_constant_is_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        with pytest.warns(DegenerateDataWarning):
            res = cluster_bootstrap_ci(np.ones(20), np.repeat(np.arange(10), 2), kind="bca", n_resamples=99, rng=0)
    assert math.isnan(res.ci.low)
    assert any("BCa interval undefined" in w for w in res.warnings)


@pytest.mark.slow
def test_cluster_bootstrap_coverage_vs_naive():
    """Simulation: 2000 data sets (MC standard error of a coverage ~0.005), 80 documents x 5 sentences,
    ICC 0.5 in the paired differences.

    The document-level cluster bootstrap covers in [0.93, 0.97]; the sentence-level (naive) bootstrap
    ignores the clustering and clearly under-covers (< 0.90; theory: about 0.74 for design effect 3).
    """
    rng = np.random.default_rng(77)
    doc = np.repeat(np.arange(80), 5)
    items = np.arange(400)
    hit_cluster = hit_naive = 0
    n_sim = 2000
    for _ in range(n_sim):
        d = 0.3 + rng.normal(0.0, 1.0, 80)[doc] + rng.normal(0.0, 1.0, 400)
        hit_cluster += cluster_bootstrap_ci(d, doc, kind="percentile", n_resamples=999, rng=rng).ci.contains(0.3)
        hit_naive += cluster_bootstrap_ci(d, items, kind="percentile", n_resamples=999, rng=rng).ci.contains(0.3)
    assert 0.93 <= hit_cluster / n_sim <= 0.97, hit_cluster / n_sim
    assert hit_naive / n_sim < 0.90, hit_naive / n_sim


@settings(max_examples=25)
@given(hs.lists(hs.floats(-100, 100, allow_nan=False), min_size=4, max_size=30), hs.integers(0, 2**16))
def test_cluster_bootstrap_row_order_invariance(values, perm_seed):
    """Property: permuting rows does not change the estimate or CI (clusters are ordered by label)."""
    v = np.array(values)
    doc = np.arange(len(v)) // 2
    perm = np.random.default_rng(perm_seed).permutation(len(v))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = cluster_bootstrap_ci(v, doc, kind="percentile", n_resamples=99, rng=1)
        b = cluster_bootstrap_ci(v[perm], doc[perm], kind="percentile", n_resamples=99, rng=1)
    assert_allclose([a.estimate, a.ci.low, a.ci.high], [b.estimate, b.ci.low, b.ci.high], rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- permutation tests
def _enumerate_sign_flips(d):
    obs = d.mean()
    null = np.array([np.mean(d * np.array(s)) for s in itertools.product([1, -1], repeat=len(d))])
    return obs, null


def _pvalues(obs, null):
    eps = 1e-12 * max(1.0, abs(obs))
    greater = np.mean(null >= obs - eps)
    less = np.mean(null <= obs + eps)
    return {"greater": greater, "less": less, "two-sided": min(1.0, 2 * min(greater, less))}


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_paired_permutation_exact_against_enumeration(alternative):
    """Oracle: all 2**9 sign vectors enumerated with itertools; rtol 1e-12."""
    rng = np.random.default_rng(3)
    x = rng.normal(0.4, 1.0, 9)
    y = rng.normal(0.0, 1.0, 9)
    res = paired_permutation_test(x, y, alternative=alternative, n_resamples=9999, rng=0)
    obs, null = _enumerate_sign_flips(x - y)
    assert res.exact and res.n_resamples == 2**9
    assert_allclose(res.estimate, obs, rtol=1e-12)
    assert_allclose(res.pvalue, _pvalues(obs, null)[alternative], rtol=1e-12)


def test_paired_permutation_randomized_pvalue_floor_and_zero_diffs():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 0.1, 40)
    res = paired_permutation_test(x, x - 5.0, n_resamples=999, rng=1)
    assert not res.exact
    assert res.pvalue == pytest.approx(2 / 1000)  # (0 + 1)/(B + 1), doubled for two-sided
    with pytest.warns(DegenerateDataWarning):
        res0 = paired_permutation_test(x, x, n_resamples=99, rng=1)
    assert res0.pvalue == 1.0
    with pytest.raises(ValueError, match="same length"):
        paired_permutation_test(x, x[:-1])


def test_permutation_tests_large_n_do_not_overflow():
    """Regression: exactness checks used 2.0**n / float(comb) and overflowed for n > 1023."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    res = paired_permutation_test(x, x + 0.01, n_resamples=99, rng=0)
    assert not res.exact and res.details["n_distinct_permutations"] is None
    res2 = permutation_test_two_groups(x[:1100], x[1100:], n_resamples=99, rng=0)
    assert not res2.exact and res2.n_resamples == 99


@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_two_group_permutation_exact_against_enumeration(alternative):
    """Oracle: all C(11, 5) group splits enumerated with itertools.combinations; rtol 1e-12."""
    rng = np.random.default_rng(4)
    a = rng.normal(1.0, 1.0, 5)
    b = rng.normal(0.0, 1.0, 6)
    pooled = np.concatenate([a, b])
    null = []
    for idx in itertools.combinations(range(11), 5):
        mask = np.zeros(11, bool)
        mask[list(idx)] = True
        null.append(pooled[mask].mean() - pooled[~mask].mean())
    obs = a.mean() - b.mean()
    res = permutation_test_two_groups(a, b, alternative=alternative, n_resamples=9999, rng=0)
    assert res.exact
    assert_allclose(res.estimate, obs, rtol=1e-12)
    assert_allclose(res.pvalue, _pvalues(obs, np.array(null))[alternative], rtol=1e-12)


def test_two_group_permutation_median_and_callable():
    a, b = np.array([3.0, 4.0, 5.0, 9.0]), np.array([1.0, 2.0, 0.5])
    res = permutation_test_two_groups(a, b, statistic="median_diff", alternative="greater", rng=0)
    assert res.estimate == pytest.approx(4.5 - 1.0)
    res2 = permutation_test_two_groups(a, b, statistic=lambda x, y, axis=-1: np.mean(x, axis) - np.mean(y, axis),
                                       alternative="greater", rng=0)
    res3 = permutation_test_two_groups(a, b, alternative="greater", rng=0)
    assert res2.pvalue == res3.pvalue
    # the message lists the allowed two-sample names (review: it used to say only "needs 1 sample(s)")
    with pytest.raises(ValueError, match=r"`statistic` must be one of \{'mean_diff', 'median_diff'\}; got 'mean'"):
        permutation_test_two_groups(a, b, statistic="mean")


def test_cluster_bootstrap_reports_dropped_undefined_replicates():
    """Regression (review): NaN replicates of a callable statistic were dropped silently before the
    quantiles; the count must be reported (warning AND result.warnings). Closed form: the statistic is
    NaN exactly on resamples that miss cluster 0, i.e. with probability (1 - 1/G)**G = 0.3487 for G = 10."""
    values = np.r_[100.0, np.arange(1.0, 10.0)]
    clusters = np.arange(10)

    def needs_first(v, ids):
        return float(np.mean(v)) if (v == 100.0).any() else math.nan

    with pytest.warns(DegenerateDataWarning, match="bootstrap replicate"):
        res = cluster_bootstrap_ci(values, clusters, statistic=needs_first, kind="percentile", n_resamples=2000,
                                   rng=0)
    n_bad = int(np.isnan(res.distribution).sum())
    assert 0.30 < n_bad / 2000 < 0.40  # binomial(2000, 0.3487): sd 0.011, so +/- 4.5 sd
    assert any(f"{n_bad} of 2000 bootstrap replicate(s) are undefined" in w for w in res.warnings)
    assert np.isfinite(res.ci.low) and np.isfinite(res.ci.high)
