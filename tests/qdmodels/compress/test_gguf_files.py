"""The GGUF writer and layout reader (qdmodels.compress.gguf_files): round trip, names, storage cost."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, quants

from qdmodels.compress.gguf_files import iter_gguf_weights, read_gguf_layout, write_gguf
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model


@pytest.mark.parametrize("qname", ["Q4_0", "Q8_0", "Q5_1"])
def test_written_file_reads_back_as_gguf_quants_tensor_by_tensor(qname, tmp_path):
    """Oracle: gguf.quants.dequantize(gguf.quants.quantize(w)) of each selected weight (bit-exact), F32 copies of
    everything else; names from transformers' GGUF map; q/k rows permuted as llama.cpp's converter does."""
    lm = tiny_model("llama", seed=2)
    qtype = GGMLQuantizationType[qname]
    layout = write_gguf(lm, tmp_path / "m.gguf", quant_type=qname)
    smap = site_map(lm)
    selected = {smap.sites[n].param_path for n in smap.sites if smap.sites[n].component in ("attention", "mlp")
                and not smap.sites[n].is_bias}
    params = dict(lm.model.named_parameters())
    seen = set()
    for hf, info, w in iter_gguf_weights(tmp_path / "m.gguf", lm):
        x = params[hf].detach().numpy()
        if hf in selected:
            assert info.gguf_type == qname
            ref = quants.dequantize(quants.quantize(x, qtype), qtype).reshape(x.shape)
            assert np.array_equal(w, ref), hf
            assert not np.array_equal(w, x), hf
        else:
            assert info.gguf_type == "F32" and np.array_equal(w, x), hf
        seen.add(hf)
    assert selected <= seen and "lm_head.weight" not in seen  # tied: written once, as token_embd
    assert "output.weight" not in {t.name for t in layout.tensors}
    # the stored q rows are permuted (llama.cpp's converter), not a plain copy
    raw = {t.name: t for t in GGUFReader(tmp_path / "m.gguf").tensors}
    stored_q = quants.dequantize(raw["blk.0.attn_q.weight"].data, qtype).reshape(32, 32)
    assert not np.array_equal(stored_q, quants.dequantize(quants.quantize(params["model.layers.0.self_attn.q_proj.weight"]
                                                                          .detach().numpy(), qtype), qtype))


def test_f32_file_loads_in_transformers_to_identical_weights(tmp_path):
    """Oracle: transformers' own GGUF loader (the reverse permutation included) gives back every weight exactly."""
    from transformers import AutoModelForCausalLM

    lm = tiny_model("llama", seed=4)
    write_gguf(lm, tmp_path / "f32.gguf")
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="f32.gguf", dtype=torch.float32)
    ref = lm.model.state_dict()
    got = back.state_dict()
    assert set(ref) == set(got)
    assert all(torch.equal(ref[k], got[k]) for k in ref), [k for k in ref if not torch.equal(ref[k], got[k])]


def test_bits_per_weight_of_q4_0_and_q8_0_are_measured_from_the_file(tmp_path):
    lm = tiny_model("llama")
    for qname, bpw in (("Q4_0", 4.5), ("Q8_0", 8.5)):
        layout = write_gguf(lm, tmp_path / f"{qname}.gguf", quant_type=qname)
        block, nbytes = GGML_QUANT_SIZES[GGMLQuantizationType[qname]]
        q = [t for t in layout.tensors if t.gguf_type == qname]
        assert len(q) == 14 and all(t.bits_per_weight == bpw == nbytes * 8 / block for t in q)
        assert all(t.n_bytes == t.n_elements // block * nbytes for t in q)
        assert layout.tensor("token_embd.weight").bits_per_weight == 32.0
        assert layout.by_layer()[1]["attn.q_proj"] == qname
        recs = layout.to_records(lm.ref)
        assert {r.attributes["scope"] for r in recs} == {"gguf_tensor", "gguf_file"}
        assert layout.to_frame()["bits_per_weight"].tolist() == [t.bits_per_weight for t in layout.tensors]


def test_protection_and_overrides_select_the_tensors(tmp_path):
    lm = tiny_model("llama")
    layout = write_gguf(lm, tmp_path / "p.gguf", quant_type="Q4_0", plan="layers=1",
                        site_types={"layers.0.mlp.down_proj": "Q8_0"})
    by = layout.by_layer()
    assert set(by[1].values()) == {"F32"}
    assert by[0]["mlp.down_proj"] == "Q8_0" and by[0]["attn.q_proj"] == "Q4_0"


def test_refusals(tmp_path):
    lm = tiny_model("llama")
    with pytest.raises(KeyError, match="not a GGML tensor type"):
        write_gguf(lm, tmp_path / "x.gguf", quant_type="Q4_O")
    with pytest.raises(ValueError, match="not a multiple of the TQ2_0 block of 256"):
        write_gguf(lm, tmp_path / "x.gguf", quant_type="TQ2_0")
    with pytest.raises(ValueError, match="`fp_type` must be one of"):
        write_gguf(lm, tmp_path / "x.gguf", fp_type="Q8_0")
    with pytest.raises(ValueError, match="Llama models only"):
        write_gguf(tiny_model("gpt2"), tmp_path / "x.gguf")
    assert not (tmp_path / "x.gguf").exists()
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        read_gguf_layout(tmp_path / "none.gguf")


def test_cli_gguf_layout_writes_one_record_per_tensor(tmp_path):
    from typer.testing import CliRunner

    from qdmodels.cli.main import app
    from qdstats.records import read_records

    write_gguf(tiny_model("llama"), tmp_path / "m.gguf", quant_type="Q4_0")
    out = tmp_path / "layout.jsonl"
    res = CliRunner().invoke(app, ["weights", "--gguf-layout", str(tmp_path / "m.gguf"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    recs = read_records(out)
    tensors = [r for r in recs if r.attributes["scope"] == "gguf_tensor"]
    assert len(tensors) == 20 and {r.attributes["gguf_type"] for r in tensors} == {"Q4_0", "F32"}
    q = next(r for r in tensors if r.site == "layers.1.attn.q_proj")
    assert q.value == 4.5 and q.attributes["layer"] == 1 and q.attributes["gguf_name"] == "blk.1.attn_q.weight"
    bad = CliRunner().invoke(app, ["weights", "--out", str(tmp_path / "x.jsonl")])
    assert bad.exit_code == 2 and "`--model` is required" in bad.output


def test_source_gguf_of_a_bare_module_from_its_config(tmp_path):
    """A condition's apply() holds only the nn.Module: load_model marks it with its source file and sha256
    (config.qd_source_gguf*), so the llama.cpp path can copy the source's metadata for any architecture."""
    from qdmodels.compress.gguf_files import source_gguf
    from qdmodels.models.zoo import sha256_file

    lm = tiny_model("llama", seed=4)
    path = tmp_path / "f32.gguf"
    write_gguf(lm, path)
    assert source_gguf(lm.model) is None  # not marked
    lm.model.config.qd_source_gguf = str(path)
    lm.model.config.qd_source_gguf_sha256 = sha256_file(path)
    assert source_gguf(lm.model) == path
    lm.model.config.qd_source_gguf_sha256 = "0" * 64  # the file on disk is not the one it was loaded from
    assert source_gguf(lm.model) is None


def test_layer_analyses_record_the_source_types_of_a_gguf_model(tmp_path, tiny_state_guard):
    """A model loaded from a GGUF file: the sweep's records name each layer's types in that file, the protection
    search's protected records name the protected layers' types; a model from a config records none."""
    import dataclasses

    from qdmodels.compress.gguf_files import describe_layer_source_types, site_source_types
    from qdmodels.eval.encoding import text_items
    from qdmodels.eval.sensitivity import search_protection, sweep_layers
    from qdmodels.models.zoo import sha256_file

    lm = tiny_model("llama", seed=5, n_layers=3)
    path = tmp_path / "src.gguf"
    write_gguf(lm, path, quant_type="Q4_0", site_types={"layers.1.mlp.down_proj": "Q8_0"})
    assert site_source_types(lm) is None
    src = dataclasses.replace(lm, ref=lm.ref.model_copy(update={"source": "gguf", "model_id": str(path),
                                                                "sha256": sha256_file(path)}))
    types = site_source_types(src)
    assert types["layers.1.mlp.down_proj"] == "Q8_0" and types["layers.0.mlp.down_proj"] == "Q4_0"
    assert "layers.0.attn.q_proj" in types and not any(k.endswith("norm") for k in types)
    items = text_items({"eng_Latn": ["The dog sleeps.", "A cat runs far.", "Birds sing.", "It rains."]})
    recs = sweep_layers(src, items, "int4-ch-sym", n_resamples=0, progress=False).records
    by = {r.condition["sites"]: r.attributes["source_gguf_types"] for r in recs}
    assert "mlp.down_proj=Q8_0" in by["layers.1"] and "mlp.down_proj=Q4_0" in by["layers.0"]
    assert "attn.q_proj=Q4_0" in by["layers.2"]
    plain = sweep_layers(lm, items, "int4-ch-sym", layers=[0], n_resamples=0, progress=False).records
    assert "source_gguf_types" not in plain[0].attributes
    res = search_protection(src, items[:2], items[2:], "int4-ch-sym", k=1, progress=False)
    prot = [r for r in res.test_records if r.condition["protect"] == res.plan_key]
    other = [r for r in res.test_records if r.condition["protect"] != res.plan_key]
    assert prot and all(r.attributes["source_gguf_types"] == describe_layer_source_types(types, res.layers)
                        for r in prot)
    assert all("source_gguf_types" not in r.attributes for r in other)
