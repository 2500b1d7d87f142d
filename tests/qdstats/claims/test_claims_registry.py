"""Claim-test registry: did-you-mean errors, duplicate and frozen registrations, thread safety."""

from __future__ import annotations

import threading

import pytest
from pydantic import BaseModel, ConfigDict

from qdstats.validation import UnknownNameError
from qdstats.claims.registry import ClaimTestRegistry, get_test, list_tests
from qdstats.results import StatResult


def _dummy(data, params, ctx):
    return StatResult(test="dummy", estimate_name="x", estimate=0.0, n=0)


def test_unknown_name_suggests_closest():
    with pytest.raises(UnknownNameError, match=r"`test` must be a registered claim test; got 'spearmn'\. Did you mean 'spearman'\?"):
        get_test("spearmn")


def test_builtins_registered():
    names = set(list_tests())
    expected = {"diff_in_diff", "mean_difference_paired", "spearman", "pearson", "kendall", "partial_corr",
                "mixed_slope", "layer_group_contrast", "interaction", "protection_effect", "disparity_change",
                "requires_levels", "did_trend"}
    assert expected <= names


def test_duplicate_registration_rejected():
    reg = ClaimTestRegistry()
    reg.register("a")(_dummy)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a")(_dummy)


def test_frozen_registry_refuses():
    reg = ClaimTestRegistry()
    reg.register("a")(_dummy)
    reg.freeze()
    with pytest.raises(ValueError, match="frozen"):
        reg.register("b")(_dummy)
    assert reg.get("a").name == "a"


def test_params_model_required_to_be_pydantic():
    with pytest.raises(TypeError, match="`params` must be a pydantic BaseModel subclass"):
        ClaimTestRegistry().register("a", params=dict)  # type: ignore[arg-type]


def test_params_validation_is_strict():
    class P(BaseModel):
        model_config = ConfigDict(extra="forbid")
        k: int

    reg = ClaimTestRegistry()
    reg.register("a", params=P)(_dummy)
    assert reg.get("a").validate_params({"k": 3}).k == 3
    with pytest.raises(ValueError):
        reg.get("a").validate_params({"k": 3, "kk": 1})


def test_concurrent_registration_is_safe():
    """32 threads register distinct names and 32 race for one name: all distinct land, exactly one racer wins."""
    reg = ClaimTestRegistry()
    wins: list[int] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(64)

    def distinct(i: int) -> None:
        barrier.wait()
        reg.register(f"t{i}")(_dummy)

    def race(i: int) -> None:
        barrier.wait()
        try:
            reg.register("same")(_dummy)
            wins.append(i)
        except ValueError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=distinct, args=(i,)) for i in range(32)]
    threads += [threading.Thread(target=race, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(reg) == 33
    assert len(wins) == 1 and len(errors) == 31
