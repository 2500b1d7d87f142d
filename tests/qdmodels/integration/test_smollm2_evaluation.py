"""Integration tests on the real SmolLM2-135M (dequantized Q4_1 GGUF) and NTREX-128 (small limits).

Skipped, with the reason printed, when the model is not in the cache (``qd models fetch smollm2-135m``) or
NTREX is not in the data directory (``QD_DATA_DIR``). On 2 CPU cores the whole module takes a few minutes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from qdmodels.eval.encoding import encode_items
from qdmodels.eval.scoring import evaluate, evaluate_conditions
from qdmodels.eval.batching import make_batches
from qdmodels.compress.rtn import quantized
from qdmodels.eval.sensitivity import PrefixCache, _naive_logprobs, site_groups
from qdmodels.models.sites import site_map

pytestmark = [pytest.mark.slow, pytest.mark.integration]

LANGS = ["eng_Latn", "heb_Hebr"]


@pytest.fixture(scope="module")
def ntrex_items():
    from qdmodels.corpora.ntrex import load_ntrex

    data_dir = os.environ.get("QD_DATA_DIR")
    if data_dir is None:
        guess = Path(__file__).resolve().parents[3].parent / "shared" / "data"
        data_dir = str(guess) if guess.is_dir() else None
    try:
        pc = load_ntrex(LANGS, split="test", limit=2, data_dir=data_dir)
    except (FileNotFoundError, OSError, ValueError) as exc:
        msg = f"NTREX-128 not available ({type(exc).__name__}: {exc}); set QD_DATA_DIR"
        print(msg)
        pytest.skip(msg)
    return [it for v in pc.items.values() for it in v]


def _mean_by_lang(scores):
    out: dict[str, list[float]] = {}
    for s in scores:
        out.setdefault(s.language, []).append(s.bits_per_byte)
    return {k: float(np.mean(v)) for k, v in out.items()}


def test_int8_barely_moves_int3_moves_a_lot(smollm2, ntrex_items):
    """Group-wise INT8 is near-lossless; INT3 raises bits per byte on every sentence (thresholds: see asserts)."""
    res = evaluate_conditions(smollm2, ntrex_items, ["fp32", "int8-g64-sym", "int3-g64-sym"], batch_size=4,
                              progress=False)
    fp, q8, q3 = res.values()
    d8 = np.array([b.bits_per_byte - a.bits_per_byte for a, b in zip(fp.scores, q8.scores)])
    d3 = np.array([b.bits_per_byte - a.bits_per_byte for a, b in zip(fp.scores, q3.scores)])
    print("fp32", _mean_by_lang(fp.scores), "int8", _mean_by_lang(q8.scores), "int3", _mean_by_lang(q3.scores))
    assert np.all(d3 > 0.05), f"INT3 must raise bits/byte on every sentence; got {d3}"
    assert np.abs(d8).max() < 0.02, f"INT8 g64 should move bits/byte by < 0.02; got {d8}"
    assert d3.mean() > 20 * np.abs(d8).mean()


def test_quantization_changes_weights_and_restores(smollm2):
    site = site_map(smollm2.model).get("layers.10.mlp.down_proj")
    before = site.param.detach().clone()
    with quantized(smollm2, "int4-g64-sym", sites=["layers.10.mlp.down_proj"]) as rep:
        inside = site.param.detach().clone()
        assert rep.site("layers.10.mlp.down_proj").max_levels_per_group <= 16
    assert not torch.equal(before, inside) and (before != inside).float().mean() > 0.5
    assert torch.equal(before, site.param.detach())


def test_batched_equals_unbatched(smollm2, ntrex_items):
    """Oracle: batch_size=1 (no padding); atol 1e-4 nats (reordered fp32 sums in padded matmuls)."""
    a = evaluate(smollm2, None, ntrex_items, batch_size=4, progress=False)
    b = evaluate(smollm2, None, ntrex_items, batch_size=1, progress=False)
    np.testing.assert_allclose([s.nll_sum for s in a.scores], [s.nll_sum for s in b.scores], rtol=0, atol=1e-4)
    assert a.records[0].attributes["context_token"] == "bos"


def test_prefix_cache_equals_naive(smollm2, ntrex_items):
    """Oracle: naive full forward with the same block quantized; atol 1e-5 (fp32 activations)."""
    lm = smollm2
    batches = make_batches(encode_items(lm.model, lm.tokenizer, ntrex_items[:3]), batch_size=3,
                           pad_id=lm.tokenizer.pad_token_id)
    cache = PrefixCache(lm.model, batches).build()
    groups = {g.first_layer: g for g in site_groups(lm.model)}
    for layer in (1, 29):
        with quantized(lm, "int3-g64-sym", sites=list(groups[layer].sites)):
            cached = cache.logprobs_from(layer)
            naive = _naive_logprobs(lm.model, batches)
        moved = 0.0
        for x, y, f in zip(cached[0], naive[0], cache.fp_logprobs[0]):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-5, err_msg=f"layer {layer}")
            moved = max(moved, float(np.abs(x - f).max()))
        assert moved > 1e-4, "quantizing the block must change the log-probs"
