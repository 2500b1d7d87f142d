"""Tests for qdmodels.compress.pruning: exact sparsity, exact N:M pattern, restore, composition with quantization.

Oracles: counting (exact integers) and a per-block check of the N:M rule written from its definition.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.compress.pruning import (
    PruneSpec,
    apply_pruning,
    compressed,
    nm_mask,
    pruned,
    smallest_k_mask,
)
from qdmodels.compress.scheme import ProtectionPlan, TiedWeightError
from qdmodels.compress.rtn import quantized
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model
from qdstats.records import Measurement


@given(n=st.integers(1, 200), frac=st.floats(0, 1), seed=st.integers(0, 999), ties=st.booleans())
def test_smallest_k_mask_exact_count(n, frac, seed, ties):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=gen)
    if ties:
        x = torch.round(x)  # many exact ties at the threshold
    k = int(round(frac * n))
    m = smallest_k_mask(x, k)
    assert int(m.sum()) == k
    if 0 < k < n:
        assert x.abs()[m].max() <= x.abs()[~m].min()


@pytest.mark.parametrize("family", ["llama", "gpt2", "opt"])
@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_unstructured_per_site_exact(family, sparsity, tiny_models, tiny_state_guard):
    lm = tiny_models[family]
    sm = site_map(lm)
    with pruned(lm, PruneSpec(method="unstructured", sparsity=sparsity)) as rep:
        for s in rep.sites:
            p = sm[s.site].param
            assert int((p == 0).sum()) == round(sparsity * p.numel()) == s.n_zero
    assert rep.sparsity == pytest.approx(sum(s.n_zero for s in rep.sites) / sum(s.numel for s in rep.sites), rel=0)


def test_unstructured_keeps_largest(tiny_llama, tiny_state_guard):
    sm = site_map(tiny_llama)
    w = sm["layers.0.mlp.up_proj"].param.detach().clone()
    with pruned(tiny_llama, "unstructured-0.5", sites=["layers.0.mlp.up_proj"]):
        p = sm["layers.0.mlp.up_proj"].param.detach()
        kept = p != 0
        assert w.abs()[~kept].max() <= w.abs()[kept].min()
        assert torch.equal(p[kept], w[kept])


def test_global_exact_and_uneven():
    lm = tiny_model("llama")  # own copy: this test scales a weight
    sm = site_map(lm)
    names = sm.select()
    with torch.no_grad():  # a global threshold must prune a 10x larger site much less than the others
        sm["layers.0.attn.q_proj"].param.mul_(10.0)
    with pruned(lm, "unstructured-global-0.5") as rep:
        total = sum(sm[n].numel for n in names)
        zeros = sum(int((sm[n].param == 0).sum()) for n in names)
        assert zeros == round(0.5 * total)
        assert rep.site("layers.0.attn.q_proj").sparsity < 0.2
        assert rep.site("layers.0.mlp.down_proj").sparsity > 0.5


def _check_nm(w: torch.Tensor, p: torch.Tensor, n: int, m: int) -> None:
    rows, cols = p.shape
    for r in range(rows):
        for c0 in range(0, cols, m):
            blk, orig = p[r, c0:c0 + m], w[r, c0:c0 + m]
            nz = blk != 0
            assert int(nz.sum()) <= n
            assert int((blk == 0).sum()) >= m - n
            # kept ones are the largest |w| of the block, unchanged
            order = torch.argsort(orig.abs(), descending=True, stable=True)
            keep_idx = set(order[:n].tolist())
            for j in range(m):
                if j in keep_idx:
                    assert blk[j] == orig[j]
                else:
                    assert blk[j] == 0


@pytest.mark.parametrize("nm", [(2, 4), (1, 4), (4, 8)])
def test_nm_pattern_exact(nm, tiny_llama, tiny_state_guard):
    n, m = nm
    sm = site_map(tiny_llama)
    w = sm["layers.1.mlp.down_proj"].param.detach().clone()
    with pruned(tiny_llama, f"{n}:{m}") as rep:
        _check_nm(w, sm["layers.1.mlp.down_proj"].param.detach(), n, m)
        assert all(s.sparsity == pytest.approx(1 - n / m, abs=0) for s in rep.sites)


def test_nm_conv1d_runs_along_input_axis(tiny_gpt2, tiny_state_guard):
    """GPT-2 Conv1D [in, out]: blocks of 4 consecutive *input* weights are rows of W.T."""
    sm = site_map(tiny_gpt2)
    w = sm["layers.0.mlp.down_proj"].param.detach().clone()  # [64, 32]: in=64, out=32
    with pruned(tiny_gpt2, "2:4", sites=["layers.0.mlp.down_proj"]):
        p = sm["layers.0.mlp.down_proj"].param.detach()
        _check_nm(w.t(), p.t(), 2, 4)
    assert not torch.equal(nm_mask(w, 2, 4, layout="in_out"), nm_mask(w, 2, 4, layout="out_in"))


def test_nm_errors():
    with pytest.raises(ValueError, match="`m` = 4 does not divide the input dimension 6"):
        nm_mask(torch.randn(3, 6), 2, 4)
    with pytest.raises(ValueError, match="N:M pruning needs a 2-D weight"):
        nm_mask(torch.randn(8), 2, 4)


def test_restore_exact_and_exception(tiny_llama, tiny_state_guard):
    with pytest.raises(KeyError), pruned(tiny_llama, "2:4"):
        raise KeyError("x")
    h = apply_pruning(tiny_llama, "unstructured-0.7")
    h.restore()
    h.restore()
    assert h.restored


def test_prune_then_quantize_zeros_stay_zero(tiny_llama, tiny_state_guard):
    sm = site_map(tiny_llama)
    before = {n: s.param.detach().clone() for n, s in sm.sites.items()}
    with compressed(tiny_llama, scheme="int4-g16-sym", prune="2:4") as rep:
        assert rep.condition == {"scheme": "int4-g16-sym", "protect": "none", "prune": "2:4"}
        assert rep.quantization.verified and rep.pruning.sparsity == 0.5
        for n in sm.select():
            p = sm[n].param
            mask = nm_mask(before[n], 2, 4)
            assert bool((p[mask] == 0).all()), n  # pruned zeros survive symmetric quantization
            assert int((p == 0).sum()) >= int(mask.sum())
    for n, s in sm.sites.items():
        assert torch.equal(s.param, before[n])


def test_compressed_fp32_is_noop(tiny_llama, tiny_state_guard):
    with compressed(tiny_llama) as rep:
        assert rep.condition == {"scheme": "fp32", "protect": "none", "prune": "none"}
        assert rep.quantization is None and rep.pruning is None


def test_plan_and_ties(tiny_llama, tiny_state_guard):
    with pytest.raises(TiedWeightError):
        apply_pruning(tiny_llama, "unstructured-0.5", sites=["embed_tokens"])
    with pruned(tiny_llama, "unstructured-0.5", plan=ProtectionPlan(layers=(0,))) as rep:
        assert all(not s.site.startswith("layers.0.") for s in rep.sites)


def test_spec_keys_and_errors():
    assert PruneSpec.parse("unstructured-0.5") == PruneSpec(method="unstructured", sparsity=0.5)
    assert PruneSpec(method="unstructured", sparsity=0.25, scope="global").key == "unstructured-global-0.25"
    for key in ["2:4", "unstructured-0.5", "unstructured-global-0.3", "1:8"]:
        assert PruneSpec.parse(key).key == key
    with pytest.raises(ValueError, match="`sparsity` must be in \\(0, 1\\)"):
        PruneSpec(method="unstructured", sparsity=1.0)
    with pytest.raises(ValueError, match="1 <= n < m"):
        PruneSpec.parse("4:4")
    with pytest.raises(ValueError, match="`prune` must look like"):
        PruneSpec.parse("magnitude-50")


def test_records(tiny_llama, tiny_state_guard):
    with pruned(tiny_llama, "2:4") as rep:
        recs = rep.to_records(tiny_llama.ref)
    assert all(isinstance(r, Measurement) and r.quantity == "prune.sparsity" for r in recs)
    assert recs[-1].site is None and recs[-1].value == 0.5
    assert recs[0].condition == {"protect": "none", "prune": "2:4"}


def test_quantize_inside_pruned_nesting_restores(tiny_gpt2, tiny_state_guard):
    with pruned(tiny_gpt2, "unstructured-0.3"), quantized(tiny_gpt2, "int3-ch-asym"):
        pass
