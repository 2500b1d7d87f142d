"""Kernel details that a mutation review found untested: the symmetric grid's extra negative level, ragged-group
masks under MSE clipping, and GPTQ's dampening by the mean Hessian diagonal."""

from __future__ import annotations

import torch
from numpy.testing import assert_allclose

from qdmodels.compress.gptq import gptq_quantize_weight
from qdmodels.compress.rtn import _quant_dequant, fake_quantize
from qdmodels.compress.scheme import QuantScheme


def test_symmetric_grid_keeps_the_extra_negative_level():
    """Codes run over [-2^(b-1), 2^(b-1) - 1] (two's complement, as GGUF Q4_0 / llama.cpp): a clipped value far below
    the scale lands on -8 at 4 bits, not on -7 (kills a symmetric clamp at -qmax)."""
    x = torch.tensor([[[-1.0, 0.5, 1.0]]])
    deq, codes, scale, _ = _quant_dequant(x, 4, True, (x.abs().amax(dim=-1, keepdim=True),), 0.5)
    assert codes.flatten().tolist() == [-8.0, 7.0, 7.0]
    assert_allclose(deq.flatten().numpy(), (torch.tensor([-8.0, 7.0, 7.0]) * 0.5 / 7).numpy(), rtol=1e-6)


def test_ragged_last_group_is_quantized_as_its_own_group():
    """With a group size that does not divide the row, the last (smaller) group must behave exactly like a tensor of
    its own columns: its edge padding may not enter the MSE clip search (kills a missing or inverted mask)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(200, 6, generator=gen) * torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 3.0])
    ragged = fake_quantize(w, QuantScheme.parse("int3-g4-sym-mse-ragged")).dequantized
    tail = fake_quantize(w[:, 4:].contiguous(), QuantScheme.parse("int3-g2-sym-mse")).dequantized
    head = fake_quantize(w[:, :4].contiguous(), QuantScheme.parse("int3-g4-sym-mse")).dequantized
    assert torch.equal(ragged[:, 4:], tail)
    assert torch.equal(ragged[:, :4], head)


def test_gptq_dampening_uses_the_mean_of_the_diagonal():
    """percdamp * mean(diag H) is added (reference GPTQ), not percdamp * max: equal to a pre-dampened H with percdamp=0,
    and different from max-based dampening on a Hessian with an uneven diagonal."""
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(64, 16, generator=gen, dtype=torch.float64) * torch.linspace(0.05, 20.0, 16, dtype=torch.float64)
    X[:, 1] = 0.9 * X[:, 0] + 0.1 * X[:, 1]  # correlated inputs: error feedback matters, so does the dampening
    H = 2.0 * X.T @ X / X.shape[0]
    W = torch.randn(8, 16, generator=gen, dtype=torch.float64)
    s = QuantScheme.parse("int3-ch-sym")
    kw = dict(blocksize=16, compute_dtype="float64")
    ours = gptq_quantize_weight(W, H, s, percdamp=0.1, **kw).dequantized
    eye = torch.eye(16, dtype=torch.float64)
    by_mean = gptq_quantize_weight(W, H + 0.1 * torch.diag(H).mean() * eye, s, percdamp=0.0, **kw).dequantized
    by_max = gptq_quantize_weight(W, H + 0.1 * torch.diag(H).max() * eye, s, percdamp=0.0, **kw).dequantized
    assert_allclose(ours.numpy(), by_mean.numpy(), rtol=0, atol=1e-10)
    assert not torch.allclose(by_mean, by_max)
