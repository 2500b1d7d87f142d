"""Word-level damage attribution: hand sums, assignment rules, conservation, records."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.corpora.types import SegmentedWord, Sentence, Word
from qdmodels.tokenization import (
    TokenLogprobs,
    align_sentence,
    word_damage,
    word_damage_frame,
    word_damage_records,
    word_frequencies,
)


def make_sentence(forms, sid="s1", lang="eng_Latn"):
    text = " ".join(forms)
    words, c = [], 0
    for i, f in enumerate(forms):
        b = len(text[:c].encode())
        sw = SegmentedWord.from_morphs(f, (f[:1], f[1:]), language=lang, source="toy") if len(f) > 1 else None
        words.append(Word(index=i, form=f, char_start=c, char_end=c + len(f), byte_start=b, byte_end=b + len(f.encode()),
                          segmentation=sw))
        c += len(f) + 1
    return Sentence(sent_id=sid, language=lang, text=text, words=tuple(words))


S = make_sentence(["ab", "cd."])  # bytes: a0 b1 _2 c3 d4 .5 ; words [0,2) [3,6)
SPANS = ((0, 1), (1, 3), (3, 5), (5, 6))  # "a", "b ", "cd", "."
FULL = TokenLogprobs("s1", SPANS, (-1.0, -2.0, -3.0, -4.0))
COMP = TokenLogprobs("s1", SPANS, (-1.5, -2.0, -5.0, -4.25))


def test_first_byte_rule_hand_sums():
    rows = word_damage(FULL, COMP, S, rule="first_byte")
    assert [r.delta_nll for r in rows] == [0.5, 2.25]
    assert [r.n_tokens for r in rows] == [2, 2] and [r.token_weight for r in rows] == [2.0, 2.0]
    assert rows[1].delta_nll_per_byte == 2.25 / 3 and rows[0].relative_position == 0.0 and rows[1].relative_position == 1.0


def test_byte_share_rule_splits_token_by_overlapping_bytes():
    spans = ((0, 4), (4, 6))  # "ab c" spans word 0 (2 bytes) and word 1 (1 byte); space ignored
    full = TokenLogprobs("s1", spans, (-3.0, -1.0))
    comp = TokenLogprobs("s1", spans, (-6.0, -1.0))
    share = word_damage(full, comp, S, rule="byte_share")
    assert share[0].delta_nll == pytest.approx(2.0, rel=1e-12) and share[1].delta_nll == pytest.approx(1.0, rel=1e-12)
    first = word_damage(full, comp, S, rule="first_byte")
    assert [r.delta_nll for r in first] == [3.0, 0.0]


def test_word_without_token_is_nan_with_warning():
    spans = ((0, 4), (4, 6))
    s = make_sentence(["ab", "c", "d"], sid="s9")  # bytes: ab _ c _ d -> token (0,4) covers ab and c
    full = TokenLogprobs("s9", ((0, 4), (4, 5)), (-1.0, -1.0))
    with pytest.warns(UserWarning, match="received no token"):
        rows = word_damage(full, full, s, rule="first_byte")
    assert math.isnan(rows[1].delta_nll) and rows[0].delta_nll == 0.0
    recs = word_damage_records(rows)
    nan_rec = next(r for r in recs if r.item_id == "s9:1")
    assert math.isnan(nan_rec.value) and nan_rec.warnings
    del spans


@given(st.lists(st.floats(-20, 0), min_size=4, max_size=4), st.lists(st.floats(-20, 0), min_size=4, max_size=4),
       st.sampled_from(["first_byte", "byte_share"]))
def test_word_deltas_sum_to_sentence_delta_when_tokens_are_inside_words(lf, lc, rule):
    spans = ((0, 1), (1, 2), (3, 5), (5, 6))  # no token is whitespace-only except none: all overlap words
    rows = word_damage(TokenLogprobs("s1", spans, tuple(lf)), TokenLogprobs("s1", spans, tuple(lc)), S, rule=rule)
    assert sum(r.delta_nll for r in rows) == pytest.approx(sum(lf) - sum(lc), rel=1e-9, abs=1e-9)


def test_join_with_alignment_and_frequency(toy_bpe):
    s = make_sentence(["walked", "undo"], sid="s3")
    al = align_sentence(toy_bpe, s)
    spans = ((0, 6), (7, 11))
    rows = word_damage(TokenLogprobs("s3", spans, (-1.0, -2.0)), TokenLogprobs("s3", spans, (-2.0, -2.5)), s,
                       alignments=al, frequencies=word_frequencies([s, s]))
    df = word_damage_frame(rows)
    assert list(df["frequency"]) == [2, 2] and np.allclose(df["log_frequency"], np.log(2), rtol=1e-15)
    assert list(df["boundary_recall"]) == [0.0, 0.0]  # walked gold w|alked; toy splits walk|ed
    assert list(df["delta_nll"]) == [1.0, 0.5] and list(df["n_bytes"]) == [6, 4]
    recs = word_damage_records(rows, condition={"scheme": "int4"})
    assert {r.quantity for r in recs} == {"eval.word_delta_nll", "eval.word_delta_nll_per_byte"}
    assert recs[0].condition == {"attribution_rule": "first_byte", "scheme": "int4"}
    assert recs[0].attributes["frequency"] == 2 and recs[0].item_id == "s3:0"


def test_validation():
    with pytest.raises(ValueError, match="identical byte spans"):
        word_damage(FULL, TokenLogprobs("s1", ((0, 6),), (-1.0,)), S)
    with pytest.raises(ValueError, match="4 byte spans but 3 logprobs"):
        word_damage(FULL, TokenLogprobs("s1", SPANS, (-1.0, -1.0, -1.0)), S)
    with pytest.raises(ValueError, match="does not match `sentence.sent_id`"):
        word_damage(TokenLogprobs("zz", SPANS, FULL.logprobs), COMP, S)
    with pytest.raises(ValueError, match="`rule` must be one of"):
        word_damage(FULL, COMP, S, rule="last_byte")
    with pytest.raises(TypeError, match="`full` must have item_id"):
        word_damage({"a": 1}, COMP, S)


def test_accepts_evaluation_token_logprobs():
    ev = pytest.importorskip("qdmodels.eval.scoring")
    t = ev.TokenLogprobs(item_id="s1", language="eng_Latn", condition={}, token_ids=(1, 2, 3, 4), byte_spans=SPANS,
                         logprobs=FULL.logprobs, method="token-bytes")
    assert [r.delta_nll for r in word_damage(t, COMP, S)] == [0.5, 2.25]


@pytest.mark.slow
@pytest.mark.integration
def test_end_to_end_with_evaluation_tiny_model():
    """evaluate_conditions(keep_token_logprobs=True) output feeds word_damage directly; the word NLLs plus the
    NLL of tokens outside every word equal the evaluation's own per-item NLL (rtol 1e-9: float summation order)."""
    pytest.importorskip("torch")
    from qdmodels.corpora.types import ParallelItem
    from qdmodels.eval.scoring import evaluate_conditions
    from qdmodels.compress.conditions import fp_condition, quant_condition
    from qdmodels.models.tiny import tiny_model

    s = make_sentence(["the", "שלום", "cat", "東京"], sid="e2e")
    item = ParallelItem(item_id="e2e", line=0, document_id="d", language="eng_Latn", source_code="eng", text=s.text)
    loaded = tiny_model("gpt2")
    res = evaluate_conditions(loaded, [item], [fp_condition(), quant_condition("int3-g16-sym")],
                              keep_token_logprobs=True, progress=False)
    full_res, comp_res = list(res.values())
    full, comp = full_res.token_logprobs[0], comp_res.token_logprobs[0]
    rows = word_damage(full, comp, s)
    assert len(rows) == 4 and all(math.isfinite(r.delta_nll) for r in rows)
    in_word = [any(min(e, w.byte_end) > max(b, w.byte_start) for w in s.words) for b, e in full.byte_spans]
    outside = sum(-lp for lp, inw in zip(full.logprobs, in_word) if not inw)
    assert sum(r.nll_full for r in rows) + outside == pytest.approx(full_res.scores[0].nll_sum, rel=1e-9)
    assert any(r.delta_nll != 0.0 for r in rows)  # int3 changes the model
