"""Fixtures for tokenization tests: tokenizers built in the test (no hub), and the shared data directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from qdmodels.tokenization import load_tokenizer
from qdmodels.tokenization.offsets import byte_level_alphabet


def _data_dir() -> Path | None:
    env = os.environ.get("QD_DATA_DIR")
    cands = [Path(env)] if env else [Path(__file__).resolve().parents[3].parent / "shared" / "data"]
    for c in cands:
        if c.is_dir():
            return c
    return None


DATA = _data_dir()


def need(relpath: str) -> Path:
    """Path under the data dir, or skip the test with the reason."""
    if DATA is None or not (DATA / relpath).exists():
        pytest.skip(f"real data not available: {relpath} (set QD_DATA_DIR)")
    return DATA / relpath


@pytest.fixture(scope="session")
def need_data():
    """The :func:`need` helper as a fixture: ``need_data('tokenizers/...')`` -> path, or skip."""
    return need


@pytest.fixture(scope="session")
def wordlevel():
    """WordLevel over whitespace/punctuation words; unknown words -> [UNK]."""
    vocab = {"[UNK]": 0, "the": 1, "cat": 2, "sat": 3, ".": 4, "un": 5, "do": 6}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return load_tokenizer(tok, name="toy-wordlevel")


@pytest.fixture(scope="session")
def toy_bpe():
    """Char-level BPE with known merges: un+do, re+do, walk+ed ... (no byte level)."""
    chars = list("abcdefghijklmnopqrstuvwxyz")
    vocab = {c: i for i, c in enumerate(chars)}
    merges = [("u", "n"), ("d", "o"), ("r", "e"), ("w", "a"), ("l", "k"), ("wa", "lk"), ("e", "d")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["[UNK]"] = len(vocab)
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return load_tokenizer(tok, name="toy-bpe")


@pytest.fixture(scope="session")
def byte_alphabet():
    """Byte-level tokenizer whose vocabulary is exactly the 256 byte symbols: one token per UTF-8 byte."""
    alpha = byte_level_alphabet()
    vocab = {ch: b for ch, b in alpha.items()}
    tok = Tokenizer(models.BPE(vocab, []))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return load_tokenizer(tok, name="toy-bytes")


@pytest.fixture(scope="session")
def sp_fallback():
    """SentencePiece-style BPE (Llama-2 layout): dummy prefix, '▁' for space, <0xNN> byte fallback."""
    vocab = {"<unk>": 0}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for p in ["▁", "a", "b", "▁a", "▁b", "ש"]:
        vocab[p] = len(vocab)
    merges = [("▁", "a"), ("▁", "b")]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    return load_tokenizer(tok, name="toy-sp")


_SHIPPED: dict = {}


@pytest.fixture(scope="session")
def shipped():
    """``shipped('gemma3')`` -> the LoadedTokenizer from the data dir, loaded once per session (or skip)."""
    from qdmodels.tokenization.loading import KNOWN_TOKENIZERS

    def get(name: str):
        if name not in _SHIPPED:
            d = need(f"tokenizers/{KNOWN_TOKENIZERS[name]}")
            _SHIPPED[name] = load_tokenizer(d, name=name)
        return _SHIPPED[name]

    return get


@pytest.fixture(scope="session")
def gpt2(shipped):
    return shipped("gpt2")
