"""Tests for :mod:`qdstats.disparity` (degradation, disparity ratio, difference in differences).

Oracles: closed forms (Δ = mean of paired differences, DiD = mean of differences of differences),
:func:`qdstats.resampling.paired_permutation_test` / :func:`cluster_bootstrap_ci` on the same data,
hypothesis properties and a coverage simulation.
"""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from numpy.testing import assert_allclose

from qdstats.validation import DegenerateDataWarning, SmallSampleWarning, UnknownNameError
from qdstats.disparity import DisparityResult, degradation, diff_in_diff, disparity_ratio
from qdstats.resampling import cluster_bootstrap_ci, paired_permutation_test

SHIFT = {"eng_Latn": 0.05, "heb_Hebr": 0.20, "deu_Latn": 0.07, "zho_Hans": 0.12}


def make_parallel(n_items=60, shifts=SHIFT, seed=0, item_sd=0.05, noise=0.02, n_docs=None):
    """Parallel paired data: every language has the same item ids; a shared per-item effect."""
    rng = np.random.default_rng(seed)
    langs = list(shifts)
    item_effect = rng.normal(0.0, item_sd, n_items)
    rows = []
    for lang in langs:
        full = rng.normal(1.0, 0.1, n_items)
        comp = full + shifts[lang] + item_effect + rng.normal(0.0, noise, n_items)
        df = pd.DataFrame({"language": lang, "item_id": np.arange(n_items), "full": full, "compressed": comp})
        if n_docs:
            df["doc"] = np.arange(n_items) % n_docs
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- closed forms
def test_degradation_equals_mean_paired_difference():
    """Closed form: Δ_l = mean(compressed - full) over the language's items (rtol 1e-12)."""
    df = make_parallel()
    res = quiet(degradation, df, n_resamples=199, rng=0)
    assert isinstance(res, DisparityResult)
    for lang, sub in df.groupby("language"):
        assert_allclose(res[lang].estimate, np.mean(sub["compressed"] - sub["full"]), rtol=1e-12)
        assert res[lang].n == len(sub)
        assert res[lang].n_units == {"items": len(sub), "clusters": len(sub)}
        assert res[lang].ci.contains(res[lang].estimate)
    frame = res.to_frame()
    assert list(frame.index) == sorted(SHIFT)
    assert {"estimate", "ci_low", "ci_high", "n", "standard_error"} <= set(frame.columns)


def test_degradation_long_format_equals_wide():
    df = make_parallel()
    long = df.melt(id_vars=["language", "item_id"], value_vars=["full", "compressed"], var_name="cond",
                   value_name="bpb")
    long["cond"] = long["cond"].map({"full": "bf16", "compressed": "int4"})
    wide = quiet(degradation, df, n_resamples=199, rng=3)
    lng = quiet(degradation, long, condition="cond", value="bpb", full="bf16", compressed="int4", n_resamples=199,
                rng=3)
    assert_allclose(wide.to_frame()[["estimate", "ci_low", "ci_high"]].to_numpy(),
                    lng.to_frame()[["estimate", "ci_low", "ci_high"]].to_numpy(), rtol=1e-12)


def test_degradation_single_language_matches_cluster_bootstrap():
    """Engine oracle: degradation CI for one language = cluster_bootstrap_ci on its differences (same seed)."""
    df = make_parallel(shifts={"eng_Latn": 0.05}, n_docs=12)
    for kind in ("percentile", "basic", "bca"):
        res = quiet(degradation, df, cluster="doc", kind=kind, n_resamples=500, rng=9)["eng_Latn"]
        ref = quiet(cluster_bootstrap_ci, (df["compressed"] - df["full"]).to_numpy(), df["doc"].to_numpy(),
                    kind=kind, n_resamples=500, rng=9)
        assert_allclose([res.estimate, res.ci.low, res.ci.high], [ref.estimate, ref.ci.low, ref.ci.high],
                        rtol=1e-12, err_msg=kind)


@pytest.mark.parametrize("cluster", [None, "doc"])
@pytest.mark.parametrize("kind", ["percentile", "basic", "bca"])
def test_did_joint_equals_cluster_bootstrap_of_paired_dd(kind, cluster):
    """Engine oracle: for parallel items, joint DiD replicates are the cluster-bootstrap means of
    dd_i = d_l,i - d_ref,i with the same weights, so CIs (incl. the BCa jackknife) agree exactly (rtol 1e-10)."""
    df = make_parallel(n_items=40, n_docs=10)
    res = quiet(diff_in_diff, df, reference="eng_Latn", cluster=cluster, kind=kind, n_resamples=400, rng=5)
    d = df.assign(d=df["compressed"] - df["full"]).pivot(index="item_id", columns="language", values="d")
    groups = (np.arange(40) % 10) if cluster else np.arange(40)
    for lang in ("heb_Hebr", "zho_Hans"):
        ref = quiet(cluster_bootstrap_ci, (d[lang] - d["eng_Latn"]).to_numpy(), groups, kind=kind, n_resamples=400,
                    rng=5)
        assert_allclose([res[lang].ci.low, res[lang].ci.high], [ref.ci.low, ref.ci.high], rtol=1e-10, err_msg=lang)


def test_did_randomized_permutation_agrees_with_scipy():
    """Oracle: scipy-based paired_permutation_test on 300 items (randomized both): |p - p_ref| < 0.02 (MC error)."""
    df = make_parallel(n_items=300, shifts={"eng_Latn": 0.05, "heb_Hebr": 0.05}, noise=0.02, seed=4)
    res = quiet(diff_in_diff, df, reference="eng_Latn", n_resamples=9999, rng=0)
    dl = df[df.language == "heb_Hebr"].sort_values("item_id")
    dr = df[df.language == "eng_Latn"].sort_values("item_id")
    ref = paired_permutation_test((dl.compressed - dl.full).to_numpy(), (dr.compressed - dr.full).to_numpy(),
                                  n_resamples=9999, rng=1)
    assert not res["heb_Hebr"].details["permutation_exact"]
    assert 0.02 < ref.pvalue < 0.98  # a non-trivial p-value, so the comparison means something
    assert abs(res["heb_Hebr"].pvalue - ref.pvalue) < 0.02


def test_ratio_and_did_closed_forms():
    df = make_parallel()
    deg = quiet(degradation, df, n_resamples=199, rng=0)
    ratio = quiet(disparity_ratio, df, reference="eng_Latn", n_resamples=199, rng=0)
    did = quiet(diff_in_diff, df, reference="eng_Latn", n_resamples=199, rng=0)
    d = df.assign(d=df["compressed"] - df["full"]).pivot(index="item_id", columns="language", values="d")
    for lang in SHIFT:
        assert_allclose(ratio[lang].estimate, deg[lang].estimate / deg["eng_Latn"].estimate, rtol=1e-12)
        assert_allclose(did[lang].estimate, np.mean(d[lang] - d["eng_Latn"]), rtol=1e-10, atol=1e-15)
    assert ratio["eng_Latn"].estimate == 1.0 and ratio["eng_Latn"].ci.method == "by-definition"
    assert did["eng_Latn"].estimate == 0.0
    assert ratio.details["reference_delta"] == deg["eng_Latn"].estimate
    # heb degrades 0.20 vs eng 0.05: DiD clearly > 0, ratio clearly > 1
    assert did["heb_Hebr"].ci.low > 0.1 and ratio["heb_Hebr"].ci.low > 2.0


def test_did_permutation_equals_paired_sign_flip_exact():
    """Oracle: DiD p-value (joint, no cluster) = paired_permutation_test(d_l, d_ref), exact for 10 items."""
    df = make_parallel(n_items=10)
    res = quiet(diff_in_diff, df, reference="eng_Latn", alternative="greater", n_resamples=4999, rng=0)
    for lang in ("heb_Hebr", "deu_Latn"):
        dl = df[df.language == lang].sort_values("item_id")
        dr = df[df.language == "eng_Latn"].sort_values("item_id")
        ref = paired_permutation_test((dl.compressed - dl.full).to_numpy(), (dr.compressed - dr.full).to_numpy(),
                                      alternative="greater", n_resamples=4999, rng=0)
        assert ref.exact and res[lang].details["permutation_exact"]
        assert_allclose(res[lang].pvalue, ref.pvalue, rtol=1e-12)


def test_did_permutation_with_clusters_flips_cluster_sums():
    df = make_parallel(n_items=40, n_docs=8)
    res = quiet(diff_in_diff, df, reference="eng_Latn", cluster="doc", n_resamples=999, rng=0)
    assert res["heb_Hebr"].details["permutation_units"] == 8
    assert res["heb_Hebr"].details["permutation_exact"]  # 2**8 = 256 <= 999
    assert res["heb_Hebr"].pvalue == pytest.approx(2 / 256)  # all 8 cluster sums positive: the extreme flip
    assert res["heb_Hebr"].n_units["clusters"] == 8


# ----------------------------------------------------------------------------- resampling modes
def test_joint_resampling_narrower_for_correlated_items():
    """With a strong shared item effect, joint (paired) resampling gives a narrower DiD CI than independent."""
    df = make_parallel(n_items=80, item_sd=0.3, noise=0.01, seed=2)
    joint = quiet(diff_in_diff, df, reference="eng_Latn", kind="percentile", n_resamples=999, rng=1)
    indep = quiet(diff_in_diff, df, reference="eng_Latn", kind="percentile", n_resamples=999, rng=1,
                  resampling="independent")
    for lang in ("heb_Hebr", "deu_Latn", "zho_Hans"):
        wj = joint[lang].ci.high - joint[lang].ci.low
        wi = indep[lang].ci.high - indep[lang].ci.low
        assert wj < 0.25 * wi, (lang, wj, wi)
        assert joint[lang].estimate == pytest.approx(indep[lang].estimate, rel=1e-12)
    assert indep["heb_Hebr"].details["permutation"].startswith("label shuffle")


def test_independent_resampling_with_nonparallel_items():
    df = make_parallel(n_items=30)
    df = df[~((df.language == "heb_Hebr") & (df.item_id < 10))]  # heb lacks 10 items
    res = quiet(degradation, df, resampling="independent", n_resamples=199, rng=0)
    assert res["heb_Hebr"].n == 20 and res["eng_Latn"].n == 30
    did = quiet(diff_in_diff, df, reference="eng_Latn", resampling="joint", n_resamples=199, rng=0)
    assert any("items present in both" in w for w in did["heb_Hebr"].warnings)
    auto = quiet(diff_in_diff, df, reference="eng_Latn", n_resamples=199, rng=0)
    assert auto.resampling == "independent"  # the default 'auto': not every language has the same items


def test_auto_resampling_is_joint_on_parallel_data_and_equals_it():
    """The default 'auto' is what qd report and claims use: joint on a parallel corpus, with identical numbers."""
    df = make_parallel(n_items=30)
    auto = quiet(diff_in_diff, df, reference="eng_Latn", n_resamples=199, rng=0)
    joint = quiet(diff_in_diff, df, reference="eng_Latn", resampling="joint", n_resamples=199, rng=0)
    assert auto.resampling == "joint"
    pd.testing.assert_frame_equal(auto.to_frame(), joint.to_frame())


# ----------------------------------------------------------------------------- refusals, errors, warnings
def test_ratio_refused_when_reference_ci_includes_zero():
    df = make_parallel(shifts={"eng_Latn": 0.0, "heb_Hebr": 0.2}, item_sd=0.0, noise=0.05)
    with pytest.raises(ValueError, match=r"`reference` 'eng_Latn' has degradation .* CI \[.*\].*includes 0"):
        quiet(disparity_ratio, df, reference="eng_Latn", n_resamples=499, rng=0)


def test_errors_name_the_parameter():
    df = make_parallel(n_items=10)
    with pytest.raises(UnknownNameError, match=r"`language` column 'lang'.*Did you mean 'language'"):
        degradation(df, language="lang")
    with pytest.raises(ValueError, match=r"`reference` 'eng_latn' is not among.*Did you mean 'eng_Latn'"):
        diff_in_diff(df, reference="eng_latn")
    with pytest.raises(ValueError, match=r"`resampling` must be one of"):
        degradation(df, resampling="paired")
    dup = pd.concat([df, df.iloc[:1]])
    with pytest.raises(ValueError, match="duplicate"):
        degradation(dup)
    bad_cluster = make_parallel(n_items=10, n_docs=5)
    bad_cluster.loc[bad_cluster.language == "heb_Hebr", "doc"] += 1
    with pytest.raises(ValueError, match="`cluster` must be constant"):
        degradation(bad_cluster, cluster="doc")
    with pytest.raises(TypeError, match="`data` must be a pandas DataFrame"):
        degradation(df.to_dict())
    long = df.melt(id_vars=["language", "item_id"], value_vars=["full", "compressed"], var_name="cond")
    with pytest.raises(ValueError, match=r"`compressed` level 'int4' not found"):
        degradation(long, condition="cond", compressed="int4")


def test_nan_policies():
    df = make_parallel(n_items=20)
    df.loc[df.index[df.language == "heb_Hebr"][0], "compressed"] = np.nan
    with pytest.raises(ValueError, match="nan_policy"):
        degradation(df)
    res = quiet(degradation, df, nan_policy="omit", n_resamples=99, rng=0)
    assert res["heb_Hebr"].n == 19 and res["eng_Latn"].n == 20
    assert any("omitted" in w for w in res.warnings)
    with pytest.warns(DegenerateDataWarning):
        res = quiet(degradation, df, nan_policy="propagate", n_resamples=99, rng=0)
    assert math.isnan(res["heb_Hebr"].estimate) and not math.isnan(res["eng_Latn"].estimate)


def test_small_n_languages_warning():
    df = make_parallel(n_items=20)
    with pytest.warns(SmallSampleWarning, match="only 4 languages"):
        res = diff_in_diff(df, reference="eng_Latn", n_resamples=99, rng=0)
    assert any("only 4 languages" in w for w in res.warnings)
    ten = make_parallel(n_items=20, shifts={f"l{i}_Latn": 0.01 * i for i in range(10)})
    with warnings.catch_warnings():
        warnings.simplefilter("error", SmallSampleWarning)
        res10 = degradation(ten, n_resamples=99, rng=0)
    assert not any("languages" in w for w in res10.warnings)


def test_bca_constant_differences_nan_with_warning():
    df = make_parallel(shifts={"eng_Latn": 0.1, "heb_Hebr": 0.2}, item_sd=0.0, noise=0.0, n_items=15)
    df["compressed"] = df["full"].round(3) + df["language"].map({"eng_Latn": 0.125, "heb_Hebr": 0.25})
    df["full"] = df["full"].round(3)
    with pytest.warns(DegenerateDataWarning):
        res = quiet(degradation, df, kind="bca", n_resamples=99, rng=0)
    assert math.isnan(res["heb_Hebr"].ci.low)
    assert any("BCa interval undefined" in w for w in res["heb_Hebr"].warnings)


def test_single_cluster_gives_nan_interval_with_warning():
    """All items in one document: the estimate is defined, its cluster-bootstrap interval is not (NaN + warning)."""
    df = make_parallel(n_items=12)
    df["doc"] = 0
    with pytest.warns(DegenerateDataWarning, match="cluster"):
        deg = quiet(degradation, df, cluster="doc", n_resamples=99, rng=0)
    sub = df[df.language == "heb_Hebr"]
    assert_allclose(deg["heb_Hebr"].estimate, np.mean(sub["compressed"] - sub["full"]), rtol=1e-12)
    assert math.isnan(deg["heb_Hebr"].ci.low) and math.isnan(deg["heb_Hebr"].ci.high)
    assert math.isnan(deg["heb_Hebr"].standard_error)
    assert any("needs at least 2" in w for w in deg["heb_Hebr"].warnings)
    with pytest.warns(DegenerateDataWarning, match="cluster"):
        did = quiet(diff_in_diff, df, reference="eng_Latn", cluster="doc", n_resamples=99, rng=0)
    assert np.isfinite(did["heb_Hebr"].estimate)
    assert math.isnan(did["heb_Hebr"].ci.low) and math.isnan(did["heb_Hebr"].pvalue)


def test_serialization_roundtrip():
    res = quiet(diff_in_diff, make_parallel(n_items=12), reference="eng_Latn", n_resamples=99, rng=0)
    back = DisparityResult.model_validate_json(res.model_dump_json())
    assert back.to_frame().drop(columns=["warnings"]).equals(res.to_frame().drop(columns=["warnings"]))
    assert "distribution" not in res.model_dump()["results"]["heb_Hebr"]
    assert "heb_Hebr vs eng_Latn" in res.summary()
    with pytest.raises(UnknownNameError, match="Did you mean 'heb_Hebr'"):
        res["heb_hebr"]


# ----------------------------------------------------------------------------- properties
diffs = hs.lists(hs.floats(-5, 5, allow_nan=False, width=32), min_size=3, max_size=15)


@settings(max_examples=30)
@given(diffs, diffs, hs.integers(0, 2**16))
def test_property_row_order_invariance(d1, d2, seed):
    n = min(len(d1), len(d2))
    df = pd.DataFrame({"language": ["eng_Latn"] * n + ["heb_Hebr"] * n, "item_id": list(range(n)) * 2,
                       "full": 1.0, "compressed": 1.0 + np.array(d1[:n] + d2[:n], dtype=float)})
    perm = df.sample(frac=1.0, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = diff_in_diff(df, reference="eng_Latn", kind="percentile", n_resamples=50, rng=1).to_frame()
        b = diff_in_diff(perm, reference="eng_Latn", kind="percentile", n_resamples=50, rng=1).to_frame()
    cols = ["estimate", "ci_low", "ci_high", "pvalue"]
    assert_allclose(a[cols].to_numpy(), b[cols].to_numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=30)
@given(diffs, hs.sampled_from(["percentile", "basic", "bca"]))
def test_property_did_with_itself_is_zero(d, kind):
    n = len(d)
    base = pd.DataFrame({"item_id": range(n), "full": 2.0, "compressed": 2.0 + np.array(d, dtype=float)})
    df = pd.concat([base.assign(language="eng_Latn"), base.assign(language="eng_Copy")], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = diff_in_diff(df, reference="eng_Latn", kind=kind, n_resamples=50, rng=0)
    assert res["eng_Copy"].estimate == 0.0
    assert res["eng_Latn"].estimate == 0.0
    if kind != "bca":  # BCa is undefined on a constant-zero distribution (NaN + warning)
        assert res["eng_Copy"].ci.low == 0.0 and res["eng_Copy"].ci.high == 0.0


@settings(max_examples=30)
@given(diffs, hs.floats(-100, 100, allow_nan=False))
def test_property_delta_invariant_to_constant_shift(d, c):
    n = len(d)
    rng = np.random.default_rng(n)
    full = rng.normal(1.0, 0.2, n)
    df = pd.DataFrame({"language": "eng_Latn", "item_id": range(n), "full": full, "compressed": full + np.array(d)})
    shifted = df.assign(full=df.full + c, compressed=df.compressed + c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = degradation(df, kind="percentile", n_resamples=50, rng=0)["eng_Latn"]
        b = degradation(shifted, kind="percentile", n_resamples=50, rng=0)["eng_Latn"]
    # adding c to both columns changes the differences only by rounding (|c| <= 100, values O(1))
    assert_allclose([b.estimate, b.ci.low, b.ci.high], [a.estimate, a.ci.low, a.ci.high], rtol=0, atol=1e-12)


@settings(max_examples=30)
@given(hs.lists(hs.floats(0.01, 5, allow_nan=False), min_size=2, max_size=12))
def test_property_ratio_refused_when_reference_ci_includes_zero(half):
    """A reference whose differences are symmetric about 0 always has a CI containing 0 -> refused."""
    d_ref = np.array(half + [-h for h in half])
    n = len(d_ref)
    df = pd.DataFrame({"language": ["eng_Latn"] * n + ["heb_Hebr"] * n, "item_id": list(range(n)) * 2,
                       "full": 0.0, "compressed": np.concatenate([d_ref, np.full(n, 0.3)])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="'eng_Latn'.*includes 0"):
            disparity_ratio(df, reference="eng_Latn", kind="percentile", n_resamples=99, rng=0)


# ----------------------------------------------------------------------------- coverage
@pytest.mark.slow
def test_degradation_document_cluster_coverage_vs_naive():
    """Simulation: 1000 data sets of 100 documents x 4 sentences with a strong document effect (ICC 0.5).

    degradation(..., cluster='doc') covers the true Δ in [0.93, 0.97]; the item-level bootstrap
    (no cluster column) under-covers (< 0.90; theory about 0.79 for design effect 2.5).
    """
    rng = np.random.default_rng(11)
    n_docs, per = 100, 4
    doc = np.repeat(np.arange(n_docs), per)
    base = pd.DataFrame({"language": "heb_Hebr", "item_id": np.arange(n_docs * per), "doc": doc, "full": 0.0})
    hit_c = hit_n = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(1000):
            d = 0.2 + rng.normal(0.0, 0.1, n_docs)[doc] + rng.normal(0.0, 0.1, n_docs * per)
            df = base.assign(compressed=d)
            res_c = degradation(df, cluster="doc", kind="percentile", n_resamples=999, rng=rng)
            res_n = degradation(df, kind="percentile", n_resamples=999, rng=rng)
            hit_c += res_c["heb_Hebr"].ci.contains(0.2)
            hit_n += res_n["heb_Hebr"].ci.contains(0.2)
    assert 0.93 <= hit_c / 1000 <= 0.97, hit_c / 1000
    assert hit_n / 1000 < 0.90, hit_n / 1000


@pytest.mark.parametrize("measure", ["diff_in_diff", "disparity_ratio"])
def test_independent_bca_acceleration_matches_scipy_several_sample_formula(measure):
    """Regression (review): with ``resampling='independent'`` the BCa acceleration pooled the two
    jackknife blocks around one mean, while scipy (whose formula the docstring cites) centres each
    sample's jackknife on its own mean and scales by n_j; with unequal n the CIs differed (~3e-4
    relative here). Oracle: scipy 1.17 ``scipy.stats._resampling._bca_interval`` (private; it returns
    the BCa percentiles and a_hat) fed OUR bootstrap replicates, so the only difference left is the
    interval arithmetic: rtol 1e-10 (same formula, same quantile interpolation)."""
    from scipy.stats._resampling import _bca_interval

    rng = np.random.default_rng(5)
    na, nb = 12, 40
    a, b = rng.exponential(1.0, na) + 0.5, rng.exponential(0.3, nb) + 0.2  # skewed: a != 0 matters
    df = pd.DataFrame({"language": ["heb_Hebr"] * na + ["eng_Latn"] * nb,
                       "item_id": [f"h{i}" for i in range(na)] + [f"e{i}" for i in range(nb)],
                       "full": 0.0, "compressed": np.r_[a, b]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if measure == "diff_in_diff":
            res = diff_in_diff(df, reference="eng_Latn", resampling="independent", kind="bca", n_resamples=4999,
                               rng=3, permutation=False)["heb_Hebr"]

            def stat(x, y, axis=-1):
                return np.mean(x, axis=axis) - np.mean(y, axis=axis)
        else:
            res = disparity_ratio(df, reference="eng_Latn", resampling="independent", kind="bca", n_resamples=4999,
                                  rng=3)["heb_Hebr"]

            def stat(x, y, axis=-1):
                return np.mean(x, axis=axis) / np.mean(y, axis=axis)
    reps = res.distribution
    # scipy 1.17 takes the array namespace `xp`; 1.15.0 (the declared floor) does not
    xp_kw = {"xp": np} if "xp" in inspect.signature(_bca_interval).parameters else {}
    a1, a2, _ = _bca_interval((a, b), stat, axis=-1, alpha=0.025, theta_hat_b=reps[None, :], batch=None, **xp_kw)
    expected = np.quantile(reps, [float(np.squeeze(a1)), float(np.squeeze(a2))])
    assert_allclose([res.ci.low, res.ci.high], expected, rtol=1e-10)


def test_ratio_warns_when_reference_replicates_cross_zero():
    """Regression (review): a reference CI that just excludes 0 still leaves bootstrap replicates of
    Δ_ref on the other side of 0, where Δ_l/Δ*_ref explodes or flips sign and drags the ratio's
    percentiles (Fieller 1954); that was silent. Closed form of the count: the replicates are in
    ``distribution`` of the reference's degradation with the same seed (joint engine, same draws)."""
    shifts = {"eng_Latn": 0.0045, "heb_Hebr": 0.05}
    df = make_parallel(n_items=60, shifts=shifts, seed=1, item_sd=0.0, noise=0.01)
    ref_dist = quiet(degradation, df, kind="percentile", n_resamples=2000, rng=2)["eng_Latn"]
    assert ref_dist.ci.low > 0.0  # the refusal rule does not fire ...
    n_flip = int(np.sum(ref_dist.distribution <= 0.0))
    assert n_flip > 0  # ... yet some replicates cross 0 (data chosen so)
    with pytest.warns(DegenerateDataWarning, match="opposite sign"):
        res = quiet(disparity_ratio, df, reference="eng_Latn", kind="percentile", n_resamples=2000, rng=2)
    assert any(w.startswith(f"{n_flip} of 2000 bootstrap replicates of Δ_ref") for w in res.warnings)
    clean = make_parallel(n_items=60, shifts={"eng_Latn": 0.05, "heb_Hebr": 0.1}, seed=1, item_sd=0.0, noise=0.01)
    assert not any("opposite sign" in w for w in quiet(disparity_ratio, clean, n_resamples=999, rng=2).warnings)


def _two_items_frame(doc_column: bool) -> pd.DataFrame:
    df = pd.DataFrame({"language": ["eng_Latn"] * 2 + ["heb_Hebr"] * 2, "item_id": ["a", "b", "a", "b"],
                       "full": [1.0, 1.1, 2.0, 2.2], "compressed": [1.2, 1.25, 2.5, 2.9]})
    if doc_column:
        df["document_id"] = ["d1", "d2", "d1", "d2"]
    return df


def test_diff_in_diff_with_two_items_per_language_warns_and_states_the_p_floor():
    """Regression: 2 items gave a BCa CI and p = 0.5 with no small-sample warning."""
    with pytest.warns(SmallSampleWarning, match=r"heb_Hebr: only 2 independent units .* cannot fall below 0\.5"):
        res = diff_in_diff(_two_items_frame(False), reference="eng_Latn", rng=0)
    assert res["heb_Hebr"].pvalue == 0.5  # the floor the warning states: 2^(1 - 2)
    assert any("only 2 independent units" in w for w in res["heb_Hebr"].warnings)
    with pytest.warns(SmallSampleWarning, match=r"eng_Latn: only 2 independent units .*under-cover with so few\."):
        degradation(_two_items_frame(False), rng=0)


def test_no_small_sample_warning_with_enough_units():
    rng = np.random.default_rng(1)
    n = 12
    df = pd.DataFrame({"language": ["eng_Latn"] * n + ["heb_Hebr"] * n, "item_id": [f"s{k}" for k in range(n)] * 2,
                       "full": rng.normal(1, 0.1, 2 * n), "compressed": rng.normal(1.2, 0.1, 2 * n)})
    res = diff_in_diff(df, reference="eng_Latn", rng=0)
    assert not any("independent units" in w for w in res["heb_Hebr"].warnings)


@pytest.mark.parametrize("fn", ["degradation", "diff_in_diff", "disparity_ratio"])
def test_document_column_without_cluster_warns(fn):
    """Regression: a frame with documents but cluster=None silently under-covered (0.66 instead of 0.95)."""
    f = {"degradation": degradation, "diff_in_diff": diff_in_diff, "disparity_ratio": disparity_ratio}[fn]
    kw = {} if fn == "degradation" else {"reference": "eng_Latn"}
    with pytest.warns(SmallSampleWarning, match="'document_id' column but `cluster` is None"):
        res = f(_two_items_frame(True), rng=0, **kw)
    assert any("cluster='document_id'" in w for w in res.warnings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = f(_two_items_frame(True), rng=0, cluster="document_id", **kw)
    assert not any("`cluster` is None" in str(w.message) for w in caught)
    assert not any("`cluster` is None" in w for w in res.warnings)


@pytest.mark.slow
def test_small_sample_t_interval_coverage_with_40_documents():
    """Simulation (800 data sets of 40 documents x 4 sentences, ICC 0.5): the 't' option covers the true Δ in
    [0.93, 0.97] and never less often than the percentile interval on the same data (measured on 1000 data sets
    with 999 resamples: percentile 0.931, BCa 0.930, t 0.949; analyses/small_sample_coverage)."""
    rng = np.random.default_rng(12)
    n_docs, per = 40, 4
    doc = np.repeat(np.arange(n_docs), per)
    base = pd.DataFrame({"language": "heb_Hebr", "item_id": np.arange(n_docs * per), "doc": doc, "full": 0.0})
    hit_t = hit_p = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(800):
            df = base.assign(compressed=0.2 + rng.normal(0.0, 0.1, n_docs)[doc] + rng.normal(0.0, 0.1, n_docs * per))
            seed = int(rng.integers(2**31))
            t = degradation(df, cluster="doc", kind="t", n_resamples=499, rng=seed)["heb_Hebr"]
            p = degradation(df, cluster="doc", kind="percentile", n_resamples=499, rng=seed)["heb_Hebr"]
            hit_t += t.ci.contains(0.2)
            hit_p += p.ci.contains(0.2)
    assert t.ci.method == "cluster-bootstrap-se-t"
    assert 0.93 <= hit_t / 800 <= 0.97, hit_t / 800
    assert hit_t >= hit_p, (hit_t, hit_p)


def test_t_interval_is_the_cr1_formula():
    """Closed form: estimate ± t_{G-1,0.975} · SE* · sqrt(G/(G-1)) with SE* the bootstrap SD of the replicates."""
    import scipy.stats as st

    rng = np.random.default_rng(3)
    n_docs, per = 6, 3
    doc = np.repeat(np.arange(n_docs), per)
    df = pd.DataFrame({"language": "heb_Hebr", "item_id": np.arange(n_docs * per), "doc": doc, "full": 0.0,
                       "compressed": rng.normal(0.3, 0.2, n_docs * per)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = degradation(df, cluster="doc", kind="t", n_resamples=999, rng=0)["heb_Hebr"]
    se = np.std(est.distribution[np.isfinite(est.distribution)], ddof=1)
    half = st.t.ppf(0.975, n_docs - 1) * se * np.sqrt(n_docs / (n_docs - 1))
    assert_allclose([est.ci.low, est.ci.high], [est.estimate - half, est.estimate + half], rtol=1e-12)
    assert est.standard_error == pytest.approx(se, rel=1e-12)
