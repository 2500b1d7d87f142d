"""Token byte spans: exact spans on built tokenizers, tiling properties, characters split inside their bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from qdmodels.tokenization import token_byte_spans
from qdmodels.tokenization.offsets import byte_level_alphabet, token_bytes

# text without surrogates (not encodable) and without U+2581 (SentencePiece's space symbol)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\u2581"), max_size=40)


def test_alphabet_matches_tokenizers_library():
    """Oracle: tokenizers' own ByteLevel alphabet (same 256 symbols)."""
    assert set(byte_level_alphabet()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert byte_level_alphabet()["Ġ"] == 32 and sorted(byte_level_alphabet().values()) == list(range(256))


def test_wordlevel_offsets_method(wordlevel):
    ts = token_byte_spans(wordlevel, "the cat sat.")
    assert ts.method == "offsets"
    assert ts.byte_spans == ((0, 3), (4, 7), (8, 11), (11, 12))
    assert ts.boundaries() == (4, 8, 11)


def test_byte_level_hebrew_letter_split(byte_alphabet):
    """'שלום' is 8 bytes; one token per byte, so every other boundary is inside a letter."""
    ts = token_byte_spans(byte_alphabet, "שלום")
    assert ts.method == "bytes"
    assert ts.byte_spans == tuple((i, i + 1) for i in range(8))
    assert token_bytes(byte_alphabet, ts.tokens[0]) == "ש".encode()[:1]


def test_sentencepiece_dummy_prefix_and_byte_fallback(sp_fallback):
    # "a ל": dummy prefix "▁a", then "▁" and the two byte-fallback pieces of ל (not in the vocabulary)
    ts = token_byte_spans(sp_fallback, "a ל")
    assert ts.tokens == ("▁a", "▁", "<0xD7>", "<0x9C>")
    assert ts.byte_spans == ((0, 1), (1, 2), (2, 3), (3, 4))
    assert ts.method == "bytes"


def test_text_must_be_str(wordlevel):
    with pytest.raises(TypeError, match="`text` must be a str"):
        token_byte_spans(wordlevel, b"abc")


@given(TEXT)
def test_byte_level_spans_tile_text(text):
    from tokenizers import Tokenizer, decoders, models

    tok = Tokenizer(models.BPE({c: b for c, b in byte_level_alphabet().items()}, []))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    ts = token_byte_spans(tok, text)
    raw = text.encode("utf-8")
    assert len(ts) == len(raw)
    assert [s for s, _ in ts.byte_spans] == list(range(len(raw)))


@given(TEXT)
def test_sentencepiece_spans_tile_and_decode(sp_fallback, text):
    ts = token_byte_spans(sp_fallback, text)
    raw = text.encode("utf-8")
    pos = 0
    for (s, e), t in zip(ts.byte_spans, ts.tokens):
        assert s == pos
        piece = token_bytes(sp_fallback, t)
        assert raw[s:e] == piece[len(piece) - (e - s):]  # only the dummy-prefix space is dropped
        pos = e
    assert pos == len(raw)


@pytest.mark.integration
@given(TEXT)
def test_gpt2_spans_are_the_tokens_bytes(gpt2, text):
    """Property on the real GPT-2 vocabulary: spans tile the text and each slice is the token's bytes."""
    ts = token_byte_spans(gpt2, text)
    raw = text.encode("utf-8")
    assert ts.method == "bytes"
    assert b"".join(raw[s:e] for s, e in ts.byte_spans) == raw
    assert all(raw[s:e] == token_bytes(gpt2, t) for (s, e), t in zip(ts.byte_spans, ts.tokens))


@pytest.mark.integration
def test_gpt2_splits_cjk_inside_character(gpt2):
    """huggingface/tokenizers#1162: 東 -> [30266, 109]; spans must be the character's bytes 0-2 and 2-3."""
    ts = token_byte_spans(gpt2, "東")
    assert ts.ids == (30266, 109)
    assert ts.byte_spans == ((0, 2), (2, 3))
