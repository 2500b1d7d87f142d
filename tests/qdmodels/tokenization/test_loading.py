"""Loading tokenizers offline: sources, kinds, pinning."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer, models

from qdmodels.tokenization import load_tokenizer
from qdmodels.tokenization.loading import KNOWN_TOKENIZERS


def test_kinds_of_built_tokenizers(wordlevel, byte_alphabet, sp_fallback):
    assert (wordlevel.kind, wordlevel.unk_id, wordlevel.byte_fallback) == ("other", 0, False)
    assert byte_alphabet.kind == "byte_level"
    assert (sp_fallback.kind, sp_fallback.byte_fallback, sp_fallback.unk_id) == ("sentencepiece", True, 0)


def test_ref_is_local_and_pinned_by_content(wordlevel):
    assert wordlevel.ref.source == "local" and len(wordlevel.ref.sha256) == 64
    again = load_tokenizer(Tokenizer.from_str(wordlevel.tokenizer.to_str()), name="toy-wordlevel")
    assert again.ref.sha256 == wordlevel.ref.sha256
    other = load_tokenizer(Tokenizer(models.WordLevel({"x": 0, "[UNK]": 1}, unk_token="[UNK]")))
    assert other.ref.sha256 != wordlevel.ref.sha256


def test_rename_keeps_hash(wordlevel):
    t = load_tokenizer(wordlevel, name="renamed")
    assert t.name == "renamed" and t.ref.model_id == "renamed" and t.ref.sha256 == wordlevel.ref.sha256


def test_file_and_directory(tmp_path, wordlevel):
    f = tmp_path / "tok" / "tokenizer.json"
    f.parent.mkdir()
    wordlevel.tokenizer.save(str(f))
    a, b = load_tokenizer(f), load_tokenizer(f.parent)
    assert a.name == b.name == "tok"
    import hashlib

    assert a.ref.sha256 == hashlib.sha256(f.read_bytes()).hexdigest() == b.ref.sha256


def test_bad_sources(tmp_path):
    with pytest.raises(KeyError, match=r"`source` must be .*Did you mean 'gpt2'"):
        load_tokenizer("gtp2")
    with pytest.raises(FileNotFoundError, match="neither tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(TypeError, match="`source` must be a path"):
        load_tokenizer(3.5)


def test_transformers_fast_tokenizer_object(wordlevel):
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(wordlevel.tokenizer.to_str()))
    t = load_tokenizer(fast, name="fast")
    # transformers adds a no-op post-processor, so the hash differs from the bare object's; it is stable
    assert t.kind == "other" and t.ref.sha256 == load_tokenizer(fast).ref.sha256
    assert t.tokenizer.encode("the cat", add_special_tokens=False).ids == [1, 2]


@pytest.mark.integration
def test_gpt2_from_encoder_files_matches_openai_ids(gpt2):
    """Oracle: OpenAI GPT-2 encoder ids for 'Hello, world!' (also in the data's SOURCE.txt)."""
    assert gpt2.tokenizer.encode("Hello, world!").ids == [15496, 11, 995, 0]
    assert gpt2.vocab_size == 50257 and gpt2.kind == "byte_level"


@pytest.mark.integration
@pytest.mark.parametrize("name,kind,size", [("llama2", "sentencepiece", 32000), ("llama3", "byte_level", 128256),
                                            ("qwen3", "byte_level", 151669), ("gemma3", "sentencepiece", 262145)])
def test_shipped_tokenizers(shipped, name, kind, size):
    t = shipped(name)
    assert (t.name, t.kind, t.vocab_size) == (name, kind, size)


@pytest.mark.integration
def test_short_name_resolves_in_data_dir(monkeypatch, need_data):
    path = need_data(f"tokenizers/{KNOWN_TOKENIZERS['gpt2']}/encoder.json")
    monkeypatch.setenv("QD_DATA_DIR", str(path.parents[2]))
    t = load_tokenizer("gpt2")
    assert t.name == "gpt2" and t.source.endswith("vocab.bpe")


@pytest.mark.parametrize("module", ["loading", "offsets", "parity", "alignment", "attribution"])
def test_docstring_examples(module):
    """The numpydoc Examples of every module run and give the printed values."""
    import doctest
    import importlib

    mod = importlib.import_module(f"qdmodels.tokenization.{module}")
    res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0 and res.attempted > 0


def test_data_dir_from_env(monkeypatch, tmp_path):
    from qdmodels.tokenization.loading import data_dir

    monkeypatch.setenv("QD_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.setenv("QD_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="`QD_DATA_DIR` points to"):
        data_dir()
