"""Fixtures of the report tests: SYNTHETIC records from report_synthetic.py (never real measurements)."""

from __future__ import annotations

import pytest
from report_synthetic import (
    make_all_records,
    make_eval_records,
    make_failure,
    make_premium_records,
    make_sensitivity_records,
    make_word_records,
)


@pytest.fixture(scope="session")
def all_records() -> list:
    """Every section's records (SYNTHETIC), built once; read-only (tuples/frozen records)."""
    return make_all_records()


@pytest.fixture(scope="session")
def eval_records() -> list:
    return make_eval_records()


@pytest.fixture(scope="session")
def small_records() -> list:
    """A smaller SYNTHETIC set with every section, for tests that build several reports."""
    return (make_eval_records(n_items=8, n_docs=4, schemes=("int4-g64-sym",)) + make_sensitivity_records()
            + make_premium_records() + make_word_records(n_sent=4, words_per_sent=4) + [make_failure()])
