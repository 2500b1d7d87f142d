"""llama.cpp presets as conditions (qdmodels.compress.llamacpp): llama.cpp's own layout, exact restore, protection.

The model here has hidden size 256 so that k-quant blocks (256 weights) fit every projection: with the tiny
models' 32/64 inputs llama.cpp would fall back to 32-block types everywhere.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from qdmodels.compress.conditions import as_condition
from qdmodels.compress.gguf import apply_gguf, gguf_roundtrip
from qdmodels.compress.llamacpp import LLAMACPP_ONLY, parse_llamacpp_key
from qdmodels.models.sites import site_map

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None
needs_llama_cpp = pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed "
                                     "(pip install --no-deps llama-cpp-python==0.3.36; builds from source)")


def _model(n_layers=8, seed=0):
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(num_hidden_layers=n_layers, hidden_size=256, intermediate_size=512, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=64, max_position_embeddings=128, vocab_size=512,
                      tie_word_embeddings=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(cfg).eval()


def _use_more_bits(i, n):
    """llama.cpp's rule (src/llama-quant.cpp) for the layers Q4_K_M gives Q6_K in attn_v and ffn_down."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


@needs_llama_cpp
def test_q4_k_m_has_llama_cpps_layout_and_restores_exactly():
    """Oracle for the layout: llama.cpp's use_more_bits rule applied to the order llama.cpp visits tensors (sorted
    names: blk.0, blk.1, blk.2, ... for 8 blocks); the other projections Q4_K. Bits per weight from GGML_QUANT_SIZES."""
    m = _model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    handle = apply_gguf(m, "gguf-q4_k_m")
    rep = handle.report
    assert rep.backend == "llama.cpp" and rep.preset == "Q4_K_M" and rep.verified
    types = {s.site: s.gguf_type for s in rep.sites}
    for i in range(8):
        hi = "Q6_K" if _use_more_bits(i, 8) else "Q4_K"
        assert types[f"layers.{i}.attn.v_proj"] == hi and types[f"layers.{i}.mlp.down_proj"] == hi, i
        assert {types[f"layers.{i}.{k}"] for k in ("attn.q_proj", "attn.k_proj", "attn.o_proj", "mlp.gate_proj",
                                                   "mlp.up_proj")} == {"Q4_K"}
    assert {s.bits_per_weight for s in rep.sites} == {4.5, 6.5625}
    assert rep.layout.tensor("token_embd.weight").gguf_type == "Q6_K"  # tied embedding takes the output's type
    assert all(s.frac_changed > 0.5 for s in rep.sites)
    recs = rep.to_records(None)
    assert any(r.attributes.get("gguf_type") == "Q6_K" for r in recs)
    handle.restore()
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@needs_llama_cpp
@pytest.mark.parametrize(("key", "ref"), [("gguf-lcpp-q8_0", "gguf-q8_0"), ("gguf-lcpp-q4_0", "gguf-q4_0")])
def test_llama_cpp_block_formats_equal_gguf_py_round_trip(key, ref):
    """Oracle: gguf-py's quantize/dequantize of the same weights, bit for bit (llama.cpp's reference quantizer)."""
    m = _model(n_layers=2)
    smap = site_map(m)
    orig = {n: s.param.detach().clone() for n, s in smap.sites.items()}
    with apply_gguf(m, key) as rep:
        assert len(rep.sites) == 14 and {s.gguf_type for s in rep.sites} == {ref[5:].upper()}
        for s in rep.sites:
            assert torch.equal(smap.sites[s.site].param, gguf_roundtrip(orig[s.site], ref)), s.site


@needs_llama_cpp
def test_protected_sites_stay_bit_identical_and_the_layout_does_not_move():
    m = _model()
    smap = site_map(m)
    orig = {n: s.param.detach().clone() for n, s in smap.sites.items()}
    with apply_gguf(m, "gguf-q3_k_m") as full:
        types_full = {s.site: s.gguf_type for s in full.sites}
    with apply_gguf(m, "gguf-q3_k_m", plan="layers=0,7;comp=mlp") as rep:
        kept = [n for n in smap.sites if n.startswith(("layers.0.", "layers.7.")) or ".mlp." in n]
        assert kept and all(torch.equal(smap.sites[n].param, orig[n]) for n in kept)
        assert {s.site for s in rep.sites}.isdisjoint(kept)
        assert all(types_full[s.site] == s.gguf_type for s in rep.sites)  # protection does not shift the preset
        assert any(not torch.equal(smap.sites[s.site].param, orig[s.site]) for s in rep.sites)
    assert all(torch.equal(s.param, orig[n]) for n, s in smap.sites.items())


def test_keys_and_refusals():
    assert parse_llamacpp_key("gguf-q4_k_m") == "q4_k_m" and parse_llamacpp_key("gguf-lcpp-q8_0") == "q8_0"
    assert parse_llamacpp_key("gguf-q4_0") is None and parse_llamacpp_key("int4-g64-sym") is None
    assert {"q4_k_m", "q5_k_m", "q3_k_m", "q2_k", "q6_k"} <= set(LLAMACPP_ONLY)
    with pytest.raises(ValueError, match="needs an importance matrix"):
        as_condition("gguf-iq2_xxs")
    with pytest.raises(KeyError, match="not a llama.cpp preset.*Did you mean"):
        as_condition("gguf-lcpp-q4_k_n")
    with pytest.raises(ValueError, match="llama.cpp makes k-quants only through a preset"):
        as_condition("gguf-q4_k")
    cond = as_condition(("gguf-q4_k_m", "layers=0"))
    assert cond.condition == {"scheme": "gguf-q4_k_m", "protect": "layers=0", "prune": "none", "backend": "llama.cpp"}


def test_missing_package_gives_install_instructions(monkeypatch):
    """With llama_cpp absent (import blocked), the condition's plan-time check and apply say how to install it."""
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    m = _model(n_layers=1)
    cond = as_condition("gguf-q4_k_m")
    with pytest.raises(ImportError, match="pip install --no-deps llama-cpp-python"):
        cond.check(m)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ImportError, match="llama-cpp-python"):
        apply_gguf(m, "gguf-q5_k_m")
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
