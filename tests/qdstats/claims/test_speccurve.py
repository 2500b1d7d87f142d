"""Specification curve (qdstats.claims.speccurve): hand-computed values on a planted frame, and a unit flip."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qdstats.claims import ClaimSpec
from qdstats.claims.speccurve import DEFAULT_SPECIFICATIONS, Specification, derive_unit, specification_curve

LN2 = math.log(2)
N = 24


def _frame() -> tuple[pd.DataFrame, np.ndarray]:
    """English: 50 bytes, NLL 50 -> 60 + e; Hebrew: 100 bytes (same content), NLL 100 -> 120 + 2e.

    Per byte the damage is identical (DiD exactly 0); per sentence Hebrew loses (10 + e) / ln 2 more bits.
    The first token's NLL is 5 (fp32) and 7 (int4) in both languages.
    """
    e = np.random.default_rng(0).normal(0, 1, N)
    rows = []
    for i in range(N):
        for lang, nb, nc, k in (("eng_Latn", 50, 50, 1), ("heb_Hebr", 100, 40, 2)):
            for scheme, nll, first in (("fp32", 50.0 * k, 5.0), ("int4", 60.0 * k + k * e[i], 7.0)):
                for q, v in (("eval.nll_sum", nll), ("eval.n_bytes", nb), ("eval.n_chars", nc),
                             ("eval.nll_first", first), ("eval.bits_per_byte", nll / LN2 / nb)):
                    rows.append({"quantity": q, "value": float(v), "model.model_id": "m", "language": lang,
                                 "item_id": f"it{i:02d}", "condition.scheme": scheme, "attributes.document_id": f"d{i}"})
    return pd.DataFrame(rows), e


CLAIM = ClaimSpec.model_validate({
    "id": "planted.did", "version": 1, "statement": "int4 hurts Hebrew more", "family": "planted",
    "select": {"y": {"quantity": "eval.bits_per_byte"}}, "unit_of_analysis": "item_id", "test": "diff_in_diff",
    "params": {"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}, "target": "heb_Hebr",
               "resampling": "joint", "cluster": "document_id", "kind": "percentile"},
    "alternative": "greater", "n_resamples": 999, "seed": 1,
    "decision": {"alpha": 0.05, "ci_excludes": 0.0, "min_abs_effect": 0.01, "min_n": 10}})


def test_derived_units_closed_form():
    """Closed forms of each unit on the planted items (same formula, rtol 1e-12)."""
    frame, e = _frame()
    heb_int4 = lambda df: df[(df.language == "heb_Hebr") & (df["condition.scheme"] == "int4")].sort_values("item_id")["value"].to_numpy()
    nll = 120 + 2 * e
    cases = {
        ("bits_per_byte", "in"): nll / LN2 / 100, ("bits_per_char", "in"): nll / LN2 / 40,
        ("bits_per_sentence", "in"): nll / LN2, ("bits_per_english_byte", "in"): nll / LN2 / 50,
        ("relative_change", "in"): np.log(nll), ("bits_per_sentence", "out"): (nll - 7) / LN2,
        ("bits_per_byte", "out"): (nll - 7) / LN2 / 100,
    }
    for (u, f), want in cases.items():
        got = heb_int4(derive_unit(frame, Specification(unit=u, first_token=f)))
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=f"{u}/{f}")


def test_curve_hand_computed_and_unit_flip_not_robust():
    """Hand-computed DiDs per unit; a planted effect that is zero per byte but positive per sentence is a flip."""
    frame, e = _frame()
    curve = specification_curve(CLAIM, DEFAULT_SPECIFICATIONS, frame)
    by = {r.specification: r for r in curve.rows}
    want = {
        "bits_per_byte/first_in": 0.0, "relative_change/first_in": 0.0,
        "bits_per_sentence/first_in": np.mean(10 + e) / LN2,
        "bits_per_english_byte/first_in": np.mean(10 + e) / LN2 / 50,
        "bits_per_char/first_in": np.mean((20 + 2 * e) / 40 - (10 + e) / 50) / LN2,
        # first token out: both languages lose the same 2 nats on the first token, so per sentence the DiD is unchanged
        "bits_per_sentence/first_out": np.mean(10 + e) / LN2,
        "bits_per_byte/first_out": np.mean((18 + 2 * e) / 100 - (8 + e) / 50) / LN2,
    }
    for sid, w in want.items():
        np.testing.assert_allclose(by[sid].estimate, w, rtol=1e-10, atol=1e-12, err_msg=sid)
    assert by["bits_per_byte/first_in"].verdict == "not_supported"
    assert by["bits_per_sentence/first_in"].verdict == "supported"
    assert by["bits_per_sentence/first_in"].agrees is False
    assert curve.robust is False and curve.primary_verdict == "not_supported"
    assert curve.n_agree == sum(r.verdict == "not_supported" for r in curve.rows) < curve.n_specifications
    df = curve.to_frame()
    assert len(df) == len(DEFAULT_SPECIFICATIONS) + 1 and df.iloc[-1]["specification"] == "summary"
    # the margin scales with the reference's degradation: per sentence it is 0.01 * (Δ_eng bits / Δ_eng bpb) = 0.5
    np.testing.assert_allclose(by["bits_per_sentence/first_in"].min_abs_effect, 0.01 * 50, rtol=1e-10)


def test_robust_when_every_unit_agrees():
    """Scaling every language's NLL by its byte ratio removes the unit dependence except per sentence... so
    plant equal per-sentence damage AND equal per-byte damage (same bytes): every spec agrees."""
    frame, _ = _frame()
    frame = frame[frame.language == "eng_Latn"]
    heb = frame.assign(language="heb_Hebr")
    heb.loc[(heb.quantity == "eval.nll_sum") & (heb["condition.scheme"] == "int4"), "value"] += 30.0
    curve = specification_curve(CLAIM, DEFAULT_SPECIFICATIONS, pd.concat([frame, heb], ignore_index=True))
    assert curve.robust is True and curve.primary_verdict == "supported"
    assert curve.n_agree == curve.n_specifications


def test_missing_first_token_is_incomplete_not_robust():
    frame, _ = _frame()
    frame = frame[frame.quantity != "eval.nll_first"]
    curve = specification_curve(CLAIM, [Specification(), Specification(first_token="out")], frame)
    assert curve.robust is None and {r.verdict for r in curve.rows} == {"not_supported", "insufficient_data"}


def test_bad_family_size():
    with pytest.raises(ValueError, match="`family_size`"):
        specification_curve(CLAIM, DEFAULT_SPECIFICATIONS, _frame()[0], family_size=0)


def _planted_records():
    """The planted frame of `_frame` as Measurement records (per byte: no extra damage; per sentence: Hebrew loses more)."""
    from qdstats.records import CorpusRef, Measurement, ModelRef

    frame, _ = _frame()
    ref = ModelRef(model_id="m", source="config", sha256="0" * 64, n_params=1000, family="synthetic")
    corpus = CorpusRef(corpus_id="synthetic", split="test", sha256="1" * 64)
    units = {"eval.nll_sum": "nat", "eval.n_bytes": "byte", "eval.n_chars": "char", "eval.nll_first": "nat",
             "eval.bits_per_byte": "bit/byte"}
    return [Measurement(quantity=r["quantity"], value=r["value"], unit=units[r["quantity"]], model=ref,
                        language=r["language"], item_id=r["item_id"], corpus=corpus,
                        condition={"scheme": r["condition.scheme"]},
                        attributes={"document_id": r["attributes.document_id"]}, routine="tests.claims.synthetic")
            for r in frame.to_dict(orient="records")]


def test_engine_reports_robustness_and_grades_a_flip():
    """`specifications: units` in a spec: the row counts the agreeing specifications, robust=False on a unit flip,
    the grade pays `not_robust`, and the Markdown shows the count and the other verdicts. Without the key: nothing."""
    from qdstats.claims import build_claims_table
    from qdstats.claims.render import to_markdown

    recs = _planted_records()
    spec = ClaimSpec.model_validate({**CLAIM.model_dump(), "specifications": "units"})
    row = build_claims_table([spec], recs).rows[0]
    assert row.verdict == "not_supported"  # per byte the DiD is exactly 0
    assert row.n_specifications == 10 and row.robust is False
    assert 0 < row.n_specs_agree < 10
    assert row.details["specifications"]["bits_per_sentence/first_in"]["verdict"] == "supported"
    assert "not_robust" in row.grade_reasons
    # the primary specification is the row's own test with the row's own (Holm) adjustment
    prim = row.details["specifications"]["bits_per_byte/first_in"]
    assert prim["verdict"] == row.verdict and prim["p_adj"] == pytest.approx(row.p_adj, rel=1e-12)
    md = to_markdown(build_claims_table([spec], recs))
    assert f"{row.n_specs_agree}/10 (not robust)" in md and "other verdicts under: " in md
    plain = build_claims_table([CLAIM], recs).rows[0]
    assert plain.n_specifications == 0 and plain.robust is None and "not_robust" not in plain.grade_reasons


def test_engine_curve_equals_the_direct_curve_on_all_records():
    """The engine hands the curve only the rows its cached selection masks keep; the result must equal
    `specification_curve` on every record (other models and conditions included), for each row a spec expands to."""
    from qdstats.claims import build_claims_table
    from qdstats.records import to_frame

    recs = _planted_records()
    other = [r.model_copy(update={"model": r.model.model_copy(update={"model_id": "m2"}),
                                  "value": r.value * (1.3 if r.quantity == "eval.nll_sum" else 1.0)}) for r in recs]
    other += [r.model_copy(update={"condition": {"scheme": "int3"},
                                   "value": r.value * (1.7 if r.quantity == "eval.nll_sum" else 1.0)})
              for r in recs if r.condition["scheme"] == "int4"]
    specs = [ClaimSpec.model_validate({**CLAIM.model_dump(), "id": f"planted.did.{m}", "specifications": "units",
                                       "params": {**CLAIM.params, "model": m}}) for m in ("m", "m2")]
    table = build_claims_table(specs, recs + other)
    full = to_frame(recs + other)
    assert len(table.rows) == 2
    for row in table.rows:
        claim = next(c for c in specs if c.id == row.claim_id)
        mult = row.p_adj / row.p if row.p else 1.0
        direct = specification_curve(claim, DEFAULT_SPECIFICATIONS, full, p_multiplier=max(1.0, mult))
        got = row.details["specifications"]
        assert set(got) == {c.specification for c in direct.rows}
        for c in direct.rows:
            assert got[c.specification]["estimate"] == c.estimate
            assert got[c.specification]["ci_low"] == c.ci_low and got[c.specification]["verdict"] == c.verdict
    assert table.rows[0].details["specifications"] != table.rows[1].details["specifications"]


def test_reference_bytes_that_depend_on_the_condition_are_an_error():
    frame, _ = _frame()
    bad = frame.copy()
    sel = (bad["quantity"] == "eval.n_bytes") & (bad["language"] == "eng_Latn") & (bad["condition.scheme"] == "int4")
    bad.loc[sel, "value"] = 51.0
    with pytest.raises(ValueError, match="differs between the conditions"):
        derive_unit(bad, Specification(unit="bits_per_english_byte"))
    derive_unit(bad, Specification(unit="bits_per_byte"))  # other units do not look across conditions


def test_narrowing_to_the_tests_rows_changes_nothing(monkeypatch):
    """The curve narrows each derived frame to the test's own rows (ClaimTest.rows); with narrowing switched off the
    curve must be identical, including a third condition whose English byte counts differ (an error for
    bits_per_english_byte either way: the units are derived from every selected row before narrowing)."""
    from qdstats.claims.registry import ClaimTest

    frame, _ = _frame()
    m2 = frame.assign(**{"model.model_id": "m2"})
    m2.loc[m2["quantity"] == "eval.nll_sum", "value"] *= 1.3
    int3 = frame[frame["condition.scheme"] == "int4"].assign(**{"condition.scheme": "int3"})
    int3.loc[int3["quantity"] == "eval.nll_sum", "value"] *= 1.7
    int3.loc[(int3["quantity"] == "eval.n_bytes") & (int3["language"] == "eng_Latn"), "value"] = 51.0
    full = pd.concat([frame, m2, int3], ignore_index=True)
    claim = ClaimSpec.model_validate({**CLAIM.model_dump(), "params": {**CLAIM.params, "model": "m"}})
    narrowed = specification_curve(claim, DEFAULT_SPECIFICATIONS, full)
    monkeypatch.setattr(ClaimTest, "rows", lambda self, data, params: data)
    whole = specification_curve(claim, DEFAULT_SPECIFICATIONS, full)
    assert narrowed.model_dump() == whole.model_dump()
    by_id = {r.specification: r for r in narrowed.rows}
    assert by_id["bits_per_english_byte/first_in"].verdict == "insufficient_data"
    assert "differs between the conditions" in by_id["bits_per_english_byte/first_in"].reason
    assert by_id["bits_per_sentence/first_in"].estimate is not None
    no_model = ClaimSpec.model_validate(CLAIM.model_dump())  # two models and no params.model: refused either way
    assert all("`params.model` is required" in r.reason
               for r in specification_curve(no_model, DEFAULT_SPECIFICATIONS, full).rows
               if r.unit != "bits_per_english_byte")  # that unit fails earlier, on the differing byte counts
