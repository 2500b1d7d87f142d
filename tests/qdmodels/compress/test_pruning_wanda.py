"""Wanda-style activation-aware pruning: scores from hand-computed inputs, exact per-row counts, calibration refusals."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qdmodels.compress.pruning import PruneSpec, apply_pruning, compressed, input_norms, pruned, wanda_mask
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model


def _calibration(vocab: int, n: int = 3, length: int = 12, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, length), generator=g)


def test_input_norms_of_the_first_block_equal_a_hand_computation(tiny_state_guard):
    """Oracle: the first block's q_proj sees input_layernorm(embed_tokens(ids)); its column norms over all tokens."""
    lm = tiny_model("llama", seed=3)
    ids = _calibration(lm.model.config.vocab_size)
    norms = input_norms(lm, ["layers.0.attn.q_proj", "layers.0.mlp.down_proj"], ids, batch_size=2)
    with torch.no_grad():
        x = lm.model.model.layers[0].input_layernorm(lm.model.model.embed_tokens(ids))
    want = x.reshape(-1, x.shape[-1]).double().pow(2).sum(0).sqrt()
    torch.testing.assert_close(norms["layers.0.attn.q_proj"], want, rtol=1e-6, atol=1e-9)
    assert norms["layers.0.mlp.down_proj"].shape == (lm.model.config.intermediate_size,)


def test_wanda_prunes_by_activation_weighted_score(tiny_state_guard):
    lm = tiny_model("llama", seed=4)
    ids = _calibration(lm.model.config.vocab_size, seed=1)
    smap = site_map(lm.model)
    w0 = smap.sites["layers.0.attn.q_proj"].param.detach().clone()
    norms = input_norms(lm, ["layers.0.attn.q_proj"], ids)["layers.0.attn.q_proj"]
    with pruned(lm, "wanda-0.5", calibration=ids) as rep:
        w = smap.sites["layers.0.attn.q_proj"].param.detach()
        zero = w == 0
        assert (zero.sum(1) == round(0.5 * w.shape[1])).all()  # exact count in every output row
        score = w0.abs().double() * norms[None, :]
        # every zeroed weight scores no higher than every kept weight of its row
        for i in range(w.shape[0]):
            assert score[i][zero[i]].max() <= score[i][~zero[i]].min()
        assert rep.condition["prune"] == "wanda-0.5" and rep.condition["prune_calibration"] == "custom"
        assert rep.condition["prune_calib_tokens"] == ids.numel()
        # activation-aware: not the same mask as per-row magnitude pruning on this model
        mag = wanda_mask(w0, torch.ones(w0.shape[1], dtype=torch.float64), 0.5)
        assert not torch.equal(mag, zero)
    assert torch.equal(smap.sites["layers.0.attn.q_proj"].param.detach(), w0)  # restored bit-exactly


def test_wanda_on_conv1d_weights_runs_along_inputs(tiny_state_guard):
    lm = tiny_model("gpt2", seed=2)
    ids = _calibration(lm.model.config.vocab_size, seed=2)
    smap = site_map(lm.model)
    name = next(n for n, s in smap.sites.items() if s.weight_layout == "in_out" and s.component == "mlp")
    with pruned(lm, "wanda-0.25", calibration=ids):
        w = smap.sites[name].param.detach()  # (in, out): each output column loses a quarter of its inputs
        assert ((w == 0).sum(0) == round(0.25 * w.shape[0])).all()


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 5), cols=st.integers(2, 12), frac=st.sampled_from([0.1, 0.25, 0.5, 0.75]),
       seed=st.integers(0, 1000))
def test_wanda_mask_count_and_order(rows, cols, frac, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g)
    norms = torch.rand(cols, generator=g, dtype=torch.float64) + 0.1
    mask = wanda_mask(w, norms, frac)
    k = round(frac * cols)
    assert (mask.sum(1) == k).all()
    score = w.abs().double() * norms
    for i in range(rows):
        if 0 < k < cols:
            assert score[i][mask[i]].max() <= score[i][~mask[i]].min()


def test_calibration_is_required_and_refused_where_it_does_not_apply(tiny_state_guard):
    lm = tiny_model("llama")
    with pytest.raises(ValueError, match="`calibration` is required for prune='wanda-0.5'"):
        apply_pruning(lm, "wanda-0.5")
    with pytest.raises(ValueError, match="applies only to activation-aware"):
        apply_pruning(lm, "unstructured-0.5", calibration=_calibration(16))
    with pytest.raises(ValueError, match="'wanda-0.5'"):
        PruneSpec.parse("wanda-1.5")
    with pytest.raises(ValueError, match="`scope` must be 'site'"):
        PruneSpec(method="wanda", sparsity=0.5, scope="global")


def test_compressed_records_the_pruning_calibration(tiny_state_guard):
    lm = tiny_model("llama", seed=6)
    ids = _calibration(lm.model.config.vocab_size, seed=3)
    with compressed(lm, scheme="int4-ch-sym", prune="wanda-0.2", calibration=ids) as rep:
        assert rep.condition == {"scheme": "int4-ch-sym", "protect": "none", "prune": "wanda-0.2",
                                 "prune_calibration": "custom", "prune_calib_tokens": ids.numel()}
