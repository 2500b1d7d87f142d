"""crossing_counts: alignment counts defined for every word (hand-built words with known boundaries)."""
from __future__ import annotations

import pytest

from qdmodels.tokenization.alignment import boundary_scores, crossing_counts


@pytest.mark.parametrize(("gold", "tok", "expected"), [
    ((), (), (0, 0, 0)),            # one morph, left whole: perfectly aligned (F1 undefined)
    ((3,), (), (1, 0, 1)),          # two morphs left whole: one boundary crossed (F1 undefined)
    ((), (2,), (0, 1, 1)),          # one morph split: one spurious boundary (recall undefined)
    ((2, 5), (2, 3), (1, 1, 2)),
    ((2, 5), (2, 5), (0, 0, 0)),
    ((1, 4, 6), (2,), (3, 1, 4)),
])
def test_hand_built_words(gold, tok, expected):
    assert crossing_counts(gold, tok) == expected
    hits, _, rec, _ = boundary_scores(gold, tok)
    if gold:  # recall with whole words = 0 is 1 - crossed/|G|
        assert rec == pytest.approx(1 - expected[0] / len(set(gold)))
    assert expected[0] == len(set(gold)) - hits and expected[1] == len(set(tok)) - hits
