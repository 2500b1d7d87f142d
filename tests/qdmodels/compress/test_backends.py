"""PyTorch quantization backends as conditions: each library's own round trip, storage cost, protection, restore."""

from __future__ import annotations

import importlib

import pytest
import torch

from qdmodels.compress.backends import apply_backend, backend_roundtrip, skip_modules
from qdmodels.compress.conditions import as_condition, canonical_quant_key
from qdmodels.compress.scheme import ProtectionPlan
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model
from qdstats.validation import UnknownNameError


def _ref_torchao_int8(w):
    from torchao.quantization import PerRow
    from torchao.quantization.quantize_.workflows.int8.int8_tensor import Int8Tensor

    return Int8Tensor.from_hp(w, granularity=PerRow()).dequantize()


def _ref_torchao_int4_g32(w):
    """torchao's tinygemm primitives (the qparams and dequantization its CPU/CUDA int4 kernels use)."""
    from torchao.quantization.quant_primitives import (
        MappingType,
        _choose_qparams_affine_tinygemm,
        _dequantize_affine_tinygemm,
        _quantize_affine_tinygemm,
    )

    bs = [1, 32]
    s, z = _choose_qparams_affine_tinygemm(w, MappingType.ASYMMETRIC, bs, torch.int32, 0, 15, 1e-6, None, w.dtype)
    q = _quantize_affine_tinygemm(w, bs, s, z, torch.int32, 0, 15)
    return _dequantize_affine_tinygemm(q, bs, s, z, torch.int32, 0, 15, output_dtype=w.dtype)


def test_torchao_int4_weight_is_what_the_cpu_kernel_multiplies_by():
    """Oracle: torchao's CPU int4 kernel itself, read back with an identity input (F.linear(I, W_q) = W_hat^T)."""
    pytest.importorskip("torchao")
    from torchao.prototype.quantization.int4 import PrototypeInt4WeightOnlyConfig
    from torchao.quantization import quantize_

    w = torch.randn(48, 128, generator=torch.Generator().manual_seed(0))
    lin = torch.nn.Linear(128, 48, bias=False)
    lin.weight.data.copy_(w)
    quantize_(lin, PrototypeInt4WeightOnlyConfig(group_size=64, set_inductor_config=False))
    with torch.no_grad():
        kernel = torch.nn.functional.linear(torch.eye(128), lin.weight).t()
    got, _ = backend_roundtrip(w, "torchao-int4wo-g64")
    torch.testing.assert_close(got, kernel, rtol=0, atol=1e-6)
    assert not torch.equal(got, w)


def _ref_quanto_qint8(w):
    from optimum.quanto import qint8, quantize_weight
    from optimum.quanto.tensor.optimizers import AbsmaxOptimizer

    scale = AbsmaxOptimizer()(w, qtype=qint8, axis=0)
    return quantize_weight(w, qtype=qint8, axis=0, scale=scale).dequantize()


def _ref_hqq_4bit_g16(w):
    from hqq.core.quantize import Quantizer

    wq, meta = Quantizer.quantize(w, nbits=4, group_size=16, optimize=True, round_zero=True, axis=1, compute_dtype=w.dtype,
                                  device="cpu")
    return Quantizer.dequantize(wq, meta).reshape(w.shape)


def _ref_bnb_nf4(w):
    import bitsandbytes.functional as F

    q, st = F.quantize_4bit(w, blocksize=64, quant_type="nf4")
    return F.dequantize_4bit(q, st).reshape(w.shape)


def _ref_bnb_int8(w):
    import bitsandbytes.functional as F

    q, row, _ = F.int8_vectorwise_quant(w)
    return F.int8_vectorwise_dequant(q, row)


# key -> (import name, reference round trip, tolerance: 0 = bit-identical)
CASES = {
    "torchao-int8wo": ("torchao", _ref_torchao_int8, 0.0),
    "torchao-int4wo-g32": ("torchao", _ref_torchao_int4_g32, 1e-6),
    "quanto-qint8": ("optimum.quanto", _ref_quanto_qint8, 0.0),
    "hqq-4bit-g16": ("hqq", _ref_hqq_4bit_g16, 0.0),
    "bnb-nf4": ("bitsandbytes", _ref_bnb_nf4, 0.0),
    "bnb-int8": ("bitsandbytes", _ref_bnb_int8, 0.0),
}


@pytest.mark.parametrize("key", list(CASES))
def test_condition_equals_the_library_round_trip_and_restore_is_exact(key):
    """Oracle: the library's own quantize -> dequantize, called directly on each original weight (torchao int4:
    its tinygemm primitives, against the weight read back through the CPU kernel; atol 1e-6 for the kernel's
    float arithmetic)."""
    mod, ref, atol = CASES[key]
    pytest.importorskip(mod)
    lm = tiny_model("llama", seed=3)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    smap = site_map(lm)
    handle = apply_backend(lm, key, backup="memory")
    assert len(handle.report.sites) == 14 and handle.report.verified
    for s in handle.report.sites:
        expected = ref(before_param(before, lm, s.site))
        got = smap.sites[s.site].param.detach()
        if atol == 0:
            assert torch.equal(got, expected), s.site
        else:
            torch.testing.assert_close(got, expected, rtol=0, atol=atol, msg=s.site)
        assert not torch.equal(got, before_param(before, lm, s.site)), s.site
    handle.restore()
    assert all(torch.equal(before[n], p) for n, p in lm.model.named_parameters())


def before_param(before, lm, site):
    p = site_map(lm).sites[site].param
    name = next(n for n, q in lm.model.named_parameters() if q is p)
    return before[name]


@pytest.mark.parametrize("key, closed_form", [
    # int8 per row: 8-bit code + one fp32 scale and one int8 zero point per row of `in` weights
    ("torchao-int8wo", lambda n_in, dt: 8 + (32 + 8) / n_in),
    # int4 tinygemm groups of 32: 4-bit code + scale and zero in the weight dtype per group
    ("torchao-int4wo-g32", lambda n_in, dt: 4 + 2 * dt / 32),
    ("quanto-qint8", lambda n_in, dt: 8 + 32 / n_in),  # int8 + fp32 scale per row
    ("hqq-4bit-g16", lambda n_in, dt: 4 + 2 * dt / 16),  # packed 4-bit + scale and zero per group (compute dtype)
    ("bnb-nf4", lambda n_in, dt: 4 + 32 / 64),  # packed 4-bit + fp32 absmax per block of 64
    ("bnb-int8", lambda n_in, dt: 8 + 32 / n_in),  # int8 + fp32 row absmax
])
def test_bits_per_weight_match_the_closed_form(key, closed_form):
    pytest.importorskip(CASES[key][0])
    lm = tiny_model("llama")
    smap = site_map(lm)
    with apply_backend(lm, key, backup="memory") as rep:
        for s in rep.sites:
            n_in = smap.sites[s.site].param.shape[1]
            assert s.bits_per_weight == pytest.approx(closed_form(n_in, 32), rel=1e-12), s.site
        n_q = sum(s.numel for s in rep.sites)
        assert rep.bits_per_weight == pytest.approx(sum(s.bits_per_weight * s.numel for s in rep.sites) / n_q)
        assert rep.bits_per_weight < rep.model_bits_per_weight < 16 or rep.bits_per_weight > 16


def test_bnb_double_quant_and_quanto_qint4_storage():
    """Double-quantized absmax: 8-bit absmax per block of 64 + an fp32 absmax per 256 blocks + one fp32 offset."""
    pytest.importorskip("bitsandbytes")
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(0))
    _, bpw = backend_roundtrip(w, "bnb-nf4-dq")
    n = w.numel()
    assert bpw == pytest.approx(4 + 8 / 64 + 32 * (n / 64 / 256) / n + 32 / n, rel=1e-12)
    pytest.importorskip("optimum.quanto")
    w = torch.randn(8, 576, generator=torch.Generator().manual_seed(1))
    _, bpw4 = backend_roundtrip(w, "quanto-qint4")  # quanto picks groups of 96 for a row of 576: fp32 scale + shift
    assert bpw4 == pytest.approx(4 + 64 / 96, rel=1e-12)


@pytest.mark.parametrize("key", ["torchao-int8wo", "bnb-nf4", "hqq-4bit-g16"])
def test_protection_keeps_protected_sites_bit_identical(key):
    pytest.importorskip(CASES[key][0])
    lm = tiny_model("llama", seed=2)
    smap = site_map(lm)
    before = {n: s.param.detach().clone() for n, s in smap.sites.items()}
    plan = ProtectionPlan(layers=(0,), components=("mlp",))
    with apply_backend(lm, key, plan=plan, backup="memory") as rep:
        done = {s.site for s in rep.sites}
        assert done == {"layers.1.attn.q_proj", "layers.1.attn.k_proj", "layers.1.attn.v_proj", "layers.1.attn.o_proj"}
        for n, s in smap.sites.items():
            assert torch.equal(s.param, before[n]) == (n not in done), n
        assert rep.plan_key == plan.key
    skipped = skip_modules(lm, plan=plan)
    assert "model.layers.0.self_attn.q_proj" in skipped and "model.layers.1.mlp.up_proj" in skipped
    assert "model.layers.1.self_attn.q_proj" not in skipped and "lm_head" in skipped


def test_condition_routing_and_unknown_keys():
    c = as_condition("BNB-NF4")
    assert c.condition == {"scheme": "bnb-nf4", "protect": "none", "prune": "none", "backend": "bnb"}
    assert as_condition("gguf-q8_0").condition["backend"] == "gguf-py"  # the GGUF prefix still routes to gguf.py
    assert canonical_quant_key("int4-g64-sym") == "int4-g64-sym"
    with pytest.raises(UnknownNameError, match=r"'torchao-int3wo'.*torchao-int8wo.*torchao-int4wo-g64"):
        as_condition("torchao-int3wo")
    with pytest.raises(UnknownNameError, match=r"'hqq-4bit'.*hqq-4bit-g64"):
        as_condition("hqq-4bit")
    with pytest.raises(UnknownNameError, match=r"'nf4'.*round-to-nearest.*bnb-nf4"):
        as_condition("nf4")
    with pytest.raises(ValueError, match=r"'torchao-int4wo-g64'.*input dimension 32.*group of 64"):
        as_condition("torchao-int4wo-g64").check(tiny_model("llama").model)


def test_missing_package_names_the_key_and_the_pip_command(monkeypatch):
    """The library's import is replaced by a failing one (a mock of its absence)."""
    real = importlib.import_module

    def fake(name, *a, **k):
        if name == "bitsandbytes":
            raise ModuleNotFoundError("No module named 'bitsandbytes'")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    lm = tiny_model("llama")
    with pytest.raises(ImportError, match=r"'bnb-int8'.*pip install --no-deps bitsandbytes==0.50.2"):
        as_condition("bnb-int8").check(lm.model)
    before = [p.detach().clone() for p in lm.model.parameters()]
    with pytest.raises(ImportError, match="bitsandbytes"):
        apply_backend(lm, "bnb-int8")
    assert all(torch.equal(a, b) for a, b in zip(before, lm.model.parameters()))


def test_mocked_library_api_is_what_the_condition_writes(monkeypatch):
    """A monkeypatched ``bitsandbytes.functional`` (its public quantize/dequantize API): the condition writes what
    the library's dequantize returns and counts the bytes of what its quantize stores."""
    import sys
    import types

    calls = []

    def int8_vectorwise_quant(w):
        calls.append(tuple(w.shape))
        return torch.zeros_like(w, dtype=torch.int8), torch.ones(w.shape[0]), None

    def int8_vectorwise_dequant(q, row):
        return torch.full(q.shape, 0.25)

    fake = types.ModuleType("bitsandbytes")
    fake.functional = types.SimpleNamespace(int8_vectorwise_quant=int8_vectorwise_quant,
                                            int8_vectorwise_dequant=int8_vectorwise_dequant)
    monkeypatch.setitem(sys.modules, "bitsandbytes", fake)
    w = torch.randn(4, 16)
    out, bpw = backend_roundtrip(w, "bnb-int8")
    assert torch.equal(out, torch.full((4, 16), 0.25)) and calls == [(4, 16)]
    assert bpw == 8 + 32 / 16


def test_backend_keys_score_like_any_condition():
    """Through the scorer (what `qd eval --quant bnb-int8` runs): 8-bit storage moves bits per byte less than 4-bit,
    and the model is restored afterwards."""
    pytest.importorskip("bitsandbytes")
    import numpy as np

    from qdmodels.eval.encoding import text_items
    from qdmodels.eval.scoring import evaluate_conditions
    from qdstats.records import paired_frame

    texts = {"eng_Latn": ["The quick brown fox jumps over the dog.", "Rain falls."],
             "heb_Hebr": ["השועל החום קופץ מעל הכלב.", "יורד גשם."]}
    lm = tiny_model("llama", seed=5)
    before = [p.detach().clone() for p in lm.model.parameters()]
    res = evaluate_conditions(lm, text_items(texts), ["fp32", "bnb-int8", "bnb-fp4"], progress=False)
    frame = paired_frame([r for er in res.values() for r in er.records])
    mean_abs = frame.groupby("scheme")["delta"].apply(lambda d: float(np.abs(d).mean()))
    assert 0 < mean_abs["bnb-int8"] < mean_abs["bnb-fp4"]
    assert all(torch.equal(a, b) for a, b in zip(before, lm.model.parameters()))
