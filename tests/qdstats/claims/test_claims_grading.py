"""Grading rules: each rule fires on its condition; caps; the documentation is generated from the rules."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from qdstats.claims.docsync import sync_doc
from qdstats.claims.grading import RULES, GradeInput, grade_claim, rules_markdown

ROOT = Path(__file__).resolve().parents[3]
CLEAN = GradeInput(n=200, n_languages=12, n_models=2, details={}, warnings=(), selection_split="dev",
                   test_split="test", evidence="measured")


def test_clean_claim_is_A():
    assert grade_claim(CLEAN, "supported") == ("A", ())


@pytest.mark.parametrize(
    ("change", "rule", "grade"),
    [
        ({"n_languages": 8}, "few_languages", "B"),
        ({"n_models": 1}, "single_model", "B"),
        ({"n": 29}, "small_n", "B"),
        ({"details": {"singular": True}}, "mixed_fit", "B"),
        ({"details": {"boundary": True}}, "mixed_fit", "B"),
        ({"details": {"converged": False}}, "mixed_fit", "B"),
        ({"details": {"max_vif": 5.5}}, "collinearity", "B"),
        ({"selection_split": "test"}, "selection_not_separated", "C"),
        ({"warnings": ("constant input",)}, "warnings", "B"),
        # more than 10% left out: counted once, as dropped_observations (not also as a warning)
        ({"warnings": ("41 of 400 (model, language, item) rows lack a value under one of `params.a`, `params.b` "
                       "and were left out.",)}, "dropped_observations", "B"),
        ({"details": {"dropped_fraction": 0.67}}, "dropped_observations", "B"),
        ({"details": {"n_calibration_draws": 1}}, "single_calibration_draw", "B"),
    ],
)
def test_each_rule_fires(change, rule, grade):
    g, reasons = grade_claim(replace(CLEAN, **change), "not_supported")
    assert reasons == (rule,) and g == grade


def test_rules_do_not_fire_at_thresholds():
    inp = replace(CLEAN, n_languages=10, n=30, details={"max_vif": 5.0, "converged": True}, selection_split=None)
    assert grade_claim(inp, "inconclusive") == ("A", ())


def test_small_drops_are_warnings_and_draws_suffice():
    """At or below 10% left out, a drop note is an ordinary warning; 5 calibration draws are enough."""
    note = "40 of 400 (model, language, item) rows lack a value under one of `params.a` and were left out."
    assert grade_claim(replace(CLEAN, warnings=(note,)), "supported") == ("B", ("warnings",))
    assert grade_claim(replace(CLEAN, details={"n_calibration_draws": 5, "dropped_fraction": 0.1}), "supported") == ("A", ())


def test_language_count_warning_is_not_counted_twice():
    inp = replace(CLEAN, n_languages=8,
                  warnings=("only 8 languages (< 10): cross-language comparisons of differences in differences rest on few languages.",))
    assert grade_claim(inp, "supported") == ("B", ("few_languages",))


def test_floor_is_D():
    inp = GradeInput(n=5, n_languages=1, n_models=1, details={"singular": True, "max_vif": 40, "dropped_fraction": 0.5,
                                                               "n_calibration_draws": 1}, warnings=("w",),
                     selection_split="test", test_split="test", evidence="measured", robust=False)
    g, reasons = grade_claim(inp, "supported")
    assert g == "D" and len(reasons) == len(RULES)


def test_caps_and_na():
    assert grade_claim(replace(CLEAN, evidence="literature"), "supported") == ("C", ("cap:literature",))
    assert grade_claim(replace(CLEAN, evidence="literature", n_models=1, n=3), "supported")[0] == "C"
    assert grade_claim(replace(CLEAN, n_models=1, n=3, n_languages=2, evidence="literature"), "supported")[0] == "D"
    assert grade_claim(replace(CLEAN, evidence="simulated"), "inconclusive")[0] == "simulated"
    for v in ("insufficient_data", "error"):
        assert grade_claim(CLEAN, v) == ("n/a", ())


def test_every_rule_is_in_the_generated_table():
    md = rules_markdown()
    for r in RULES:
        assert f"| `{r.id}` | −{r.penalty} |" in md


def test_docs_are_in_sync_with_the_code():
    """docs/claims-engine.md: the spec keys, registered tests and grading rules blocks equal what the code generates
    (regenerate with `python -m qdstats.claims.docsync docs/claims-engine.md`)."""
    text = (ROOT / "docs" / "claims-engine.md").read_text(encoding="utf-8")
    assert sync_doc(text) == text
    assert rules_markdown().strip() in text


def test_sync_doc_requires_markers():
    with pytest.raises(ValueError, match="no `<!-- spec-fields:start -->`"):
        sync_doc("# nothing here\n")
