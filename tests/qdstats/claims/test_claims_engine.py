"""Claims engine on synthetic records with planted effects (records generated here; nothing fabricated)."""

from __future__ import annotations

import itertools

import math
import random

import numpy as np
import pytest
from claims_synth import LANGS, bpb_records, did_specs, model_ref, spec_dict
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from statsmodels.stats.multitest import multipletests

from qdstats.claims import ClaimSpec, Decision, build_claims_table, decide
from qdstats.records import ErrorInfo, FailedMeasurement

EFFECTS = {lang: (0.1 if lang == "heb_Hebr" else 0.0) for lang in LANGS}


@pytest.fixture(scope="module")
def planted():
    """Hebrew degrades 0.1 bit/byte more than English; the other six languages degrade exactly like English."""
    return bpb_records(effects=EFFECTS, n_items=80, seed=0)


@pytest.fixture(scope="module")
def table(planted):
    return build_claims_table(did_specs(LANGS[1:]), planted)


def _dump(t):
    return t.model_dump(mode="json", exclude={"created_at"})


def test_planted_did_is_supported(table):
    row = table.row("T.did.heb_Hebr")
    assert row.verdict == "supported"
    assert row.ci_low < 0.1 < row.ci_high  # seeded draw; estimate within 4 SE (SE ~ 0.008) of the planted 0.1
    assert abs(row.estimate - 0.1) < 0.032
    # the evidence of a target-vs-reference DiD is two languages (the 8 selected ones are in n_units)
    assert row.n == 80 and row.n_languages == 2 and row.n_models == 1 and row.n_units["languages"] == 8


def test_nulls_are_never_supported(table):
    for lang in LANGS[2:]:
        assert table.row(f"T.did.{lang}").verdict in ("not_supported", "inconclusive")


def test_large_null_sample_is_not_supported():
    """With many items the CI of a null DiD lies below the practical margin: 'not_supported', not 'inconclusive'."""
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.0}, n_items=400, noise=0.02, seed=4)
    row = build_claims_table(did_specs(["heb_Hebr"]), recs).rows[0]
    assert row.verdict == "not_supported"
    assert row.ci_high < 0.02


def test_small_null_sample_is_inconclusive():
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.0}, n_items=25, noise=0.3, seed=5)
    row = build_claims_table(did_specs(["heb_Hebr"]), recs).rows[0]
    assert row.verdict == "inconclusive"


def test_reversal_is_not_supported():
    recs = bpb_records(effects={"eng_Latn": 0.1, "heb_Hebr": 0.0}, n_items=80, seed=6)
    row = build_claims_table(did_specs(["heb_Hebr"]), recs).rows[0]
    assert row.verdict == "not_supported" and "reversal" in row.verdict_reason


@pytest.mark.parametrize("how", ["spec", "records"])
def test_simulated_evidence_is_never_supported(how):
    attrs = {"evidence": "simulated"} if how == "records" else None
    recs = bpb_records(effects=EFFECTS, n_items=80, seed=0, attributes=attrs)
    over = {"evidence": "simulated"} if how == "spec" else {}
    row = build_claims_table(did_specs(["heb_Hebr"], **over), recs).rows[0]
    assert row.evidence == "simulated"
    assert row.verdict == "inconclusive" and "capped" in row.verdict_reason
    assert row.grade == "simulated"


@settings(max_examples=15)
@given(effect=st.floats(0.05, 2.0), seed=st.integers(0, 2**16))
def test_simulated_never_supported_property(effect, seed):
    """Whatever the planted effect, a simulated-evidence claim is not 'supported'."""
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": effect}, n_items=20, seed=seed)
    specs = did_specs(["heb_Hebr"], evidence="simulated", n_resamples=199)
    row = build_claims_table(specs, recs).rows[0]
    assert row.verdict != "supported" and row.grade == "simulated"


def test_literature_evidence_is_labelled_and_capped(planted):
    row = build_claims_table(did_specs(["heb_Hebr"], evidence="literature"), planted).rows[0]
    assert row.evidence == "literature" and "cap:literature" in row.grade_reasons
    assert row.grade in ("C", "D")


def test_broken_claim_gives_error_row_and_others_succeed(planted):
    specs = did_specs(["heb_Hebr"])
    bad = spec_dict(id="T.broken", params={**spec_dict()["params"], "cluster": "no_such_column"})
    specs.append(ClaimSpec.model_validate(bad))
    t = build_claims_table(specs, planted)
    assert t.row("T.did.heb_Hebr").verdict == "supported"
    broken = t.row("T.broken")
    assert broken.verdict == "error" and broken.grade == "n/a"
    assert "UnknownNameError" in broken.message and "no_such_column" in broken.message
    assert broken.p_adj is None


def test_error_rows_do_not_count_in_the_family(planted):
    specs = did_specs(["heb_Hebr", "arb_Arab"])
    specs.append(ClaimSpec.model_validate(spec_dict(id="T.broken", params={**spec_dict()["params"], "cluster": "zz"})))
    t = build_claims_table(specs, planted)
    assert t.row("T.did.heb_Hebr").family_size == 2


def test_table_is_independent_of_record_order(planted, table):
    shuffled = list(planted)
    random.Random(0).shuffle(shuffled)
    t2 = build_claims_table(did_specs(LANGS[1:]), shuffled[::-1])
    assert _dump(t2) == _dump(table)


@settings(max_examples=5)
@given(perm_seed=st.integers(0, 2**32 - 1))
def test_order_independence_property(perm_seed):
    recs = bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.05, "arb_Arab": 0.0}, n_items=15, seed=1)
    specs = did_specs(["heb_Hebr", "arb_Arab"], n_resamples=199)
    base = build_claims_table(specs, recs)
    shuffled = list(recs)
    random.Random(perm_seed).shuffle(shuffled)
    assert _dump(build_claims_table(specs, shuffled)) == _dump(base)


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_family_adjustment_matches_statsmodels(planted, method):
    """Oracle: statsmodels.stats.multitest.multipletests on the family's raw p-values; rtol 1e-12 (same formula)."""
    specs = did_specs(LANGS[1:], adjust=method, n_resamples=199)
    other = did_specs(["heb_Hebr"], family="U", adjust=method, n_resamples=199)  # another family must not interfere
    t = build_claims_table(specs + other, planted)
    fam = [r for r in t.rows if r.family == "T"]
    ps = np.array([r.p for r in fam])
    expected = multipletests(ps, method=method)[1]
    assert_allclose([r.p_adj for r in fam], expected, rtol=1e-12, err_msg=method)
    u = t.row("U.did.heb_Hebr")
    assert u.family_size == 1 and u.p_adj == pytest.approx(u.p, rel=1e-15)


def test_no_matching_records_is_insufficient_data(planted):
    d = spec_dict(select={"y": {"quantity": "eval.bits_per_byte", "split": "dev"}})
    row = build_claims_table([ClaimSpec.model_validate(d)], planted).rows[0]
    assert row.verdict == "insufficient_data" and "no records match" in row.message
    assert row.grade == "n/a"


def test_min_n_gives_insufficient_data(planted):
    d = spec_dict(decision={"alpha": 0.05, "min_n": 500})
    row = build_claims_table([ClaimSpec.model_validate(d)], planted).rows[0]
    assert row.verdict == "insufficient_data" and "min_n = 500" in row.message


def _h5_spec():
    return ClaimSpec.model_validate(spec_dict(
        id="T.scaling", test="requires_levels", alternative="two-sided", unit_of_analysis="model.n_params",
        params={"column": "n_params", "k": 3, "group_by": "family", "then": "did_trend",
                "then_params": {"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}}},
        decision={"alpha": 0.05, "min_n": 3}))


def test_requires_levels_insufficient_with_two_families_of_one_size():
    recs = []
    for i, (fam, size) in enumerate((("llama", 135_000_000), ("gemma3", 270_000_000))):
        recs += bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=10, seed=i,
                            model=model_ref(f"m{i}", n_params=size, family=fam))
    row = build_claims_table([_h5_spec()], recs).rows[0]
    assert row.verdict == "insufficient_data"
    assert "at least 3 distinct levels of 'n_params' within one 'family'" in row.message


def test_requires_levels_runs_trend_with_three_sizes():
    recs = []
    for i, size in enumerate((1e6, 1e7, 1e8, 1e9)):
        recs += bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.2 - 0.05 * i}, n_items=10, seed=i, noise=0.002,
                            model=model_ref(f"m{i}", n_params=int(size), family="fam"))
    row = build_claims_table([_h5_spec()], recs).rows[0]
    assert row.verdict != "insufficient_data", row.message
    assert row.n == 4 and row.statistic == pytest.approx(-1.0)  # Spearman of a strictly decreasing trend
    assert row.p == pytest.approx(2 / 24)  # exact: 2 of the 4! orderings have |rho| = 1
    assert row.details["gate_group"] == "fam"


def test_did_trend_one_sided_claim_reports_the_two_sided_ci():
    """Regression (review): with ``alternative: less`` did_trend returned corr's one-sided interval
    ``[-1, upper]`` while every other test (and docs/claims-engine.md) reports two-sided CIs; the decision
    rule then judged this one claim on a one-sided bound. Oracle: corr() two-sided on the same 4 points."""
    from qdstats.correlation import corr

    recs = []
    for i, size in enumerate((1e6, 1e7, 1e8, 1e9)):
        recs += bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.2 - 0.04 * i}, n_items=10, seed=i, noise=0.02,
                            model=model_ref(f"m{i}", n_params=int(size), family="fam"))
    base = _h5_spec()
    params = {**base.params, "then_params": {**base.params["then_params"], "method": "pearson"}}
    spec = ClaimSpec.model_validate({**base.model_dump(), "alternative": "less", "params": params})
    row = build_claims_table([spec], recs).rows[0]
    assert row.verdict != "insufficient_data", row.message
    # the CI is the two-sided Wald CI of the weighted slope (not a one-sided bound); p follows the direction
    assert np.isfinite(row.ci_low) and np.isfinite(row.ci_high) and row.ci_low < row.estimate < row.ci_high
    levels, did = np.log10(row.details["levels"]), np.array(row.details["did"])
    n_le = sum(np.corrcoef(levels, did[list(o)])[0, 1] <= row.statistic + 1e-12 for o in itertools.permutations(range(4)))
    assert row.p == pytest.approx(n_le / 24, rel=1e-12)  # hand count over the 4! orderings, direction 'less'


def test_grade_counts_models_and_languages_the_test_used():
    """Regression (review): the seed specs select every model and language and pick one with
    ``params.model`` / ``params.target`` (for_each), but the grade counted models and languages over the
    whole selection, so a single-model claim escaped ``single_model``. Counts now follow the test's
    parameters: 1 model and 2 languages (target + reference) here, with 3 models x 4 languages selected."""
    recs = []
    for i in range(3):
        recs += bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1, "arb_Arab": 0.0, "deu_Latn": 0.0},
                            n_items=30, seed=i, model=model_ref(f"m{i}"))
    d = spec_dict(decision={"alpha": 0.05, "min_n": 20})
    d["params"] = {**d["params"], "model": "m1"}
    row = build_claims_table([ClaimSpec.model_validate(d)], recs).rows[0]
    assert (row.n_models, row.n_languages, row.n_items) == (1, 2, 30)
    assert "single_model" in row.grade_reasons and "few_languages" in row.grade_reasons
    assert row.n_records == 3 * 4 * 30 * 2  # the selection itself is unchanged (and hashed as before)


def test_data_hash_tracks_selected_records_only(planted):
    specs = did_specs(["heb_Hebr"])
    h0 = build_claims_table(specs, planted).rows[0].data_hash
    extra = bpb_records(effects={"eng_Latn": 0.0}, n_items=3, seed=9, corpus=__import__("claims_synth").CORPUS_DEV)
    assert build_claims_table(specs, planted + extra).rows[0].data_hash == h0  # dev records are not selected
    changed = list(planted)
    changed[0] = changed[0].model_copy(update={"value": changed[0].value + 1e-9})
    assert build_claims_table(specs, changed).rows[0].data_hash != h0


def test_duplicates_counted_once_and_failures_reported(planted):
    fail = FailedMeasurement(quantity="eval.bits_per_byte", language="heb_Hebr",
                             error=ErrorInfo(error_type="RuntimeError", message="OOM"), routine="tests.claims")
    t = build_claims_table(did_specs(["heb_Hebr"]), planted + planted[:10] + [fail])
    assert t.n_duplicate_records == 10 and t.n_records == len(planted) and t.n_failed_records == 1
    row = t.rows[0]
    assert any("failed measurement" in w for w in row.warnings)
    assert "warnings" in row.grade_reasons


D = Decision(alpha=0.05, ci_excludes=0.0, min_abs_effect=0.1, min_n=1)


@pytest.mark.parametrize(
    ("est", "lo", "hi", "p", "alt", "verdict"),
    [
        (0.5, 0.3, 0.7, 0.01, "greater", "supported"),
        (0.5, 0.3, 0.7, 0.2, "greater", "inconclusive"),       # p_adj too large
        (0.05, 0.01, 0.09, 0.01, "greater", "not_supported"),  # CI below the margin
        (0.3, -0.1, 0.7, 0.04, "greater", "inconclusive"),     # CI includes 0
        (-0.5, -0.7, -0.3, 0.99, "greater", "not_supported"),  # reversal
        (-0.5, -0.7, -0.3, 0.01, "less", "supported"),
        (-0.5, -0.7, -0.3, 0.01, "two-sided", "supported"),
        (0.01, -0.05, 0.05, 0.6, "two-sided", "not_supported"),  # equivalence
        (math.nan, math.nan, math.nan, math.nan, "greater", "inconclusive"),
        (0.5, None, None, 0.01, "greater", "inconclusive"),    # no CI, no support
    ],
)
def test_decide_rule(est, lo, hi, p, alt, verdict):
    assert decide(est, lo, hi, p, D, alt)[0] == verdict


def test_selection_by_record_n_keeps_sweeps_of_different_sizes_apart(planted):
    """``select.n`` matches the record's ``n``: records of a 96-item summary are never mixed with a 24-item one.
    Unset, it is left out of the spec's canonical form, so the hashes of specs written before it are unchanged."""
    small = [r.model_copy(update={"n": 24}) for r in planted]
    shift = 0.5  # Hebrew's INT4 damage in the 96-item copy: its DiD is the planted one plus 0.5
    large = [r.model_copy(update={"n": 96, "value": r.value + (shift if r.condition["scheme"] == "int4"
                                                                and r.language == "heb_Hebr" else 0.0)})
             for r in planted]
    plain = ClaimSpec.model_validate(spec_dict(select={"y": {"quantity": "eval.bits_per_byte", "split": "test"}}))
    assert "n" not in plain.model_dump(mode="json")["select"]["y"]
    ref = build_claims_table([plain], planted).rows[0]
    only = {k: build_claims_table([ClaimSpec.model_validate(
        spec_dict(select={"y": {"quantity": "eval.bits_per_byte", "split": "test", "n": k}}))], small + large).rows[0]
        for k in (24, 96)}
    assert_allclose(only[24].estimate, ref.estimate, rtol=1e-12)
    assert_allclose(only[96].estimate, ref.estimate + shift, rtol=1e-9)
    assert only[24].n == only[96].n == ref.n
    sized = ClaimSpec.model_validate(spec_dict(select={"y": {"quantity": "eval.bits_per_byte", "n": 96}}))
    assert sized.spec_hash() != ClaimSpec.model_validate(
        spec_dict(select={"y": {"quantity": "eval.bits_per_byte"}})).spec_hash()
