"""Tests for qdmodels.models.loading and qdmodels.models.tiny (tiny models, local directories, GGUF files).

Oracles: save/reload round trips (bit-identical logits in fp32), parameter counts by hand, and for the real
GGUF models a sanity bound: mean next-token NLL on plain English far below the uniform log(vocab).
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qdmodels.models import zoo
from qdmodels.models.loading import (
    LoadedModel,
    count_parameters,
    dequantized_cache_dir,
    load_model,
)
from qdmodels.models.tiny import (
    FAMILIES,
    TINY_TEXT,
    tiny_config,
    tiny_model,
    tiny_tokenizer,
)

_TOK = tiny_tokenizer()


@given(text=st.text(min_size=0, max_size=40))
@settings(max_examples=40)
def test_tiny_tokenizer_roundtrips_any_text(text):
    tok = _TOK
    ids = tok(text, add_special_tokens=False).input_ids
    assert tok.decode(ids) == text
    assert all(0 <= i < len(tok) for i in ids)


def test_tiny_tokenizer_specials_and_scripts():
    tok = tiny_tokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert len(tok) == 512
    for line in TINY_TEXT:  # merges exist for every script: fewer tokens than UTF-8 bytes
        assert len(tok(line).input_ids) < len(line.encode("utf-8"))


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_basics(family, tiny_models):
    lm = tiny_models[family]
    assert isinstance(lm, LoadedModel) and not lm.model.training
    assert lm.ref.source == "config" and lm.ref.model_id == f"tiny:{family}" and lm.ref.family == family
    assert lm.model.config.vocab_size == len(lm.tokenizer)
    assert all(p.dtype == torch.float32 for p in lm.model.parameters())
    ids = lm.tokenizer(["שלום עולם", "hello"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = lm.model(**ids).logits
    assert out.shape == (2, ids.input_ids.shape[1], len(lm.tokenizer)) and torch.isfinite(out).all()


def test_tiny_model_deterministic_and_seeded():
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    a, b, c = tiny_model("gpt2", seed=0), tiny_model("gpt2", seed=0), tiny_model("gpt2", seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    sa, sb, sc = a.model.state_dict(), b.model.state_dict(), c.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.ref.sha256 == b.ref.sha256 != c.ref.sha256
    assert tiny_model("gpt2", n_layers=3).ref.sha256 != a.ref.sha256


def test_tiny_configs():
    llama = tiny_config("llama")
    assert llama.num_key_value_heads < llama.num_attention_heads  # GQA
    with pytest.raises(ValueError, match="`family` must be one of"):
        tiny_config("gpt3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`n_layers` must be >= 1"):
        tiny_model("gpt2", n_layers=0)


def test_count_parameters_counts_tied_once(tiny_gpt2):
    m = tiny_gpt2.model
    cfg = m.config
    d, v, p, f, L = cfg.n_embd, cfg.vocab_size, cfg.n_positions, cfg.n_inner, cfg.n_layer
    per_block = (d * 3 * d + 3 * d) + (d * d + d) + (d * f + f) + (f * d + d) + 4 * d
    expected = v * d + p * d + L * per_block + 2 * d  # lm_head tied to wte: counted once
    assert count_parameters(m) == expected == tiny_gpt2.ref.n_params
    assert count_parameters(tiny_model("gpt_neox").model) == sum(p.numel() for p in tiny_model("gpt_neox").model.parameters())


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen2"])
def test_local_directory_roundtrip(family, tmp_path, tiny_models):
    lm = tiny_models[family]
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    assert again.ref.source == "local" and again.ref.family == family
    assert again.ref.sha256 == zoo.sha256_file(tmp_path / "model.safetensors")
    assert again.ref.n_params == lm.ref.n_params
    ids = lm.tokenizer("Größere Modelle שלום", return_tensors="pt").input_ids
    assert torch.equal(ids, again.tokenizer("Größere Modelle שלום", return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, again.model(ids).logits)


def test_bfloat16_dtype(tmp_path, tiny_llama):
    tiny_llama.model.save_pretrained(tmp_path)
    tiny_llama.tokenizer.save_pretrained(tmp_path)
    lm = load_model(tmp_path, dtype="bfloat16")
    assert lm.ref.dtype == "bfloat16" and all(p.dtype == torch.bfloat16 for p in lm.model.parameters())


def test_bad_inputs(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="`dtype` must be one of"):
        load_model("x", dtype="float64")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`device` must be one of"):
        load_model("x", device="tpu")
    with pytest.raises(FileNotFoundError, match="GGUF file .* does not exist"):
        load_model(tmp_path / "missing.gguf")
    with pytest.raises(ValueError, match="`revision` applies only to hub ids"):
        load_model("smollm2-135m", revision="main")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="`revision` applies only to hub ids"):
        load_model(tmp_path / "empty", revision="main")
    with pytest.raises((OSError, ValueError)):
        load_model(tmp_path / "empty")
    monkeypatch.setenv("QD_MODEL_DIR", str(tmp_path / "cache"))
    with pytest.raises(zoo.ModelNotFetchedError, match="qd models fetch smollm2-135m"):
        load_model("smollm2-135m")


def test_hub_id_offline_fails_clearly(monkeypatch, tmp_path):
    """Offline by default: an uncached hub id is an OSError from transformers, never a download."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError):
        load_model("HuggingFaceTB/SmolLM2-135M")


def test_hub_snapshot_pinned_to_commit(tmp_path, monkeypatch, tiny_llama):
    """A hub id found in the local cache is pinned to the snapshot's commit hash, not to 'main'."""
    import huggingface_hub.constants as hf_constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--tiny-org--tiny-llama"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    tiny_llama.model.save_pretrained(snap)
    tiny_llama.tokenizer.save_pretrained(snap)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path))
    lm = load_model("tiny-org/tiny-llama")
    assert lm.ref.source == "hub" and lm.ref.revision == commit and lm.ref.model_id == "tiny-org/tiny-llama"
    assert load_model("tiny-org/tiny-llama", revision=commit).ref.revision == commit
    ids = tiny_llama.tokenizer("hello", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(lm.model(ids).logits, tiny_llama.model(ids).logits)


def _sanity(lm: LoadedModel) -> float:
    text = "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome."
    enc = lm.tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = lm.model(**enc).logits[0, :-1].float()
    assert torch.isfinite(logits).all()
    lp = torch.log_softmax(logits, -1).gather(1, enc.input_ids[0, 1:, None])
    return float(-lp.mean())


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_gguf(smollm2):
    ref = smollm2.ref
    assert ref.source == "gguf" and ref.family == "llama" and ref.sha256 == zoo.ZOO["smollm2-135m"].sha256
    assert "dequantized Q4_1 GGUF" in ref.note
    assert 134_000_000 < ref.n_params < 135_000_000  # tied embedding counted once
    assert smollm2.model.lm_head.weight.data_ptr() == smollm2.model.model.embed_tokens.weight.data_ptr()
    nll = _sanity(smollm2)
    # uniform guessing would be log(49152) = 10.8 nats; a working 135M LM is far below
    assert nll < 3.0, nll


@pytest.mark.slow
@pytest.mark.integration
def test_dequantized_cache_equals_direct_gguf_load(smollm2):
    """The safetensors cache of the dequantized GGUF gives the same ref and bit-identical weights and logits as
    dequantizing the GGUF directly (oracle: transformers' GGUF loader; exact equality)."""
    direct = load_model("smollm2-135m", cache_dequantized=False)
    cache = dequantized_cache_dir(direct.ref.sha256, "float32")
    if not (cache / "COMPLETE").is_file():  # written when the fixture loaded the model, unless read-only
        pytest.skip(f"no dequantized cache at {cache} (read-only model cache?)")
    cached = load_model("smollm2-135m")
    assert cached.ref == direct.ref == smollm2.ref
    sd_a, sd_b = direct.model.state_dict(), cached.model.state_dict()
    assert set(sd_a) == set(sd_b) and all(torch.equal(sd_a[k], sd_b[k]) for k in sd_a)
    assert cached.model.lm_head.weight.data_ptr() == cached.model.model.embed_tokens.weight.data_ptr()
    text = "שלום עולם, 你好, 안녕하세요"
    ids = direct.tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(ids, cached.tokenizer(text, return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(direct.model(ids).logits, cached.model(ids).logits)
    # the cached weights may be file-backed (from_pretrained maps safetensors): writing to them in place, as the
    # quantizer does, must neither fail nor reach the cache file or a later load
    w = cached.model.model.layers[0].mlp.down_proj.weight
    before = w.detach().clone()
    with torch.no_grad():
        w.mul_(0.5)
    again = load_model("smollm2-135m")
    assert torch.equal(again.model.model.layers[0].mlp.down_proj.weight, before)


@pytest.mark.slow
@pytest.mark.integration
def test_gemma3_gguf():
    """Gemma-3 GGUF through transformers' GGUF support (gemma3 is supported in transformers 5.x)."""
    if os.environ.get("QD_SKIP_REAL_MODELS") or not zoo.model_path("gemma3-270m").is_file():
        pytest.skip("gemma3-270m not in the model cache; run `qd models fetch gemma3-270m`")
    lm = load_model("gemma3-270m")
    assert lm.ref.family == "gemma3" and "Q4_K_M" in lm.ref.note
    assert lm.tokenizer.bos_token == "<bos>"
    nll = _sanity(lm)
    assert nll < math.log(len(lm.tokenizer)) / 3, nll


@pytest.mark.parametrize("name", ["/tmp/qd-no-such-model-dir", "./my-model", "models/a/b", "~/nope"])
def test_a_missing_path_says_not_found(name):
    """Regression: a path that does not exist gave the hub's "Repo id must be in the form ..." message."""
    with pytest.raises(FileNotFoundError, match=r"`name_or_path` .* not found: no such directory"):
        load_model(name)


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match="is a file but not a .gguf file"):
        load_model(str(f))


def test_cli_missing_model_path_exits_2(tmp_path):
    from typer.testing import CliRunner

    from qdmodels.cli.main import app

    res = CliRunner().invoke(app, ["eval", "--model", str(tmp_path / "nope"), "--langs", "eng_Latn",
                                   "--out", str(tmp_path / "r.jsonl")])
    assert res.exit_code == 2, res.output
    assert "not found" in res.output
