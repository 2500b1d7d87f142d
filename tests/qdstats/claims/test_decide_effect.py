"""Decision rule details that a mutation review found untested."""

from __future__ import annotations

from qdstats.claims import Decision, decide


def test_min_abs_effect_is_measured_from_the_null_not_from_zero():
    """Kills `abs(estimate) >= m` in place of `abs(estimate - null) >= m`: a ratio of 1.05 against the null 1 is an
    effect of 0.05, below a minimum of 0.1, however significant."""
    rule = Decision(ci_excludes=1.0, min_abs_effect=0.1)
    verdict, why = decide(1.05, 1.02, 1.2, 0.001, rule, "greater")
    assert verdict == "inconclusive" and "|effect| < 0.1" in why
    assert decide(1.15, 1.12, 1.2, 0.001, rule, "greater")[0] == "supported"
    assert decide(0.95, 0.8, 0.98, 0.001, rule, "less")[0] == "inconclusive"
    assert decide(0.85, 0.8, 0.88, 0.001, rule, "less")[0] == "supported"
