"""Morpheme-boundary alignment: known splits on built tokenizers, boundary arithmetic, records, aggregates."""

from __future__ import annotations

import math
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.corpora.types import SegmentedWord, Sentence, Word
from qdmodels.tokenization import (
    align_morphemes,
    align_sentence,
    align_word,
    alignment_records,
    alignment_summary,
    boundary_scores,
)

SETS = st.sets(st.integers(1, 12), max_size=6)


def seg(word, morphs, lang="eng_Latn"):
    return SegmentedWord.from_morphs(word, tuple(morphs), language=lang, source="toy")


def sentence(sid, words, lang="eng_Latn"):
    """Sentence from (form, morphs or None) pairs joined by single spaces."""
    text = " ".join(f for f, _ in words)
    out, c = [], 0
    for i, (f, m) in enumerate(words):
        b = len(text[:c].encode())
        out.append(Word(index=i, form=f, char_start=c, char_end=c + len(f), byte_start=b, byte_end=b + len(f.encode()),
                        segmentation=None if m is None else seg(f, m, lang)))
        c += len(f) + 1
    return Sentence(sent_id=sid, language=lang, text=text, words=tuple(out))


def test_boundary_scores_hand_cases():
    assert boundary_scores([2, 5], [2, 5]) == (2, 1.0, 1.0, 1.0)
    assert boundary_scores([2], [3]) == (0, 0.0, 0.0, 0.0)
    h, p, r, f = boundary_scores([], [3])
    assert (h, p) == (0, 0.0) and math.isnan(r) and math.isnan(f)
    h, p, r, f = boundary_scores([2], [])
    assert math.isnan(p) and r == 0.0 and math.isnan(f)


@given(SETS, SETS)
def test_boundary_scores_properties(g, p):
    h, prec, rec, f1 = boundary_scores(g, p)
    h2, _prec2, rec2, _ = boundary_scores(p, g)
    assert h == h2 == len(g & p)
    assert (math.isnan(prec) and math.isnan(rec2)) or prec == rec2
    for v in (prec, rec, f1):
        assert math.isnan(v) or 0.0 <= v <= 1.0
    if g and p:
        assert (f1 == 1.0) == (g == p)


def test_isolated_word_known_splits(toy_bpe):
    # toy BPE merges: un, do, re, walk, ed  -> "undo" = un|do ; "walked" = walk|ed ; "redo" = re|do
    a = align_word(toy_bpe, seg("walked", ["walk", "ed"]), prefix="none")
    assert (a.token_boundaries, a.gold, a.hits, a.whole_word) == ((4,), (4,), 1, False)
    assert (a.precision, a.recall, a.f1, a.morphscore) == (1.0, 1.0, 1.0, 1.0)
    b = align_word(toy_bpe, seg("unwalked", ["un", "walk", "ed"]), prefix="none")
    assert b.token_boundaries == (2, 6) and b.f1 == 1.0
    c = align_word(toy_bpe, seg("undone", ["un", "done"]), prefix="none")  # un|do|n|e
    assert c.token_boundaries == (2, 4, 5) and c.recall == 1.0 and c.precision == pytest.approx(1 / 3, rel=1e-15)
    assert c.morphscore == 1.0


def test_whole_word_is_flagged_not_dropped(wordlevel):
    a = align_word(wordlevel, seg("cats", ["cat", "s"]), prefix="none")  # [UNK] as one token
    assert a.whole_word and a.n_tokens == 1 and math.isnan(a.precision) and a.recall == 0.0
    assert math.isnan(a.morphscore)
    recs = alignment_records(wordlevel, [a])
    assert {r.quantity for r in recs} == {"align.tokens_per_word", "align.boundary_recall"}
    assert all(r.attributes["whole_word"] is True for r in recs)


def test_hebrew_letter_split_inside_utf8_does_not_crash(byte_alphabet):
    """One token per byte: boundaries inside letters (odd offsets) are token boundaries that miss."""
    w = SegmentedWord(word="בבית", morphs=("ב", "ה", "בית"), boundaries=(1,), byte_boundaries=(2,),
                      surface_true=False, language="heb_Hebr", source="toy")
    a = align_word(byte_alphabet, w, prefix="none")
    assert a.token_boundaries == (1, 2, 3, 4, 5, 6, 7) and a.n_bytes == 8
    assert a.hits == 1 and a.precision == 1 / 7 and a.recall == 1.0 and a.morphscore == 1.0


def test_prefix_space_is_not_part_of_the_word(byte_alphabet, sp_fallback):
    a = align_word(byte_alphabet, seg("ab", ["a", "b"]))  # auto: space added for byte-level
    assert a.prefix_space is True and a.token_boundaries == (1,) and a.n_tokens == 2
    b = align_word(sp_fallback, seg("ab", ["a", "b"]))  # auto: tokenizer adds its own dummy prefix
    assert b.prefix_space is False and b.token_boundaries == (1,)
    with pytest.raises(ValueError, match="`prefix` must be one of"):
        align_word(sp_fallback, seg("ab", ["a", "b"]), prefix="yes")


def test_context_mode_uses_sentence_offsets(toy_bpe):
    s = sentence("s1", [("we", None), ("walked", ["walk", "ed"]), ("undone", ["un", "done"])])
    al = align_sentence(toy_bpe, s)
    assert [(a.word, a.token_boundaries, a.mode, a.sentence_id, a.word_index) for a in al] == [
        ("walked", (4,), "context", "s1", 1), ("undone", (2, 4, 5), "context", "s1", 2)]
    iso = align_morphemes(toy_bpe, [s], mode="isolated", prefix="none")
    assert [a.token_boundaries for a in iso] == [(4,), (2, 4, 5)] and iso[0].mode == "isolated"


def test_context_tokens_starting_at_the_space(sp_fallback):
    # SentencePiece tokens "▁b" start at the space before the word: the word edge is not an internal boundary
    s = sentence("s2", [("ab", ["a", "b"]), ("ba", ["b", "a"])])
    al = align_sentence(sp_fallback, s)
    assert [a.token_boundaries for a in al] == [(1,), (1,)]
    recs = alignment_records(sp_fallback, al)
    assert {r.condition["mode"] for r in recs} == {"context"} and recs[0].item_id == "s2:0"


def test_mode_and_input_validation(toy_bpe):
    with pytest.raises(ValueError, match="`mode` 'context' needs sentences"):
        align_morphemes(toy_bpe, [seg("undo", ["un", "do"])], mode="context")
    with pytest.raises(ValueError, match="`mode` must be one of"):
        align_morphemes(toy_bpe, [], mode="ctx")
    with pytest.raises(TypeError, match="`word` must be a SegmentedWord"):
        align_word(toy_bpe, "undo")


def test_summary_pools_counts_and_bootstraps_by_sentence(toy_bpe):
    sents = [sentence(f"s{i}", [("walked", ["walk", "ed"]), ("undone", ["un", "done"]), ("redo", ["re", "do"])])
             for i in range(4)] + [sentence(f"t{i}", [("undone", ["un", "done"])]) for i in range(8)]
    al = align_morphemes(toy_bpe, sents, mode="context")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = alignment_summary(toy_bpe, al, n_resamples=199, rng=1)
    by = {r.quantity: r for r in recs}
    # hits: walked 1/1, undone 1/3 (x12), redo 1/1 -> pooled
    hits, tok, _gold = 4 + 12 + 4, 4 + 36 + 4, 4 + 12 + 4
    assert by["align.boundary_precision"].value == pytest.approx(hits / tok, rel=1e-12)
    assert by["align.boundary_recall"].value == 1.0
    p = hits / tok
    assert by["align.boundary_f1"].value == pytest.approx(2 * p / (p + 1), rel=1e-12)
    assert by["align.boundary_precision"].attributes["n_clusters"] == 12
    lo, hi = by["align.boundary_precision"].attributes["ci_low"], by["align.boundary_precision"].attributes["ci_high"]
    assert lo <= by["align.boundary_precision"].value <= hi and lo < hi
    assert by["align.whole_word_fraction"].value == 0.0 and by["align.morphscore"].value == 1.0
