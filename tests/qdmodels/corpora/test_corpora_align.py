"""Boundary alignment of gold parts to surface words (rule documented in qdmodels.corpora.align)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.corpora.align import align_boundaries, segmented_word


@pytest.mark.parametrize(
    ("surface", "parts", "expected"),
    [
        ("בבית", ["ב", "ה", "בית"], (1,)),  # HTB article elision: ב+ה+בית written בבית
        ("בביתו", ["ב", "בית", "של", "הוא"], (1, 4)),  # HTB possessive clitic: ו realizes של+הוא
        ("לטיפול", ["ל", "טיפול"], (1,)),  # surface-true prefix
        ("했다", ["하", "었", "다"], (1,)),  # Korean contraction: 하+었 -> 했
        ("서울입니다", ["서울", "이", "ㅂ니다"], (2, 3)),  # Kaist lemma with jamo ㅂ merged into 입
        ("dégueulais", ["dé", "gueule", "er", "ais"], (2, 7)),  # SIGMORPHON canonical morphs
    ],
)
def test_hand_checked_cases(surface, parts, expected):
    """Oracle: boundaries checked by hand against the surface spelling."""
    bounds, true = align_boundaries(surface, parts)
    assert bounds == expected
    assert true == ("".join(parts) == surface)


@given(st.lists(st.text(alphabet="abcdeאבג한국", min_size=1, max_size=4), min_size=1, max_size=5))
def test_surface_true_parts_give_cumulative_lengths(parts):
    """Property: when parts concatenate to the word, boundaries are the cumulative lengths (closed form)."""
    word = "".join(parts)
    bounds, true = align_boundaries(word, parts)
    cum, pos = [], 0
    for p in parts[:-1]:
        pos += len(p)
        cum.append(pos)
    assert true
    assert bounds == tuple(sorted(set(cum)))


@given(st.text(alphabet="abcאב", min_size=1, max_size=8), st.lists(st.text(alphabet="abcאב", max_size=4), min_size=1, max_size=5))
def test_boundaries_always_valid(word, parts):
    """Property: whatever the parts, boundaries are sorted, unique and strictly inside the word."""
    if not any(parts):
        with pytest.raises(ValueError, match="`parts`"):
            align_boundaries(word, parts)
        return
    bounds, _ = align_boundaries(word, parts)
    assert list(bounds) == sorted(set(bounds))
    assert all(0 < b < len(word) for b in bounds)
    sw = segmented_word(word, parts, language="heb_Hebr", source="test")
    assert sw.byte_boundaries == tuple(len(word[:b].encode()) for b in bounds)


def test_empty_surface_rejected():
    with pytest.raises(ValueError, match="`surface`"):
        align_boundaries("", ["a"])
