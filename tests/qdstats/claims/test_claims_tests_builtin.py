"""Built-in claim tests: estimates against closed forms and the libraries they wrap; planted effects."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pingouin as pg
import pytest
import scipy.stats as st
from claims_synth import (
    CORPUS_TEST,
    bpb_records,
    four_condition_records,
    layer_records,
    model_ref,
    spec_dict,
    synthetic_language,
    unit_records,
)
from numpy.testing import assert_allclose

from qdstats.claims import ClaimSpec, build_claims_table
from qdstats.disparity import diff_in_diff
from qdstats.records import Measurement, to_frame


def _row(spec: dict, records):
    return build_claims_table([ClaimSpec.model_validate(spec)], records).rows[0]


def test_diff_in_diff_matches_closed_form_and_disparity_module():
    """Oracle: mean of paired differences of differences (closed form, rtol 1e-12) and qdstats.disparity
    called directly with the same seed (identical CI, rtol 1e-12: same code path)."""
    recs = bpb_records(effects={"eng_Latn": 0.02, "heb_Hebr": 0.08, "arb_Arab": 0.0}, n_items=40, seed=11)
    row = _row(spec_dict(), recs)
    df = to_frame(recs)
    w = df.pivot_table(index=["language", "item_id"], columns="condition.scheme", values="value")
    d = (w["int4"] - w["fp32"]).unstack(0)
    assert_allclose(row.estimate, (d["heb_Hebr"] - d["eng_Latn"]).mean(), rtol=1e-12)
    assert_allclose(row.details["delta_reference"], d["eng_Latn"].mean(), rtol=1e-12)
    long = df.rename(columns={"condition.scheme": "cond"})[["language", "item_id", "cond", "value"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only 3 languages (< 10)": expected here
        direct = diff_in_diff(long, reference="eng_Latn", full="fp32", compressed="int4", condition="cond",
                              alternative="greater", n_resamples=999, rng=1)["heb_Hebr"]
    assert_allclose([row.ci_low, row.ci_high, row.p], [direct.ci.low, direct.ci.high, direct.pvalue], rtol=1e-12)
    assert row.n_units["languages"] == 3


def test_diff_in_diff_requires_one_model():
    recs = []
    for i in range(2):
        recs += bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=10, seed=i, model=model_ref(f"m{i}"))
    row = _row(spec_dict(), recs)
    assert row.verdict == "error" and "`params.model` is required" in row.message
    ok = _row(spec_dict(params={**spec_dict()["params"], "model": "m1"}), recs)
    assert ok.verdict != "error" and ok.n == 10


def test_ambiguous_selection_is_an_error_not_a_silent_average():
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=10, seed=1)
    recs += [r for r in bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=10, seed=2,
                                    treatment={"scheme": "int4", "protect": "layers=0"}) if "protect" in r.condition]
    spec = spec_dict(test="mean_difference_paired",
                     params={"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}, "language": "heb_Hebr"})
    row = _row(spec, recs)
    assert row.verdict == "error" and "ambiguous" in row.message
    spec["params"]["treatment"] = {"scheme": "int4", "protect": None}
    assert _row(spec, recs).verdict != "error"


def test_mean_difference_paired_matches_mean():
    recs = bpb_records(effects={"heb_Hebr": 0.07}, n_items=30, seed=3)
    spec = spec_dict(test="mean_difference_paired", params={"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}})
    row = _row(spec, recs)
    df = to_frame(recs)
    w = df.pivot_table(index="item_id", columns="condition.scheme", values="value")
    assert_allclose(row.estimate, (w["int4"] - w["fp32"]).mean(), rtol=1e-12)
    assert row.verdict == "supported"


def test_mean_difference_paired_clustered_matches_direct_calls():
    """Oracle: with ``cluster``, the CI equals qdstats.resampling.cluster_bootstrap_ci (BCa) on the item
    differences with the document labels, and p equals a sign-flip test of the document sums (same seeds,
    rtol 1e-12: the same computation done by hand from the records)."""
    from qdstats.resampling import cluster_bootstrap_ci, paired_permutation_test

    recs = bpb_records(effects={"heb_Hebr": 0.03}, n_items=40, noise=0.05, seed=4)
    spec = spec_dict(test="mean_difference_paired", params={
        "baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}, "language": "heb_Hebr",
        "cluster": "document_id"})
    row = _row(spec, recs)
    df = to_frame(recs)
    w = df.pivot_table(index=["item_id", "attributes.document_id"], columns="condition.scheme", values="value")
    d = (w["int4"] - w["fp32"]).reset_index()
    boot = cluster_bootstrap_ci(d[0].to_numpy(), d["attributes.document_id"].to_numpy(), kind="bca",
                                n_resamples=999, rng=1)
    sums = w.groupby(level="attributes.document_id").sum()
    perm = paired_permutation_test(sums["int4"].to_numpy(), sums["fp32"].to_numpy(), alternative="greater",
                                   n_resamples=999, rng=2)
    assert_allclose(row.estimate, d[0].mean(), rtol=1e-12)
    assert_allclose([row.ci_low, row.ci_high, row.p], [boot.ci.low, boot.ci.high, perm.pvalue], rtol=1e-12)
    assert row.n == 40 and row.n_units["clusters"] == 10
    assert row.details["cluster"] == "document_id"


def test_mean_difference_paired_cluster_is_wider_with_document_effects():
    """Planted document-level effect shared by the 4 sentences of a document: the clustered CI must be
    wider than the item-level one (the item bootstrap understates the uncertainty)."""
    recs = bpb_records(effects={"heb_Hebr": 0.0}, n_items=80, noise=0.005, seed=5)
    rng = np.random.default_rng(0)
    doc_fx = {f"d{k:03d}": rng.normal(0, 0.05) for k in range(20)}
    recs = [r.model_copy(update={"value": r.value + doc_fx[r.attributes["document_id"]]})
            if r.condition["scheme"] == "int4" else r for r in recs]
    base = {"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}, "language": "heb_Hebr"}
    plain = _row(spec_dict(test="mean_difference_paired", params=base), recs)
    clus = _row(spec_dict(test="mean_difference_paired", params={**base, "cluster": "document_id"}), recs)
    assert (clus.ci_high - clus.ci_low) > 1.5 * (plain.ci_high - plain.ci_low)


def test_mean_difference_paired_cluster_errors():
    recs = bpb_records(effects={"heb_Hebr": 0.03}, n_items=8, seed=6)
    base = {"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}, "language": "heb_Hebr"}
    row = _row(spec_dict(test="mean_difference_paired", params={**base, "cluster": "no_such_column"}), recs)
    assert row.verdict == "error" and "params.cluster" in row.message
    one = [r.model_copy(update={"attributes": {"document_id": "d0"}}) for r in recs]
    row = _row(spec_dict(test="mean_difference_paired", params={**base, "cluster": "document_id"}), one)
    assert row.verdict == "insufficient_data" and "1 cluster" in row.message


@pytest.mark.parametrize(("planted", "expected"), [(0.1, {"supported"}), (0.0, {"not_supported", "inconclusive"})])
def test_interaction(planted, expected):
    recs = four_condition_records(interaction=planted, n_items=60, seed=2)
    spec = spec_dict(test="interaction", params={
        "base": {"scheme": "fp32", "prune": "none"}, "first": {"scheme": "int4", "prune": "none"},
        "second": {"scheme": "fp32", "prune": "wanda50"}, "both": {"scheme": "int4", "prune": "wanda50"}},
        decision={"alpha": 0.05, "min_abs_effect": 0.02, "min_n": 20})
    row = _row(spec, recs)
    assert row.verdict in expected
    df = to_frame(recs)
    w = df.pivot_table(index=["language", "item_id"], columns=["condition.scheme", "condition.prune"], values="value")
    inter = (w[("int4", "wanda50")] - w[("int4", "none")] - w[("fp32", "wanda50")] + w[("fp32", "none")])
    assert_allclose(row.estimate, inter.groupby(level="item_id").mean().mean(), rtol=1e-10)
    assert_allclose(row.details["delta_first"], 0.1, atol=0.01)  # planted main effect, noise sd 0.02 / sqrt(60)


_FOUR = {"base": {"scheme": "fp32", "prune": "none"}, "first": {"scheme": "int4", "prune": "none"},
         "second": {"scheme": "fp32", "prune": "wanda50"}, "both": {"scheme": "int4", "prune": "wanda50"}}


@pytest.mark.parametrize(("planted", "expected"), [
    ({"heb_Hebr": 0.1, "eng_Latn": 0.0}, {"supported"}),
    # the same interaction in both languages: super-additive, but not more so for Hebrew
    ({"heb_Hebr": 0.1, "eng_Latn": 0.1}, {"not_supported", "inconclusive"}),
])
def test_interaction_triple_difference(planted, expected):
    """Oracle: closed form, the Hebrew item's interaction minus the English item's, averaged over items."""
    recs = four_condition_records(interaction=planted, n_items=60, seed=3)
    spec = spec_dict(test="interaction", params={**_FOUR, "language": "heb_Hebr", "reference": "eng_Latn"},
                     decision={"alpha": 0.05, "min_abs_effect": 0.02, "min_n": 20})
    row = _row(spec, recs)
    assert row.verdict in expected
    df = to_frame(recs)
    w = df.pivot_table(index=["language", "item_id"], columns=["condition.scheme", "condition.prune"], values="value")
    inter = (w[("int4", "wanda50")] - w[("int4", "none")] - w[("fp32", "wanda50")] + w[("fp32", "none")]).unstack(0)
    assert_allclose(row.estimate, (inter["heb_Hebr"] - inter["eng_Latn"]).mean(), rtol=1e-10)
    assert_allclose(row.details["interaction_language"], inter["heb_Hebr"].mean(), rtol=1e-10)
    assert_allclose(row.details["interaction_reference"], inter["eng_Latn"].mean(), rtol=1e-10)
    assert row.n == 60 and row.n_units["languages"] == 2


def test_interaction_triple_difference_drops_unpaired_items_with_a_note():
    recs = four_condition_records(interaction={"heb_Hebr": 0.1}, n_items=30, seed=4)
    recs = [r for r in recs if not (r.language == "eng_Latn" and r.item_id == "s0000")]
    row = _row(spec_dict(test="interaction", params={**_FOUR, "language": "heb_Hebr", "reference": "eng_Latn"},
                         decision={"alpha": 0.05, "min_n": 10}), recs)
    assert row.n == 29
    assert any("left out of the triple difference" in w for w in row.warnings)


@pytest.mark.parametrize(("extra", "message"), [({"reference": "eng_Latn"}, "needs `language`"),
                                                ({"reference": "heb_Hebr", "language": "heb_Hebr"}, "must differ")])
def test_interaction_reference_validation(extra, message):
    with pytest.raises(ValueError, match=message):
        ClaimSpec.model_validate(spec_dict(test="interaction", params={**_FOUR, **extra}))


def test_layer_group_contrast_planted_and_exact_permutation():
    """Oracle for p: full enumeration of the C(12, 3) = 220 layer splits (closed form), rtol 1e-12."""
    recs = layer_records(gateway_boost=0.05, n_layers=12, seed=0)
    spec = spec_dict(test="layer_group_contrast", unit_of_analysis="site",
                     select={"y": {"quantity": "sens.delta_bits_per_byte", "split": "test"}},
                     params={"group": ["first", "last", 0.75], "language": "heb_Hebr", "reference": "eng_Latn"},
                     decision={"alpha": 0.05, "min_n": 4})
    row = _row(spec, recs)
    assert row.details["group_layers"] == [0, 8, 11]
    assert row.verdict == "supported" and row.n == 12
    df = to_frame(recs)
    df["layer"] = df["site"].str.extract(r"layers\.(\d+)").astype(int)[0]
    v = df.pivot_table(index="layer", columns="language", values="value")
    x = (v["heb_Hebr"] - v["eng_Latn"]).to_numpy()
    g = np.isin(np.arange(12), [0, 8, 11])
    obs = x[g].mean() - x[~g].mean()
    assert_allclose(row.estimate, obs, rtol=1e-12)
    null = [x[list(c)].mean() - np.delete(x, list(c)).mean() for c in itertools.combinations(range(12), 3)]
    assert_allclose(row.p, np.mean(np.array(null) >= obs - 1e-12), rtol=1e-12)


def test_layer_group_contrast_null_is_not_supported():
    recs = layer_records(gateway_boost=0.0, n_layers=12, seed=1)
    spec = spec_dict(test="layer_group_contrast", unit_of_analysis="site",
                     select={"y": {"quantity": "sens.delta_bits_per_byte"}},
                     params={"group": [0, -1, 0.75], "language": "heb_Hebr", "reference": "eng_Latn"},
                     decision={"alpha": 0.05, "min_n": 4})
    assert _row(spec, recs).verdict in ("not_supported", "inconclusive")


@pytest.mark.parametrize("method", ["pearson", "spearman", "kendall"])
def test_correlation_across_units_matches_scipy(method):
    """Oracle: scipy.stats pearsonr / spearmanr / kendalltau on the per-unit values, rtol 1e-10."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = 0.8 * x + rng.normal(scale=0.5, size=12)
    recs = unit_records(x, y)
    spec = spec_dict(test=method, unit_of_analysis="language", alternative="two-sided",
                     select={"y": {"quantity": "disparity.diff_in_diff"}, "x": {"quantity": "eval.n_tokens"}},
                     params={"x": "x"}, decision={"alpha": 0.05, "min_n": 5})
    row = _row(spec, recs)
    fn = {"pearson": st.pearsonr, "spearman": st.spearmanr, "kendall": st.kendalltau}[method]
    ref = fn(x, y)
    assert_allclose([row.estimate, row.p], [ref.statistic, ref.pvalue], rtol=1e-10)
    assert row.n == 12 and row.n_units == {"language": 12}


def test_partial_corr_matches_pingouin_and_reports_vif():
    """Oracle: pingouin.partial_corr (r and p), rtol 1e-10; VIF of x and the covariate is in details."""
    rng = np.random.default_rng(1)
    n = 15
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = 0.5 * x + z + rng.normal(size=n)
    langs = [synthetic_language(i) for i in range(n)]
    recs = unit_records(x, y, langs=langs)
    recs += [Measurement(quantity="eval.n_bytes", value=float(v), language=lang, model=model_ref(),
                         routine="tests.claims.synthetic") for lang, v in zip(langs, z)]
    spec = spec_dict(test="partial_corr", unit_of_analysis="language", alternative="two-sided",
                     select={"y": {"quantity": "disparity.diff_in_diff"}, "x": {"quantity": "eval.n_tokens"},
                             "z": {"quantity": "eval.n_bytes"}},
                     params={"x": "x"}, covariates=["z"], decision={"alpha": 0.05, "min_n": 5})
    row = _row(spec, recs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = pg.partial_corr(pd.DataFrame({"x": x, "y": y, "z": z}), x="x", y="y", covar="z")
    assert_allclose([row.estimate, row.p], [ref["r"].iloc[0], ref["p_val"].iloc[0]], rtol=1e-10)
    assert row.details["max_vif"] > 1.0 and set(row.details["vif"]) == {"x", "z"}


def test_protection_effect_planted_reduction_and_cost():
    """Protection removes the Hebrew excess (0.1 -> 0.0): reduction 0.1; base condition cancels."""
    recs = []
    rng = np.random.default_rng(0)
    for lang, excess in (("eng_Latn", 0.0), ("heb_Hebr", 0.1)):
        for i in range(50):
            b = 1.0 + rng.normal(0, 0.2)
            for cond, v in (({"scheme": "fp32", "protect": "none"}, b),
                            ({"scheme": "int4", "protect": "none"}, b + 0.05 + excess + rng.normal(0, 0.01)),
                            ({"scheme": "int4", "protect": "layers=0,11"}, b + 0.03 + rng.normal(0, 0.01))):
                recs.append(Measurement(quantity="eval.bits_per_byte", value=float(v), model=model_ref(), language=lang,
                                        corpus=CORPUS_TEST, item_id=f"s{i}", condition=cond, routine="tests.claims.synthetic"))
    for cond, bpw in ((("int4", "none"), 4.25), (("int4", "layers=0,11"), 6.1)):
        recs.append(Measurement(quantity="quant.model_bits_per_weight", value=bpw, model=model_ref(),
                                condition={"scheme": cond[0], "protect": cond[1]}, routine="tests.claims.synthetic"))
    spec = spec_dict(test="protection_effect", test_split="test", selection_split="dev",
                     select={"y": {"quantity": "eval.bits_per_byte", "split": "test"},
                             "cost": {"quantity": "quant.model_bits_per_weight"}},
                     params={"baseline": {"scheme": "fp32"}, "before": {"scheme": "int4", "protect": "none"},
                             "after": {"scheme": "int4", "protect": {"not": "none"}}})
    row = _row(spec, recs)
    assert row.verdict == "supported"
    assert_allclose(row.estimate, 0.1, atol=0.006)  # noise sd 0.01*2/sqrt(50) ~ 0.003
    assert row.details["cost_before"] == 4.25 and row.details["cost_after"] == 6.1
    assert "selection_not_separated" not in row.grade_reasons
    same = _row({**spec, "selection_split": "test"}, recs)
    assert "selection_not_separated" in same.grade_reasons
    # compressed conditions measured on 20 of the 50 sentences: 'all' notes the left-out baseline rows,
    # 'compressed' takes the 20 as the sample by design; the estimate is the same
    sub = [r for r in recs if r.condition.get("scheme") != "int4" or r.quantity != "eval.bits_per_byte"
           or int(r.item_id[1:]) < 20]
    full = _row(spec, sub)
    assert full.n == 20 and any("60 of 100" in w and "left out" in w for w in full.warnings)
    design = _row({**spec, "params": {**spec["params"], "sample": "compressed"}}, sub)
    assert design.n == 20 and not design.warnings and design.estimate == full.estimate


def test_mixed_slope_recovers_planted_slope():
    """Planted slope -0.5 of word damage on alignment with sentence random intercepts; Wald CI must cover it."""
    rng = np.random.default_rng(3)
    recs = []
    for s in range(40):
        u = rng.normal(0, 0.3)
        for w in range(8):
            a = rng.uniform(0, 1)
            ln = int(rng.integers(1, 12))
            v = 1.0 - 0.5 * a + 0.02 * ln + u + rng.normal(0, 0.2)
            recs.append(Measurement(quantity="eval.word_delta_nll", value=float(v), model=model_ref(), language="heb_Hebr",
                                    corpus=CORPUS_TEST, item_id=f"s{s}:{w}", condition={"scheme": "int4"},
                                    attributes={"sentence_id": f"s{s}", "boundary_f1": a, "n_bytes": ln},
                                    routine="tests.claims.synthetic"))
    spec = spec_dict(test="mixed_slope", alternative="less", select={"y": {"quantity": "eval.word_delta_nll"}},
                     params={"x": "boundary_f1", "groups": "sentence_id", "language": "heb_Hebr"}, covariates=["n_bytes"],
                     decision={"alpha": 0.05, "min_n": 50})
    row = _row(spec, recs)
    assert row.verdict == "supported", (row.message, row.verdict_reason)
    assert abs(row.estimate + 0.5) < 4 * 0.039  # planted -0.5; SE ~ 0.2 / sqrt(320 / 12)
    import statsmodels.formula.api as smf

    df = to_frame(recs).rename(columns={"attributes.boundary_f1": "a", "attributes.n_bytes": "nb",
                                        "attributes.sentence_id": "g"})
    df = df[["value", "a", "nb", "g"]].astype({"value": float, "a": float, "nb": float})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = smf.mixedlm("value ~ a + nb", df, groups=df["g"]).fit(reml=True)
    # statsmodels MixedLM as oracle for the slope; atol 1e-4: different optimizers stop at slightly different points
    assert_allclose(row.estimate, fit.fe_params["a"], atol=1e-4)
    assert row.n == 320 and row.n_units["groups"] == 40
    assert row.details["converged"] is True


def test_mixed_slope_with_a_constant_predictor_is_insufficient_data():
    """A predictor with one value (SmolLM2's byte-level Korean crosses no gold boundary) has no identified slope:
    insufficient_data with the reason, not an error row."""
    rng = np.random.default_rng(4)
    recs = [Measurement(quantity="eval.word_delta_nll", value=float(rng.normal()), model=model_ref(),
                        language="kor_Hang", corpus=CORPUS_TEST, item_id=f"s{s}:{w}", condition={"scheme": "int4"},
                        attributes={"sentence_id": f"s{s}", "n_crossed": 0, "n_bytes": int(rng.integers(1, 9))},
                        routine="tests.claims.synthetic")
            for s in range(10) for w in range(6)]
    spec = spec_dict(test="mixed_slope", alternative="greater", select={"y": {"quantity": "eval.word_delta_nll"}},
                     params={"x": "n_crossed", "groups": "sentence_id", "language": "kor_Hang", "standardize": True},
                     covariates=["n_bytes"], decision={"alpha": 0.05, "min_n": 20})
    row = _row(spec, recs)
    assert row.verdict == "insufficient_data", (row.verdict, row.message)
    assert "'n_crossed' is constant (0 in all 60 observations)" in row.message


def test_unpaired_items_are_reported_not_silently_dropped():
    recs = bpb_records(effects={"heb_Hebr": 0.07}, n_items=30, seed=3)
    recs = [r for r in recs if not (r.condition["scheme"] == "int4" and r.item_id in ("s0000", "s0001"))]
    spec = spec_dict(test="mean_difference_paired", params={"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}})
    row = _row(spec, recs)
    assert row.n == 28
    assert any("2 of 30 (model, language, item) rows lack a value" in w for w in row.warnings)


def test_units_without_x_are_reported():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=10), rng.normal(size=10)
    recs = [r for r in unit_records(x, y) if not (r.quantity == "eval.n_tokens" and r.language == synthetic_language(3))]
    spec = spec_dict(test="spearman", unit_of_analysis="language", alternative="two-sided",
                     select={"y": {"quantity": "disparity.diff_in_diff"}, "x": {"quantity": "eval.n_tokens"}},
                     params={"x": "x"}, decision={"alpha": 0.05, "min_n": 5})
    row = _row(spec, recs)
    assert row.n == 9 and any("1 of 10 unit(s) lacking a value" in w and synthetic_language(3) in w for w in row.warnings)


def _protection_records(*, targeted_gain: float, n_draws: int, n_items: int = 40, seed: int = 0):
    """fp32, unprotected int4, a targeted plan and ``n_draws`` random plans; Hebrew's extra damage (0.2 over
    English) is cut by ``targeted_gain`` under the targeted plan and by a draw-specific N(0.02, 0.02) otherwise."""
    rng = np.random.default_rng(seed)
    gains = rng.normal(0.02, 0.02, n_draws)
    plans = [({"scheme": "int4", "protect": "layers=0,1,2", "selection_rule": "disparity", "protect_k": 3},
              targeted_gain)]
    plans += [({"scheme": "int4", "protect": f"random{d}", "selection_rule": "random", "selection_seed": d,
                "protect_k": 3}, float(g)) for d, g in enumerate(gains)]
    out = []
    for i in range(n_items):
        base = {"eng_Latn": 1.0 + rng.normal(0, 0.1), "heb_Hebr": 1.2 + rng.normal(0, 0.1)}
        for lang, b in base.items():
            extra = 0.2 if lang == "heb_Hebr" else 0.0
            conds = [({"scheme": "fp32", "protect": "none"}, b),
                     ({"scheme": "int4", "protect": "none"}, b + 0.1 + extra + rng.normal(0, 0.01))]
            conds += [(c, b + 0.1 + extra - (g if lang == "heb_Hebr" else 0.0) + rng.normal(0, 0.01)) for c, g in plans]
            out += [Measurement(quantity="eval.bits_per_byte", value=float(v), model=model_ref(), language=lang,
                                corpus=CORPUS_TEST, item_id=f"s{i:03d}", condition=c, routine="tests.claims.synthetic")
                    for c, v in conds]
    return out


_VS = {"baseline": {"scheme": "fp32"}, "before": {"scheme": "int4", "protect": "none"},
       "after": {"selection_rule": "disparity", "protect_k": 3},
       "control": {"selection_rule": "random", "protect_k": 3}}


def test_protection_vs_random_closed_form_and_planted():
    """Oracle: the per-draw mean reductions computed directly from the records; p = (1 + #{R_d >= R_t}) / (D + 1)."""
    recs = _protection_records(targeted_gain=0.1, n_draws=19)
    row = _row(spec_dict(test="protection_vs_random", params=_VS, decision={"alpha": 0.05, "min_n": 20}), recs)
    df = to_frame(recs)
    df["plan"] = df["condition.protect"].astype(str)
    w = df.pivot_table(index=["item_id", "language"], columns="plan", values="value")
    fp = df[df["condition.scheme"] == "fp32"].set_index(["item_id", "language"])["value"]
    delta = w.drop(columns=["none"]).sub(fp, axis=0)
    did = delta.xs("heb_Hebr", level="language") - delta.xs("eng_Latn", level="language")
    unprot = df[(df["condition.scheme"] == "int4") & (df["condition.protect"] == "none")].set_index(
        ["item_id", "language"])["value"].sub(fp)
    did_before = unprot.xs("heb_Hebr", level="language") - unprot.xs("eng_Latn", level="language")
    red = (-did).add(did_before, axis=0).mean()
    r_t = red["layers=0,1,2"]
    r_d = red.drop("layers=0,1,2").to_numpy()
    assert_allclose(row.estimate, r_t - r_d.mean(), rtol=1e-12)
    assert_allclose(row.p, (1 + np.sum(r_d >= r_t)) / 20, rtol=1e-12)
    assert_allclose(row.details["reduction_targeted"], r_t, rtol=1e-12)
    assert row.details["n_draws"] == 19 and row.details["rank"] == 20
    assert row.verdict == "supported" and row.ci_low > 0.05  # planted advantage 0.1 - 0.02
    t = (r_t - r_d.mean()) / (r_d.std(ddof=1) * np.sqrt(1 + 1 / 19))
    assert_allclose(row.details["p_prediction"], st.t(df=18).sf(t), rtol=1e-12)
    pred = _row(spec_dict(test="protection_vs_random", params={**_VS, "pvalue": "prediction"},
                          decision={"alpha": 0.05, "min_n": 20}), recs)
    assert_allclose(pred.p, st.t(df=18).sf(t), rtol=1e-12) and pred.p < 1 / 20  # not floored at 1/(D+1)
    assert pred.estimate == row.estimate and not any("cannot fall below" in w for w in pred.warnings)


def test_protection_vs_random_few_draws_and_no_advantage():
    recs = _protection_records(targeted_gain=0.02, n_draws=4, seed=1)
    row = _row(spec_dict(test="protection_vs_random", params=_VS, decision={"alpha": 0.05, "min_n": 20}), recs)
    assert row.p >= 0.2 and row.verdict != "supported"
    assert any("cannot fall below 1/5" in w for w in row.warnings)
    # draws measured on a subset of the items: the comparison uses that subset without a "left out" note
    sub = [r for r in recs if r.condition.get("selection_rule") != "random" or r.item_id < "s020"]
    row = _row(spec_dict(test="protection_vs_random", params=_VS, decision={"alpha": 0.05, "min_n": 20}), sub)
    assert row.n == 20 and not any("left out" in w for w in row.warnings)
    one = [r for r in recs if r.condition.get("selection_seed") not in (1, 2, 3)]
    row = _row(spec_dict(test="protection_vs_random", params=_VS, decision={"alpha": 0.05, "min_n": 20}), one)
    assert row.verdict == "insufficient_data" and "at least 2" in row.message


def test_engine_counts_calibration_draws_for_the_grade():
    """Records of a calibrated quantizer (condition.calib_seed) with one draw: the row says so and loses a grade;
    records without a calibration seed get no such count."""
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=40, seed=12)
    plain = _row(spec_dict(), recs)
    assert "n_calibration_draws" not in plain.details and "single_calibration_draw" not in plain.grade_reasons
    cal = [r.model_copy(update={"condition": {**r.condition, "calibration": "eng", "calib_seed": 0}})
           if r.condition["scheme"] == "int4" else r for r in recs]
    row = _row(spec_dict(), cal)
    assert row.details["n_calibration_draws"] == 1 and "single_calibration_draw" in row.grade_reasons
    # a calibrated condition the selection keeps but the test does not compare (H1 selects GPTQ records too and
    # compares fp32 with int4): its single draw says nothing about this claim's evidence
    extra = [r.model_copy(update={"condition": {**r.condition, "scheme": "int4-gptq", "calibration": "eng",
                                                "calib_seed": 0}}) for r in recs if r.condition["scheme"] == "int4"]
    row = _row(spec_dict(), recs + extra)
    assert row.estimate == plain.estimate
    assert "n_calibration_draws" not in row.details and "single_calibration_draw" not in row.grade_reasons


def _draw_records(*, gains: list[float], n_items: int = 40, seed: int = 0, before_draws: int = 5):
    """fp32 and a calibrated INT4 under English calibration (``before_draws`` seeds, Hebrew's extra damage 0.2
    plus a draw effect N(0, 0.005)) and multilingual calibration (one seed per entry of ``gains``: Hebrew's extra
    damage cut by that gain)."""
    rng = np.random.default_rng(seed)
    conds = [({"scheme": "int4-gptq", "calibration": "eng", "calib_seed": s}, float(rng.normal(0, 0.005)))
             for s in range(before_draws)]
    conds += [({"scheme": "int4-gptq", "calibration": "multi", "calib_seed": s}, -g) for s, g in enumerate(gains)]
    out = []
    for i in range(n_items):
        for lang, b in (("eng_Latn", 1.0 + rng.normal(0, 0.1)), ("heb_Hebr", 1.2 + rng.normal(0, 0.1))):
            heb = lang == "heb_Hebr"
            rows = [({"scheme": "fp32"}, b)]
            rows += [(c, b + 0.1 + (0.2 + shift if heb else 0.0) + rng.normal(0, 0.01)) for c, shift in conds]
            out += [Measurement(quantity="eval.bits_per_byte", value=float(v), model=model_ref(), language=lang,
                                corpus=CORPUS_TEST, item_id=f"s{i:03d}", condition=c, routine="tests.claims.synthetic")
                    for c, v in rows]
    return out


_DRAWS = {"baseline": {"scheme": "fp32"}, "before": {"calibration": "eng"}, "after": {"calibration": "multi"}}


def test_disparity_change_draws_closed_form_and_planted():
    """Oracle: per-draw DiDs computed directly from the records; Welch t via scipy.stats.ttest_ind; the item p
    is a sign-flip permutation of the draw-averaged DiDs (exact with few items is not needed: compared as max)."""
    recs = _draw_records(gains=[0.05, 0.06, 0.04, 0.05, 0.055])
    row = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), recs)
    df = to_frame(recs)
    fp = df[df["condition.scheme"] == "fp32"].set_index(["item_id", "language"])["value"]
    did = {}
    for cal in ("eng", "multi"):
        for s in range(5):
            v = df[(df["condition.calibration"] == cal) & (df["condition.calib_seed"] == s)].set_index(
                ["item_id", "language"])["value"].sub(fp)
            did[(cal, s)] = (v.xs("heb_Hebr", level="language") - v.xs("eng_Latn", level="language")).mean()
    b = np.array([did[("eng", s)] for s in range(5)])
    a = np.array([did[("multi", s)] for s in range(5)])
    assert_allclose(row.estimate, b.mean() - a.mean(), rtol=1e-12)
    assert_allclose(list(row.details["did_after_by_draw"].values()), a, rtol=1e-12)
    p_draws = st.ttest_ind(b, a, equal_var=False, alternative="greater").pvalue
    assert_allclose(row.details["p_draws"], p_draws, rtol=1e-12)
    assert row.p == max(p_draws, row.details["p_items"])
    assert row.verdict == "supported" and 0.04 < row.ci_low < row.estimate < row.ci_high < 0.065
    assert row.n_units["draws"] == 5 and row.details["n_draws_before"] == 5


def test_disparity_change_draws_needs_agreement_across_draws():
    """The mean gain is 0.03 and every item sees it, but the draws disagree in sign: the draw-level test keeps
    the claim from being supported although the item-level p is tiny."""
    recs = _draw_records(gains=[0.15, -0.08, 0.12, -0.06, 0.02], seed=3)
    row = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), recs)
    assert row.details["p_items"] < 0.01 and row.details["p_draws"] > 0.1 and row.verdict != "supported"
    assert row.p == row.details["p_draws"]  # the larger of the two
    assert row.ci_low < 0 < row.ci_high  # the CI resamples draws too
    # one English draw only: it is itself a random draw, so a prediction t test (its own draw variance counts)
    one = [r for r in recs if r.condition.get("calibration") != "eng" or r.condition["calib_seed"] == 0]
    row1 = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), one)
    assert row1.details["n_draws_before"] == 1
    a = np.array(list(row1.details["did_after_by_draw"].values()))
    t = (row1.details["did_before"] - a.mean()) / (a.std(ddof=1) * np.sqrt(1 + 1 / len(a)))
    assert_allclose(row1.details["p_draws"], st.t(df=len(a) - 1).sf(t), rtol=1e-12)
    # a fixed single condition (no draw key, e.g. round-to-nearest): the one-sample t test against it
    fixed = [r.model_copy(update={"condition": {k: v for k, v in r.condition.items() if k != "calib_seed"}})
             if r.condition.get("calibration") == "eng" else r for r in one]
    row_f = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), fixed)
    want = st.ttest_1samp(a, popmean=row_f.details["did_before"], alternative="less").pvalue
    assert_allclose(row_f.details["p_draws"], want, rtol=1e-12)
    assert row_f.details["p_draws"] < row1.details["p_draws"]  # a fixed comparator carries no draw variance
    # a single draw on both sides is disparity_change's job
    none = [r for r in one if r.condition.get("calib_seed") in (None, 0)]
    row0 = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), none)
    assert row0.verdict == "insufficient_data" and "2 or more draws" in row0.message


def test_disparity_change_draws_on_a_subset_of_items():
    """Draws measured on 20 of the 40 items: the comparison uses those 20 without a 'left out' note, also when
    one draw covers all 40 (an earlier full run); a draw missing a row of the others is counted in a note."""
    recs = _draw_records(gains=[0.05, 0.06, 0.04], seed=5)
    sub = [r for r in recs if r.condition.get("calibration") is None or r.item_id < "s020"]
    row = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), sub)
    assert row.n == 20 and not any("left out" in w or "different sentences" in w for w in row.warnings)
    mixed = [r for r in recs if r.condition.get("calibration") is None or r.condition["calib_seed"] == 0
             or r.item_id < "s020"]
    row2 = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), mixed)
    assert row2.n == 20 and row2.estimate == row.estimate and not row2.warnings
    assert row2.details["rows_by_draw"] == {"before:0": 80, "before:1": 40, "before:2": 40, "before:3": 40,
                                            "before:4": 40, "after:0": 80, "after:1": 40, "after:2": 40}
    # one full and one subset draw per side (a tie of sizes): the subset is the sample, no note
    tie = [r for r in mixed if r.condition.get("calib_seed") in (None, 0, 1)]
    row_t = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 20}), tie)
    assert row_t.n == 20 and not row_t.warnings and row_t.details["n_draws_before"] == 2
    assert list(row_t.details["did_before_by_draw"]) == ["0", "1"]
    # a subset draw that lost a sentence (not nested in the others): counted and said
    lost = [r for r in sub if not (r.condition.get("calib_seed") == 2 and r.condition.get("calibration") == "multi"
                                   and r.item_id == "s003" and r.language == "heb_Hebr")]
    row3 = _row(spec_dict(test="disparity_change_draws", params=_DRAWS, decision={"alpha": 0.05, "min_n": 19}), lost)
    assert row3.n == 19 and any("1 of 40 (model, language, item) rows" in w and "left out" in w for w in row3.warnings)


def test_items_and_draws_ci_pairs_items_and_resamples_draws():
    """The shared item x draw bootstrap of protection_vs_random and disparity_change_draws.

    Closed forms: (1) sides that differ by a constant c on every item and have identical draws give c in every
    resample, so the interval collapses to [c, c] (fails when items are resampled independently per side or a side
    is rescaled); (2) with no item variation, a two-draw side [0, 1] vs a fixed zero side gives resample means in
    {0, 0.5, 1} with probabilities 1/4, 1/2, 1/4, so the 95% interval is [0, 1]; a one-column side is never
    resampled, so it alone gives a zero-width interval.
    """
    from qdstats.claims.registry import ClaimContext
    from qdstats.claims.tests_builtin import _items_and_draws_ci

    ctx = ClaimContext(claim_id="t", n_resamples=2000, seed=3)
    x = np.random.default_rng(0).normal(size=(30, 1))
    lo, hi = _items_and_draws_ci(x + 0.25, np.repeat(x, 4, axis=1), ctx)
    assert_allclose([lo, hi], [0.25, 0.25], atol=1e-12)
    two = np.tile([0.0, 1.0], (30, 1))
    lo, hi = _items_and_draws_ci(two, np.zeros((30, 1)), ctx)
    assert (lo, hi) == (0.0, 1.0)
    lo, hi = _items_and_draws_ci(np.ones((30, 1)), np.zeros((30, 1)), ctx)
    assert (lo, hi) == (1.0, 1.0)


def test_diff_in_diff_rows_drop_only_what_the_test_ignores():
    """ClaimTest.rows (used once per specification curve) keeps params.model's baseline and treatment rows
    and nothing else, and the test gives the identical result on the narrowed frame."""
    from qdstats.claims.registry import ClaimContext, get_test

    effects = {"eng_Latn": 0.02, "heb_Hebr": 0.08, "arb_Arab": 0.0}
    recs = bpb_records(effects=effects, n_items=30, seed=4, model=model_ref("m0"))
    recs += bpb_records(effects=effects, n_items=30, seed=5, model=model_ref("m1"))
    recs += [r for r in bpb_records(effects=effects, n_items=30, seed=4, model=model_ref("m0"),
                                    treatment={"scheme": "int3"}) if r.condition["scheme"] == "int3"]
    df = to_frame(recs).assign(role="y")
    test = get_test("diff_in_diff")
    params = test.validate_params({"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"},
                                   "target": "heb_Hebr", "model": "m0"})
    narrowed = test.rows(df, params)
    assert len(df) == 3 * 3 * 2 * 30 - 3 * 30  # m0: fp32, int4, int3; m1: fp32, int4
    assert len(narrowed) == 2 * 3 * 30
    assert set(narrowed["model.model_id"]) == {"m0"}
    assert set(narrowed["condition.scheme"]) == {"fp32", "int4"}
    ctx = ClaimContext(claim_id="t", alternative="greater", n_resamples=499, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "only 3 languages (< 10)": expected here
        whole, narrow = test(df, params, ctx), test(narrowed, params, ctx)
    assert whole.model_dump() == narrow.model_dump()
    missing = test.validate_params({**params.model_dump(), "model": "m9"})
    assert test.rows(df, missing) is df  # nothing would be left: the test raises its own error on the whole frame


def test_diff_in_diff_rows_keep_everything_when_the_test_would_refuse():
    """Two models without params.model: the test refuses the frame, so narrowing must not hide the second model."""
    from qdstats.claims.registry import get_test

    effects = {"eng_Latn": 0.02, "heb_Hebr": 0.08}
    recs = bpb_records(effects=effects, n_items=10, seed=4, model=model_ref("m0"))
    recs += [r for r in bpb_records(effects=effects, n_items=10, seed=5, model=model_ref("m1"),
                                    treatment={"scheme": "int3"}) if r.condition["scheme"] == "int3"]
    df = to_frame(recs).assign(role="y")
    test = get_test("diff_in_diff")
    params = test.validate_params({"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"},
                                   "target": "heb_Hebr"})
    assert test.rows(df, params) is df
    on_language = test.validate_params({**params.model_dump(), "model": "m0",
                                        "baseline": {"scheme": "fp32", "language": ["eng_Latn", "heb_Hebr"]}})
    assert test.rows(df, on_language) is df  # a condition on a pair key: left to the test
