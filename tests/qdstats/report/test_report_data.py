"""Tests of qdstats.report.data on SYNTHETIC records (see conftest.py): closed forms, planted effects, notes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from report_synthetic import (
    LANGUAGES,
    N_LAYERS,
    PLANTED_SLOPE,
    PREMIUM,
    SYN_CORPUS,
    SYN_MODEL,
    _cond,
    make_failure,
    make_premium_records,
    make_sensitivity_records,
    make_word_records,
    sens_value,
)

from qdstats.records import Measurement
from qdstats.report import data as rd

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _bpb(lang: str, item: str, value: float, scheme: str = "fp32", **kw) -> Measurement:
    return Measurement(quantity="eval.bits_per_byte", value=value, language=lang, item_id=item, model=SYN_MODEL,
                       condition=kw.pop("condition", _cond(scheme)), routine="tests.synthetic", **kw)


# ----------------------------------------------------------------------------- pairing
def test_paired_items_delta_is_exact_difference(eval_records):
    """Closed form: delta == compressed - full for every item, one row per (condition, language, item)."""
    frame, notes = rd.paired_items(eval_records)
    assert notes == []
    assert len(frame) == 2 * len(LANGUAGES) * 24
    assert_allclose(frame["delta"], frame["compressed"] - frame["full"], rtol=0, atol=0)
    fp = {(r.language, r.item_id): r.value for r in eval_records if r.condition["scheme"] == "fp32"}
    assert_allclose(frame["full"], [fp[(lang, i)] for lang, i in zip(frame["language"], frame["item_id"])], rtol=0)
    assert set(frame["condition_short"]) == {"scheme=int4-g64-sym", "scheme=int3-g64-sym"}


def test_paired_items_matches_a_direct_pivot_of_the_records(eval_records):
    """Oracle: pivoting the raw records by hand (condition label -> value per item) gives the same deltas."""
    from qdstats.records import Measurement

    ours, _ = rd.paired_items(eval_records)
    rows = [{"language": r.language, "item_id": r.item_id, "scheme": r.condition["scheme"], "value": r.value,
             "doc": r.attributes.get("document_id", r.item_id)}
            for r in eval_records if isinstance(r, Measurement) and r.quantity == "eval.bits_per_byte"]
    wide = pd.DataFrame(rows).pivot_table(index=["language", "item_id", "doc"], columns="scheme", values="value")
    expected = {(lang, item, s): wide.loc[(lang, item, doc), s] - wide.loc[(lang, item, doc), "fp32"]
                for (lang, item, doc) in wide.index for s in wide.columns if s != "fp32"}
    got = {(r.language, r.item_id, r.scheme): r.delta for r in ours.itertuples()}
    assert got.keys() == expected.keys()
    assert_allclose([got[k] for k in expected], list(expected.values()), rtol=0, atol=0)


def test_paired_items_drops_unpaired_and_duplicates_with_notes():
    recs = [_bpb("eng_Latn", "s1", 1.0), _bpb("eng_Latn", "s1", 1.3, "int4"),
            _bpb("eng_Latn", "s2", 1.3, "int4"),  # no baseline
            _bpb("heb_Hebr", "s1", 2.0), _bpb("heb_Hebr", "s1", 2.1),  # baseline measured twice
            _bpb("heb_Hebr", "s1", 2.5, "int4"),
            _bpb("deu_Latn", "s1", 1.0), _bpb("deu_Latn", "s1", float("nan"), "int4", warnings=("diverged",))]
    frame, notes = rd.paired_items(recs)
    assert list(frame["item_id"]) == ["s1"] and list(frame["language"]) == ["eng_Latn"]
    assert_allclose(frame["delta"], [0.3], rtol=1e-15)
    text = " ".join(notes)
    assert "measure an item twice" in text and "no baseline measurement" in text and "1 eval.bits_per_byte pairs have a NaN" in text


def test_paired_items_baseline_with_compute_dtype_and_custom_baseline():
    recs = [_bpb("eng_Latn", "s1", 1.0, condition={**_cond("fp32"), "compute_dtype": "float32"}),
            _bpb("eng_Latn", "s1", 1.5, "int4")]
    frame, _ = rd.paired_items(recs)
    assert_allclose(frame["delta"], [0.5])
    frame2, _ = rd.paired_items(recs, baseline={"scheme": "int4", "protect": "none", "prune": "none"})
    assert_allclose(frame2["delta"], [-0.5])
    frame3, notes3 = rd.paired_items(recs, baseline={"scheme": "bf16"})
    assert frame3.empty and "no eval.bits_per_byte records under the baseline" in notes3[0]


# ----------------------------------------------------------------------------- degradation
def test_degradation_table_closed_form_and_planted_effects(eval_records):
    """Δ equals the mean paired difference and DiD equals Δ_l - Δ_ref (rtol 1e-12: same arithmetic, different
    summation order); the planted Hebrew > English gap is found with a CI that excludes 0."""
    table, notes = rd.degradation_table(eval_records, n_resamples=499, rng=3)
    frame, _ = rd.paired_items(eval_records)
    means = frame.groupby(["condition", "language"])["delta"].mean()
    for _, r in table.iterrows():
        assert_allclose(r["estimate"], means[(r["condition"], r["language"])], rtol=1e-12, err_msg=r["language"])
        ref = table[(table["condition"] == r["condition"]) & (table["language"] == "eng_Latn")]["estimate"].item()
        assert_allclose(r["did"], r["estimate"] - ref, rtol=1e-12, atol=1e-15)
        assert r["ci_low"] <= r["estimate"] <= r["ci_high"]
        assert r["n"] == 24 and r["n_clusters"] == 6 and r["cluster"] == "document_id" and r["resampling"] == "joint"
    heb = table[(table["language"] == "heb_Hebr") & (table["condition_short"] == "scheme=int4-g64-sym")].iloc[0]
    assert heb["ci_low"] > 0 and heb["did_ci_low"] > 0 and heb["did_pvalue"] < 0.05
    eng = table[table["is_reference"]]
    assert (eng["did"] == 0).all() and eng["did_pvalue"].isna().all()
    assert any("only 5 languages" in n for n in notes)


def test_degradation_table_is_seeded_and_section_independent(eval_records):
    a, _ = rd.degradation_table(eval_records, n_resamples=199, rng=11)
    b, _ = rd.degradation_table(list(eval_records) + make_premium_records(), n_resamples=199, rng=11)
    pd.testing.assert_frame_equal(a, b)
    c, _ = rd.degradation_table(eval_records, n_resamples=199, rng=12)
    assert not np.allclose(a["ci_low"], c["ci_low"])


def test_degradation_table_without_reference_and_non_parallel():
    recs = []
    for lang, shift in (("heb_Hebr", 0.3), ("arb_Arab", 0.1)):
        ids = range(10) if lang == "heb_Hebr" else range(5, 15)  # not parallel
        for i in ids:
            recs += [_bpb(lang, f"s{i}", 1.0 + 0.01 * i), _bpb(lang, f"s{i}", 1.0 + 0.01 * i + shift + 0.001 * i, "q")]
    table, notes = rd.degradation_table(recs, reference="eng_Latn", n_resamples=199)
    assert (table["resampling"] == "independent").all() and (table["cluster"] == "item_id").all()
    assert table["did"].isna().all()
    assert any("reference language eng_Latn not measured" in n for n in notes)


def test_degradation_table_empty_and_bad_options(eval_records):
    table, notes = rd.degradation_table(make_premium_records())
    assert table.empty and notes == []
    with pytest.raises(ValueError, match="`confidence_level` must be strictly between 0 and 1"):
        rd.degradation_table(eval_records, confidence_level=1.5)
    with pytest.raises(ValueError, match="`n_resamples` must be >= 1"):
        rd.degradation_table(eval_records, n_resamples=0)
    with pytest.raises(TypeError, match="`records` must be a sequence"):
        rd.degradation_table("records.jsonl")
    with pytest.raises(TypeError, match="`records` must contain only Measurement"):
        rd.degradation_table([{"quantity": "eval.bits_per_byte"}])


@settings(max_examples=10)
@given(deltas=st.lists(st.floats(-1, 1, allow_nan=False), min_size=4, max_size=12), seed=st.integers(0, 2**16))
def test_degradation_estimate_is_mean_and_order_free(deltas, seed):
    """Property: Δ is the mean of the per-item differences whatever the record order."""
    recs = []
    for i, d in enumerate(deltas):
        for lang in ("eng_Latn", "heb_Hebr"):
            base = 1.0 + 0.1 * i
            recs += [_bpb(lang, f"s{i}", base), _bpb(lang, f"s{i}", base + d * (2 if lang == "heb_Hebr" else 1), "q")]
    perm = np.random.default_rng(seed).permutation(len(recs))
    a, _ = rd.degradation_table(recs, n_resamples=99, rng=1)
    b, _ = rd.degradation_table([recs[i] for i in perm], n_resamples=99, rng=1)
    pd.testing.assert_frame_equal(a, b)
    heb = a[a["language"] == "heb_Hebr"]["estimate"].item()
    assert_allclose(heb, 2 * np.mean(deltas), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- sensitivity
def test_sensitivity_table_and_matrix_are_exact_selections():
    recs = make_sensitivity_records()
    table, notes = rd.sensitivity_table(recs)
    assert notes == [] and len(table) == N_LAYERS * len(LANGUAGES)
    mat = rd.sensitivity_matrix(table, model_key=table["model_key"][0], condition=table["condition"][0])
    assert list(mat.index) == [f"layers.{i}" for i in range(N_LAYERS)]
    assert list(mat.columns) == sorted(LANGUAGES)
    expected = np.array([[sens_value(i, lang) for lang in sorted(LANGUAGES)] for i in range(N_LAYERS)])
    assert_allclose(mat.to_numpy(), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match="select no rows"):
        rd.sensitivity_matrix(table, model_key="nope", condition="x")


def test_sensitivity_natural_site_order_ci_and_duplicates():
    def rec(site: str, v: float, **attrs) -> Measurement:
        return Measurement(quantity="sens.delta_bits_per_byte", value=v, model=SYN_MODEL, site=site,
                           language="heb_Hebr", n=8, attributes=attrs, routine="tests.synthetic")

    recs = [rec("layers.10", 1.0), rec("layers.2", 2.0, ci_low=1.5, ci_high=2.5), rec("embed_tokens", 0.5),
            rec("layers.10", 3.0)]
    table, notes = rd.sensitivity_table(recs)
    assert list(table["site"]) == ["embed_tokens", "layers.2", "layers.10"]
    assert_allclose(table["value"], [0.5, 2.0, 2.0])
    assert table.loc[1, "ci_low"] == 1.5 and math.isnan(table.loc[2, "ci_low"])
    assert list(table["n_records"]) == [1, 1, 2] and "mean is shown" in notes[0]


# ----------------------------------------------------------------------------- alignment vs damage
def test_alignment_damage_slope_closed_form_and_planted_slope():
    """Slope equals numpy.polyfit(deg=1) (rtol 1e-10: same least squares, different algorithm); the planted
    slopes are recovered: right sign, CI excludes 0, estimate within 0.06 of the truth (about 3.3 standard
    errors for 90 words with noise sd 0.05 and uniform alignment)."""
    recs = make_word_records()
    pairs, fits, notes = rd.alignment_damage(recs, n_resamples=499, rng=5)
    assert notes == [] and len(pairs) == 2 * 15 * 6
    for _, f in fits.iterrows():
        g = pairs[pairs["language"] == f["language"]]
        slope, intercept = np.polyfit(g["alignment"], g["damage"], 1)
        assert_allclose([f["slope"], f["intercept"]], [slope, intercept], rtol=1e-10)
        truth = PLANTED_SLOPE[f["language"]]
        assert abs(f["slope"] - truth) < 0.06
        assert f["ci_low"] <= f["slope"] <= f["ci_high"] < 0
        assert f["n"] == 90 and f["n_clusters"] == 15


def test_alignment_from_attribute_equals_alignment_from_records():
    p1, f1, _ = rd.alignment_damage(make_word_records(), n_resamples=99, rng=2)
    p2, f2, _ = rd.alignment_damage(make_word_records(as_attribute=True), n_resamples=99, rng=2)
    pd.testing.assert_frame_equal(p1, p2)
    pd.testing.assert_frame_equal(f1, f2)


def test_alignment_degenerate_cases_give_nan_with_warning_and_notes():
    def word(lang: str, iid: str, dmg: float, f1: float | None) -> Measurement:
        attrs = {} if f1 is None else {"boundary_f1": f1}
        return Measurement(quantity="eval.word_delta_nll", value=dmg, model=SYN_MODEL, language=lang, item_id=iid,
                           attributes=attrs, condition=_cond("q"), routine="tests.synthetic")

    recs = [word("heb_Hebr", f"s{i}:0", 0.1 * i, 0.5) for i in range(5)]  # constant alignment
    recs += [word("arb_Arab", "s0:0", 0.1, 0.2), word("arb_Arab", "s0:1", 0.2, 0.4)]  # 2 words
    recs += [word("arb_Arab", "s1:0", 0.3, None)]  # missing alignment
    _, fits, notes = rd.alignment_damage(recs, n_resamples=99)
    fits = fits.set_index("language")
    assert math.isnan(fits.loc["heb_Hebr", "slope"]) and "constant" in fits.loc["heb_Hebr", "warnings"]
    assert math.isnan(fits.loc["arb_Arab", "slope"]) and "fewer than 3" in fits.loc["arb_Arab", "warnings"]
    assert any("1 eval.word_delta_nll words have no align.boundary_f1" in n for n in notes)


# ----------------------------------------------------------------------------- premiums, licenses, provenance
def test_tokenizer_premiums_are_the_stored_values_and_cis():
    table, notes = rd.tokenizer_premiums(make_premium_records())
    assert notes == []
    t = table.set_index("language")
    assert_allclose(t["value"], [PREMIUM[lang] for lang in t.index], rtol=0)
    assert_allclose(t.loc["heb_Hebr", ["ci_low", "ci_high"]].astype(float), [4.1, 4.35], rtol=1e-15)
    assert math.isnan(t.loc["eng_Latn", "ci_low"]) and t.loc["heb_Hebr", "ci_method"] == "cluster-bootstrap-percentile"


def test_license_table_and_provenance(all_records):
    lic = rd.license_table(all_records)
    flags = dict(zip(lic["corpus_id"], lic["license_flags"]))
    assert flags == {"synthetic-free": (), "synthetic-parallel": ("non-commercial",)}
    assert lic["n_records"].sum() == sum(1 for r in all_records if r.corpus is not None)
    prov = rd.provenance_summary(all_records)
    assert prov["n_records"] == len(all_records) and prov["n_failed"] == 1 and prov["failures"] == {"RuntimeError": 1}
    assert prov["quantities"]["eval.bits_per_byte"] == sum(
        1 for r in all_records if isinstance(r, Measurement) and r.quantity == "eval.bits_per_byte")
    shas = {m["model_id"]: m["sha256"] for m in prov["models"]}
    assert shas["synthetic:toy"] == "a" * 64
    assert prov["report_qd_version"]


# ----------------------------------------------------------------------------- summarize_records
def test_summarize_records_omits_absent_sections_with_reasons():
    data = rd.summarize_records(make_premium_records() + [make_failure()], n_resamples=99)
    assert data.sections == ("tokenizer",)
    assert set(data.omitted) == {"degradation", "sensitivity", "alignment"}
    assert "sens.delta_bits_per_byte" in data.omitted["sensitivity"]
    empty = rd.summarize_records([], n_resamples=99)
    assert empty.sections == () and empty.licenses.empty and empty.provenance["n_records"] == 0


def test_summarize_records_section_error_is_omitted_or_raised(monkeypatch, eval_records):
    def boom(*a, **k):
        raise RuntimeError("planted failure")

    monkeypatch.setattr(rd, "sensitivity_table", boom)
    recs = list(eval_records) + make_sensitivity_records()
    data = rd.summarize_records(recs, n_resamples=99)
    assert data.omitted["sensitivity"] == "section failed: RuntimeError: planted failure"
    assert "degradation" in data.sections
    with pytest.raises(RuntimeError, match="planted failure"):
        rd.summarize_records(recs, n_resamples=99, strict=True)


def test_summarize_records_validates_options(eval_records):
    with pytest.raises(TypeError, match="`rng` must be an int seed or None"):
        rd.summarize_records(eval_records, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="`rng`"):
        rd.summarize_records(eval_records, rng=True)


def test_condition_label_is_sorted():
    assert rd.condition_label({"scheme": "a", "prune": "b"}) == "prune=b,scheme=a"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rd.condition_label({}) == ""
    _ = SYN_CORPUS


def test_two_pinned_versions_of_one_model_stay_apart():
    from qdstats.records import ModelRef

    recs = []
    for sha, shift in (("e" * 64, 0.1), ("f" * 64, 0.4)):
        m = ModelRef(model_id="synthetic:toy", source="config", sha256=sha)
        for i in range(6):
            for lang in ("eng_Latn", "heb_Hebr"):
                recs += [Measurement(quantity="eval.bits_per_byte", value=1.0 + 0.01 * i + d, language=lang,
                                     item_id=f"s{i}", model=m, condition=_cond(s), routine="tests.synthetic")
                         for s, d in (("fp32", 0.0), ("q", shift + 0.001 * i))]
    table, _ = rd.degradation_table(recs, n_resamples=99)
    assert sorted(set(table["model_label"])) == ["synthetic:toy@eeeeeeeeeeee", "synthetic:toy@ffffffffffff"]
    est = table[table["language"] == "eng_Latn"].set_index("model_label")["estimate"]
    assert_allclose(est.to_numpy(), [0.1025, 0.4025], rtol=1e-12)
    from qdstats.report import plots

    assert len(plots.forest_plot(table).axes) == 2


def test_sweep_shaped_records_site_from_condition_and_partial_items_left_out():
    """Records shaped like qdmodels.eval.sensitivity.sweep_layers: site in condition['sites'] (no `site`), and
    per-item eval.bits_per_byte records of the partial conditions, which must not become degradation panels."""
    sens = [Measurement(quantity="sens.delta_bits_per_byte", value=0.1 * k, model=SYN_MODEL, language=lang, n=4,
                        condition={**_cond("int4"), "sites": f"layers.{k}"}, routine="tests.synthetic")
            for k in range(3) for lang in ("eng_Latn", "heb_Hebr")]
    items = [_bpb(lang, f"s{i}", 1.0) for lang in ("eng_Latn", "heb_Hebr") for i in range(4)]
    items += [_bpb(lang, f"s{i}", 1.2, condition={**_cond("int4"), "sites": "layers.0"})
              for lang in ("eng_Latn", "heb_Hebr") for i in range(4)]
    table, notes = rd.sensitivity_table(sens)
    assert notes == []
    assert list(table["site"].unique()) == ["layers.0", "layers.1", "layers.2"]
    assert set(table["condition"]) == {"protect=none,prune=none,scheme=int4"}
    frame, pnotes = rd.paired_items(items + sens)
    assert frame.empty and "8 per-item eval.bits_per_byte records compress only some sites" in pnotes[0]


def test_alignment_ambiguous_records_are_left_out():
    """Two alignment conditions (isolated vs in context) give two values for one word: never pick one silently."""
    from qdstats.records import Measurement as M

    recs = make_word_records(n_sent=3, words_per_sent=3)
    extra = [M(quantity="align.boundary_f1", value=min(1.0, r.value + 0.1), model=r.model, language=r.language,
               item_id=r.item_id, condition={"prefix": "context"}, routine="tests.synthetic")
             for r in recs if r.quantity == "align.boundary_f1" and r.item_id.endswith(":0")]
    pairs, _, notes = rd.alignment_damage(recs + extra, n_resamples=99)
    assert len(pairs) == 2 * 3 * 3 - len(extra)
    assert any(f"{len(extra)} eval.word_delta_nll words match several different" in n for n in notes)
