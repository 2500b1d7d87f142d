"""GGUF block formats as conditions: gguf-py's own round trip, exact restore, storage cost, clear refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType, quants

from qdmodels.compress.conditions import as_condition
from qdmodels.compress.gguf import apply_gguf, gguf_roundtrip
from qdmodels.eval.encoding import text_items
from qdmodels.eval.scoring import evaluate_conditions
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model
from qdstats.records import paired_frame

TEXTS = {"eng_Latn": ["The quick brown fox jumps over the dog.", "Rain falls."],
         "heb_Hebr": ["השועל החום קופץ מעל הכלב.", "יורד גשם."]}


@pytest.mark.parametrize("key", ["gguf-q4_0", "gguf-q8_0", "gguf-q5_1", "gguf-mxfp4"])
def test_written_weights_are_gguf_py_round_trips_and_restore_is_exact(key):
    """Oracle: for every converted site, the model holds exactly dequantize(quantize(w)) of gguf-py, blocks along
    the input dimension (rows of the [out, in] weight)."""
    lm = tiny_model("llama", seed=3)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters()}
    smap = site_map(lm)
    originals = {name: site.param.detach().clone() for name, site in smap.sites.items()}
    qtype = getattr(GGMLQuantizationType, key.split("-")[1].upper())
    handle = apply_gguf(lm, key)
    assert len(handle.report.sites) == 14  # 7 projections x 2 blocks
    for s in handle.report.sites:
        x = originals[s.site].numpy().astype(np.float32)
        ref = quants.dequantize(quants.quantize(x, qtype), qtype).reshape(x.shape)
        assert np.array_equal(smap.sites[s.site].param.detach().numpy(), ref), s.site
        assert not np.array_equal(ref, x), s.site
    assert handle.report.verified and handle.report.n_params_quantized > 0
    handle.restore()
    assert all(torch.equal(before[n], p) for n, p in lm.model.named_parameters())


def test_storage_cost_and_fraction_changed():
    lm = tiny_model("llama")
    with apply_gguf(lm, "gguf-q4_0") as rep:
        assert rep.bits_per_weight == 4.5 and all(s.bits_per_weight == 4.5 for s in rep.sites)
        assert all(0.5 < s.frac_changed <= 1.0 for s in rep.sites)
        assert 4.5 < rep.model_bits_per_weight < 16
    with apply_gguf(lm, "gguf-q8_0") as rep8:
        assert rep8.bits_per_weight == 8.5


def test_condition_key_works_everywhere_a_quant_key_does():
    """`--quant gguf-q4_0` builds this condition; Q8_0 moves bits per byte much less than Q4_0."""
    lm = tiny_model("llama", seed=5)
    res = evaluate_conditions(lm, text_items(TEXTS), ["fp32", "gguf-q8_0", "gguf-q4_0"], progress=False)
    frame = paired_frame([r for er in res.values() for r in er.records])
    mean_abs = frame.groupby("scheme")["delta"].apply(lambda d: float(np.abs(d).mean()))
    assert 0 < mean_abs["gguf-q8_0"] < mean_abs["gguf-q4_0"] / 4
    assert as_condition("gguf-q4_0").condition["backend"] == "gguf-py"


def test_refusals_are_clear():
    lm = tiny_model("llama")
    with pytest.raises(ValueError, match="can dequantize Q4_K but not quantize it"):
        as_condition("gguf-q4_k")
    with pytest.raises(KeyError, match=r"not a GGUF format .* Did you mean one of .*'q4_0'"):
        as_condition("gguf-q4_o")
    with pytest.raises(ValueError, match="blocks of 256 along the input dimension"):
        gguf_roundtrip(torch.ones(4, 64), "gguf-tq2_0")
    bad = as_condition("gguf-tq2_0")  # tiny weights have 32/64 inputs: not a multiple of 256
    with pytest.raises(ValueError, match="not a multiple of the format's block of 256"):
        bad.check(lm.model)
