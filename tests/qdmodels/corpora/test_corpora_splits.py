"""Document-level dev/test split."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.corpora.splits import document_split


def test_example():
    assert document_split(["b", "a", "c", "a"]) == {"a": "dev", "b": "test", "c": "dev"}


@given(st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=40), st.sampled_from(["alternate", "hash"]))
def test_properties(docs, rule):
    """Every document on exactly one side; independent of input order; 'alternate' balanced within one."""
    a = document_split(docs, rule=rule)
    assert set(a) == set(docs)
    assert set(a.values()) <= {"dev", "test"}
    assert document_split(list(reversed(docs)), rule=rule) == a
    if rule == "alternate":
        n_dev = sum(v == "dev" for v in a.values())
        assert 0 <= n_dev - (len(a) - n_dev) <= 1


def test_bad_input():
    with pytest.raises(ValueError, match="`rule` must be one of"):
        document_split(["a"], rule="random")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`document_ids` must not be empty"):
        document_split([])
