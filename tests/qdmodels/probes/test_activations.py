"""Tests for qdmodels.probes.activations: streaming moments, masked statistics, massive activations, scoped hooks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as sst
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qdmodels.probes.activations import Moments, activation_stats
from qdmodels.eval.encoding import encode_items, text_items
from qdmodels.eval.batching import make_batches
from qdmodels.models.hooks import capture, count_hooks
from qdmodels.models.sites import site_map

TEXTS = {
    "eng_Latn": ["The quick brown fox jumps over the lazy dog.", "Hi.", "Quantization hurts some languages."],
    "heb_Hebr": ["השועל החום המהיר קופץ מעל הכלב העצלן.", "שלום"],
}


@pytest.fixture(scope="module")
def items():
    return text_items(TEXTS)


@settings(max_examples=40)
@given(st.lists(st.integers(1, 20), min_size=1, max_size=6), st.integers(0, 10_000))
def test_moments_merge_equals_scipy(sizes, seed):
    """Oracle: scipy.stats.kurtosis on the concatenation; rtol 1e-9 (pairwise merge reorders float64 sums)."""
    rng = np.random.default_rng(seed)
    parts = [rng.standard_t(5, size=n) * 3 + 1 for n in sizes]
    m = Moments()
    for p in parts:
        m.update(torch.from_numpy(p))
    x = np.concatenate(parts)
    np.testing.assert_allclose(m.mean, x.mean(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.variance, x.var(), rtol=1e-9, atol=1e-12)
    if x.size > 1 and x.var() > 0:
        np.testing.assert_allclose(m.excess_kurtosis, sst.kurtosis(x), rtol=1e-9, atol=1e-9)


def _oracle(lm, items, site_index, batch_size):
    """Capture the block output on the same batches and mask exactly (padding and context token out)."""
    sm = site_map(lm.model)
    batches = make_batches(encode_items(lm.model, lm.tokenizer, items), batch_size=batch_size, pad_id=0)
    xs, firsts = [], []
    with capture({"l": sm.layers[site_index]}) as store, torch.no_grad():
        for b in batches:
            lm.model(input_ids=b.input_ids, attention_mask=b.attention_mask)
    for b, h in zip(batches, store["l"]):
        mask = b.attention_mask.bool().clone()
        mask[:, 0] = False
        xs.append(h[mask].double().numpy())
        firsts.append(h[:, 0].double().numpy())
    return np.concatenate(xs), np.concatenate(firsts)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_against_captured_activations(tiny_models, items, family):
    """Oracle: numpy/scipy on masked activations captured with the same batches; rtol 1e-9."""
    lm = tiny_models[family]
    recs = activation_stats(lm, items, batch_size=2, outlier_threshold=0.05, progress=False)
    assert count_hooks(lm.model) == 0
    eng = [it for it in items if it.language == "eng_Latn"]
    x, first = _oracle(lm, eng, 1, 2)
    got = {r.quantity: r for r in recs if r.site == "layers.1" and r.language == "eng_Latn"}
    v = x.ravel()
    np.testing.assert_allclose(got["act.mean"].value, v.mean(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["act.rms"].value, np.sqrt((v**2).mean()), rtol=1e-9)
    np.testing.assert_allclose(got["act.absmax"].value, np.abs(v).max(), rtol=0)
    np.testing.assert_allclose(got["act.excess_kurtosis"].value, sst.kurtosis(v), rtol=1e-9)
    np.testing.assert_allclose(got["act.first_token_ratio"].value, np.abs(first).max() / np.abs(v).max(), rtol=1e-12)
    ch = np.abs(x).max(axis=0)
    assert got["act.outlier_channel_count"].value == float((ch > 0.05).sum())
    assert got["act.outlier_channel_count"].condition["outlier_threshold"] == 0.05
    assert got["act.mean"].n == x.shape[0]
    top = int(np.argmax(ch))
    if (ch > 0.05).any():
        assert got["act.outlier_channel_count"].attributes["outlier_channels"].split(",")[0] == str(top)


def test_padding_invariant_and_points(tiny_llama, items):
    """Batch size changes padding only: statistics agree within 1e-6 relative (fp32 batched matmuls)."""
    a = activation_stats(tiny_llama, items, batch_size=1, points=("residual", "down_proj_input"), progress=False)
    b = activation_stats(tiny_llama, items, batch_size=3, points=("residual", "down_proj_input"), progress=False)
    assert {r.site for r in a} == {"layers.0", "layers.1", "layers.0.mlp.down_proj.input", "layers.1.mlp.down_proj.input"}
    np.testing.assert_allclose([r.value for r in a], [r.value for r in b], rtol=1e-5, atol=1e-7)
    assert len(a) == 6 * 4 * len(TEXTS)


def test_hooks_removed_on_error(tiny_llama, items, monkeypatch):
    import qdmodels.probes.activations as am

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(am._Acc, "update", boom)
    with pytest.raises(RuntimeError, match="boom"):
        activation_stats(tiny_llama, items, progress=False)
    assert count_hooks(tiny_llama.model) == 0


def test_errors(tiny_llama, items):
    with pytest.raises(ValueError, match="`points` must be one of"):
        activation_stats(tiny_llama, items, points=("resid",), progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`outlier_threshold` must be a positive"):
        activation_stats(tiny_llama, items, outlier_threshold=-1, progress=False)
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        activation_stats(tiny_llama, items, batch_size=0, progress=False)
