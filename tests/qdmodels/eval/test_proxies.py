"""Sensitivity proxies: each against a direct computation on the plain model, and the validation statistics
against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from scipy import stats

from qdmodels.runtime import context_token
from qdmodels.eval.encoding import encode_items, text_items
from qdmodels.eval.batching import make_batches
from qdmodels.models.hooks import capture, count_hooks
from qdmodels.eval.proxies import fisher_proxies, output_error_proxies, validate_proxies
from qdmodels.compress.scheme import QuantScheme
from qdmodels.compress.rtn import fake_quantize, quantized
from qdmodels.models.sites import site_map
from qdstats.records import Measurement, ModelRef

ITEMS = text_items({"eng_Latn": ["The quick brown fox jumps over the lazy dog.", "Hello world, once more."],
                    "heb_Hebr": ["השועל החום קופץ מעל הכלב.", "שלום עולם."]})


def _batch(lm, lang):
    items = [it for it in ITEMS if it.language == lang]
    enc = encode_items(lm.model, lm.tokenizer, items)
    return make_batches(enc, batch_size=16, pad_id=context_token(lm.tokenizer)[0])[0]


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_output_error_matches_direct(family, tiny_models, tiny_state_guard) -> None:
    """Oracle: block-1 output captured from full forwards of the plain model with and without quantizing block 1
    (blocks before it stay fp, so its inputs are the fp inputs); rtol 1e-5 (float32 summation order)."""
    lm = tiny_models[family]
    recs = output_error_proxies(lm, ITEMS, "int3-g16-sym", layers=[1])
    b = _batch(lm, "heb_Hebr")
    layer = site_map(lm.model).layers[1]
    keep = b.attention_mask.bool()

    def run():
        with torch.no_grad(), capture({"y": layer}) as out, capture({"x": layer}, what="input") as inp:
            lm.model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
        return out["y"][0][keep].double(), inp["x"][0][keep].double()

    y, x = run()
    with quantized(lm, "int3-g16-sym", sites=["layers.1"]):
        yq, _ = run()
    rel = float(((yq - y) ** 2).sum() / (y**2).sum())
    sqnr = 10 * math.log10(float(((y - x) ** 2).sum() / ((yq - y) ** 2).sum()))
    got = {r.quantity: r.value for r in recs if r.language == "heb_Hebr"}
    assert_allclose(got["proxy.output_rel_mse"], rel, rtol=1e-5)
    assert_allclose(got["proxy.output_sqnr_db"], sqnr, rtol=1e-5)
    assert all(r.condition["sites"] == "layers.1" and r.condition["scheme"] == "int3-g16-sym" for r in recs)
    assert count_hooks(lm.model) == 0


def test_fisher_matches_autograd(tiny_llama, tiny_state_guard) -> None:
    """Oracle: torch.autograd.grad of the summed token NLL w.r.t. one site (rtol 1e-5); grads/flags restored."""
    lm = tiny_llama
    recs = fisher_proxies(lm, ITEMS, "int4-g16-sym", granularity="component", layers=[0])
    site = site_map(lm.model).sites["layers.0.mlp.down_proj"]
    sm = site_map(lm.model)
    mlp_sites = sm.select(layers=[0], components=["mlp"])
    b = _batch(lm, "eng_Latn")
    params = [sm.sites[n].param for n in mlp_sites]
    logits = lm.model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False).logits
    tgt = b.input_ids[:, 1:].clone()
    tgt[b.attention_mask[:, 1:] == 0] = -100
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                                             ignore_index=-100, reduction="sum")
    grads = torch.autograd.grad(loss, params)
    diag = sum(float((g.double() ** 2).sum()) for g in grads)
    scheme = QuantScheme.parse("int4-g16-sym")
    delta = 0.0
    for n, g in zip(mlp_sites, grads):
        s = sm.sites[n]
        dw = fake_quantize(s.param.data, scheme, layout=s.weight_layout).dequantized - s.param.data
        delta += 0.5 * float((g.double() ** 2 * dw.double() ** 2).sum())
    got = {r.quantity: r.value for r in recs if r.language == "eng_Latn" and r.condition["sites"] == "layers.0.mlp"}
    assert_allclose(got["proxy.fisher_diag"], diag, rtol=1e-5)
    assert_allclose(got["proxy.fisher_delta"], delta, rtol=1e-5)
    assert site.param.grad is None and site.param.requires_grad


def _rec(q, lang, sites, v, scheme="int3-g16-sym"):
    return Measurement(quantity=q, value=v, language=lang, condition={"scheme": scheme, "sites": sites},
                       model=ModelRef(model_id="m", source="config", sha256="a" * 64) if q.startswith("sens") else None)


def test_validate_against_scipy() -> None:
    """Oracle: scipy.stats.spearmanr on the matched pairs (rtol 1e-10); a perfectly monotone proxy gives rho 1."""
    rng = np.random.default_rng(0)
    measured = rng.normal(size=12)
    noisy = measured + rng.normal(scale=1.0, size=12)
    labels = [f"layers.{i}" for i in range(12)]
    meas = [_rec("sens.delta_bits_per_byte", "heb_Hebr", s, v) for s, v in zip(labels, measured)]
    prox = [_rec("proxy.fisher_delta", "heb_Hebr", s, v) for s, v in zip(labels, noisy)]
    prox += [_rec("proxy.output_rel_mse", "heb_Hebr", s, float(np.exp(v))) for s, v in zip(labels, measured)]
    out = {r.condition["proxy"]: r for r in validate_proxies(prox, meas)}
    assert_allclose(out["proxy.fisher_delta"].value, stats.spearmanr(noisy, measured).statistic, rtol=1e-10)
    assert_allclose(out["proxy.fisher_delta"].attributes["pvalue"], stats.spearmanr(noisy, measured).pvalue, rtol=1e-7)
    assert out["proxy.output_rel_mse"].value == pytest.approx(1.0, abs=1e-12)
    r = out["proxy.fisher_delta"]
    assert r.attributes["ci_low"] < r.value < r.attributes["ci_high"] and r.n == 12


def test_validate_small_n_warns_and_errors() -> None:
    meas = [_rec("sens.delta_bits_per_byte", "eng_Latn", f"layers.{i}", float(i)) for i in range(3)]
    prox = [_rec("proxy.fisher_diag", "eng_Latn", f"layers.{i}", float(i)) for i in range(3)]
    with pytest.warns(UserWarning):
        out = validate_proxies(prox, meas)
    assert out[0].warnings
    with pytest.raises(ValueError, match="`measured_records` has no"):
        validate_proxies(prox, [])
    with pytest.raises(ValueError, match="`proxy_records` has no proxy"):
        validate_proxies([], meas)
    with pytest.raises(ValueError, match="`proxies`"):
        validate_proxies(prox, meas, proxies=["proxy.fisher"])
