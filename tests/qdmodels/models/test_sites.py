"""Tests for qdmodels.models.sites on tiny random configs of every supported family.

Oracle: the families' own module trees (transformers 5.x): the expected native paths below are written out by
hand from the modelling code, so a renamed/moved module makes these tests fail.
"""

from __future__ import annotations

import pytest
import torch

from qdmodels.models.sites import SUPPORTED_FAMILIES, site_map
from qdmodels.models.tiny import FAMILIES, tiny_model
from qdstats.validation import UnknownNameError

# canonical site -> native parameter path, layer 0, per family (hand-written oracle)
EXPECTED = {
    "gpt2": {
        "embed_tokens": "transformer.wte.weight", "embed_positions": "transformer.wpe.weight",
        "layers.0.attn.qkv_proj": "transformer.h.0.attn.c_attn.weight",
        "layers.0.attn.qkv_proj.bias": "transformer.h.0.attn.c_attn.bias",
        "layers.0.attn.o_proj": "transformer.h.0.attn.c_proj.weight",
        "layers.0.mlp.up_proj": "transformer.h.0.mlp.c_fc.weight",
        "layers.0.mlp.down_proj": "transformer.h.0.mlp.c_proj.weight",
        "layers.0.norm.input": "transformer.h.0.ln_1.weight",
        "layers.0.norm.post_attention": "transformer.h.0.ln_2.weight",
        "final_norm": "transformer.ln_f.weight", "lm_head": "lm_head.weight",
    },
    "llama": {
        "embed_tokens": "model.embed_tokens.weight",
        "layers.0.attn.q_proj": "model.layers.0.self_attn.q_proj.weight",
        "layers.0.attn.k_proj": "model.layers.0.self_attn.k_proj.weight",
        "layers.0.attn.v_proj": "model.layers.0.self_attn.v_proj.weight",
        "layers.0.attn.o_proj": "model.layers.0.self_attn.o_proj.weight",
        "layers.0.mlp.gate_proj": "model.layers.0.mlp.gate_proj.weight",
        "layers.0.mlp.up_proj": "model.layers.0.mlp.up_proj.weight",
        "layers.0.mlp.down_proj": "model.layers.0.mlp.down_proj.weight",
        "layers.0.norm.input": "model.layers.0.input_layernorm.weight",
        "layers.0.norm.post_attention": "model.layers.0.post_attention_layernorm.weight",
        "final_norm": "model.norm.weight", "lm_head": "lm_head.weight",
    },
    "gemma3": {
        "layers.0.norm.pre_feedforward": "model.layers.0.pre_feedforward_layernorm.weight",
        "layers.0.norm.post_feedforward": "model.layers.0.post_feedforward_layernorm.weight",
        "layers.0.norm.q": "model.layers.0.self_attn.q_norm.weight",
        "layers.0.norm.k": "model.layers.0.self_attn.k_norm.weight",
        "layers.0.mlp.gate_proj": "model.layers.0.mlp.gate_proj.weight",
        "final_norm": "model.norm.weight",
    },
    "opt": {
        "embed_tokens": "model.decoder.embed_tokens.weight", "embed_positions": "model.decoder.embed_positions.weight",
        "layers.0.attn.o_proj": "model.decoder.layers.0.self_attn.out_proj.weight",
        "layers.0.attn.q_proj.bias": "model.decoder.layers.0.self_attn.q_proj.bias",
        "layers.0.mlp.up_proj": "model.decoder.layers.0.fc1.weight",
        "layers.0.mlp.down_proj": "model.decoder.layers.0.fc2.weight",
        "layers.0.norm.input": "model.decoder.layers.0.self_attn_layer_norm.weight",
        "layers.0.norm.post_attention": "model.decoder.layers.0.final_layer_norm.weight",
        "final_norm": "model.decoder.final_layer_norm.weight",
    },
    "bloom": {
        "embed_tokens": "transformer.word_embeddings.weight",
        "embed_norm": "transformer.word_embeddings_layernorm.weight",
        "layers.0.attn.qkv_proj": "transformer.h.0.self_attention.query_key_value.weight",
        "layers.0.attn.o_proj": "transformer.h.0.self_attention.dense.weight",
        "layers.0.mlp.up_proj": "transformer.h.0.mlp.dense_h_to_4h.weight",
        "layers.0.mlp.down_proj.bias": "transformer.h.0.mlp.dense_4h_to_h.bias",
        "final_norm": "transformer.ln_f.weight",
    },
    "gpt_neox": {
        "embed_tokens": "gpt_neox.embed_in.weight",
        "layers.0.attn.qkv_proj": "gpt_neox.layers.0.attention.query_key_value.weight",
        "layers.0.attn.o_proj": "gpt_neox.layers.0.attention.dense.weight",
        "layers.0.mlp.up_proj": "gpt_neox.layers.0.mlp.dense_h_to_4h.weight",
        "layers.0.mlp.down_proj": "gpt_neox.layers.0.mlp.dense_4h_to_h.weight",
        "final_norm": "gpt_neox.final_layer_norm.weight", "lm_head": "embed_out.weight",
    },
    "qwen2": {
        "layers.0.attn.q_proj.bias": "model.layers.0.self_attn.q_proj.bias",
        "layers.0.attn.k_proj.bias": "model.layers.0.self_attn.k_proj.bias",
        "layers.0.attn.v_proj.bias": "model.layers.0.self_attn.v_proj.bias",
    },
}
TIED = {"gpt2": True, "llama": True, "gemma3": True, "opt": True, "bloom": True, "gpt_neox": False, "qwen2": False}


def test_families_listed():
    assert set(FAMILIES) == set(SUPPORTED_FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_canonical_names_map_to_native_paths(family, tiny_models):
    lm = tiny_models[family]
    sm = site_map(lm)
    assert sm.family == family and sm.n_layers == 2 and len(sm.layers) == 2
    params = dict(lm.model.named_parameters(remove_duplicate=False))
    for canon, native in EXPECTED[family].items():
        if family == "gpt_neox" and native == "embed_out.weight":
            native = "embed_out.weight" if "embed_out.weight" in params else "lm_head.weight"
        site = sm[canon]
        assert site.param is params[native], (canon, native)
        assert lm.model.get_submodule(site.path) is site.module
        assert site.param_path == native


@pytest.mark.parametrize("family", FAMILIES)
def test_every_parameter_covered_once(family, tiny_models):
    """Each parameter tensor (tied ones by storage) belongs to exactly one site or one tied group."""
    lm = tiny_models[family]
    sm = site_map(lm)
    ptrs = {}
    for s in sm.sites.values():
        ptrs.setdefault(s.param.data_ptr(), []).append(s.name)
    model_ptrs = {p.data_ptr() for p in lm.model.parameters()}
    assert set(ptrs) == model_ptrs
    multi = {tuple(v) for v in ptrs.values() if len(v) > 1}
    assert multi == set(sm.tied_groups)
    assert (sm.tied_groups == (("embed_tokens", "lm_head"),)) == TIED[family]
    # component/layer bookkeeping
    for s in sm.sites.values():
        if s.name.startswith("layers."):
            assert s.layer == int(s.name.split(".")[1]) and s.name == f"layers.{s.layer}.{s.kind}" + (".bias" if s.is_bias else "")
        else:
            assert s.layer is None
        assert s.is_bias == s.name.endswith(".bias") == (s.param_name == "bias")
        if s.param.ndim == 2:
            assert s.weight_layout in ("out_in", "in_out")
        else:
            assert s.weight_layout is None


def test_conv1d_layout_and_fused(tiny_gpt2):
    sm = site_map(tiny_gpt2)
    cfg = tiny_gpt2.model.config
    qkv = sm["layers.0.attn.qkv_proj"]
    assert type(qkv.module).__name__ == "Conv1D" and qkv.weight_layout == "in_out"
    assert qkv.shape == (cfg.n_embd, 3 * cfg.n_embd) and qkv.fused == ("q", "k", "v")
    assert sm["layers.0.mlp.up_proj"].weight_layout == "in_out"
    assert sm["embed_tokens"].weight_layout == "out_in" and sm["lm_head"].weight_layout == "out_in"
    # Linear layouts elsewhere
    assert site_map(tiny_model("bloom"))["layers.0.attn.qkv_proj"].weight_layout == "out_in"


def test_qwen2_biases_only_on_qkv(tiny_models):
    sm = site_map(tiny_models["qwen2"])
    biases = [n for n in sm.names if n.endswith(".bias")]
    assert biases == [f"layers.{i}.attn.{k}_proj.bias" for i in range(2) for k in "qkv"]


def test_llama_gqa_shapes(tiny_llama):
    sm = site_map(tiny_llama)
    cfg = tiny_llama.model.config
    assert cfg.num_key_value_heads < cfg.num_attention_heads
    assert sm["layers.0.attn.k_proj"].shape == (cfg.num_key_value_heads * cfg.head_dim, cfg.hidden_size)


def test_select_filters(tiny_llama):
    sm = site_map(tiny_llama)
    assert sm.select(layers=[1], kinds=["down_proj"]) == ["layers.1.mlp.down_proj"]
    assert sm.select(layers=[-1], kinds=["mlp.down_proj"]) == ["layers.1.mlp.down_proj"]
    assert sm.select(components=["attention"], layers=[0]) == [f"layers.0.attn.{k}_proj" for k in "qkvo"]
    assert "final_norm" in sm.select(include_norms=True) and "final_norm" not in sm.select()
    assert sm.select(components=["norm"], layers=[0]) == ["layers.0.norm.input", "layers.0.norm.post_attention"]
    assert sm.select(include_embeddings=True, include_lm_head=True)[0] == "embed_tokens"
    assert sm.select(include_lm_head=True)[-1] == "lm_head"
    with pytest.raises(ValueError, match=r"`layers` must hold block indices in \[0, 2\); got 2"):
        sm.select(layers=[2])
    with pytest.raises(ValueError, match="`components` must be one of"):
        sm.select(components=["attn"])


def test_match_prefix_respects_dots():
    sm = site_map(tiny_model("gpt2", n_layers=11))
    hits = sm.match("layers.1")
    assert hits and all(h.startswith("layers.1.") for h in hits)
    assert not any(h.startswith("layers.10") for h in hits)
    assert sm.match("layers.3.mlp.up_proj") == ["layers.3.mlp.up_proj"]  # exact name: not its bias
    assert sm.match("layers.3.mlp") == ["layers.3.mlp.up_proj", "layers.3.mlp.up_proj.bias",
                                        "layers.3.mlp.down_proj", "layers.3.mlp.down_proj.bias"]
    assert sm.match("layers.*.attn.o_proj") == [f"layers.{i}.attn.o_proj" for i in range(11)]
    assert sm.match(["lm_head", "embed_tokens"]) == ["embed_tokens", "lm_head"]  # model order
    with pytest.raises(UnknownNameError, match="matches no site"):
        sm.match("layers.11")


def test_unknown_site_did_you_mean(tiny_llama):
    sm = site_map(tiny_llama)
    with pytest.raises(UnknownNameError, match="Did you mean.*'layers.0.mlp.down_proj'"):
        sm.get("layers.0.mlp.dwn_proj")
    assert sm.tied_with("lm_head") == ("embed_tokens",)
    assert sm.tied_with("layers.0.attn.q_proj") == ()


def test_unsupported_model_and_bad_type():
    class Cfg:
        model_type = "t5"

    class M(torch.nn.Module):
        config = Cfg()

    with pytest.raises(ValueError, match="config.model_type 't5'; supported"):
        site_map(M())
    with pytest.raises(TypeError, match="`model` must be a torch.nn.Module or a LoadedModel"):
        site_map("gpt2")


@pytest.mark.slow
@pytest.mark.integration
def test_smollm2_sites(smollm2):
    sm = site_map(smollm2)
    assert sm.family == "llama" and sm.n_layers == 30
    assert sm.tied_groups == (("embed_tokens", "lm_head"),)
    assert len(sm.select()) == 30 * 7
    assert sm["layers.29.mlp.down_proj"].shape == (576, 1536)
