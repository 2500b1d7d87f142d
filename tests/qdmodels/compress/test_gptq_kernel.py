"""GPTQ kernel (qdmodels.compress.gptq.gptq_quantize_weight): oracles are RTN (H = I), blocksize invariance and
the layer-wise objective it minimizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose

from qdmodels.compress.gptq import gptq_quantize_weight, max_levels_per_group, output_error
from qdmodels.compress.scheme import QuantScheme
from qdmodels.compress.rtn import fake_quantize


def _data(seed: int, rows: int = 24, cols: int = 64, n: int = 512) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weight and two independent draws of strongly correlated inputs (calibration, held-out)."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(rows, cols, generator=g, dtype=torch.float64)
    mix = torch.randn(cols, cols, generator=g, dtype=torch.float64) * torch.logspace(0, -2, cols, dtype=torch.float64)
    X1 = torch.randn(n, cols, generator=g, dtype=torch.float64) @ mix.t()
    X2 = torch.randn(n, cols, generator=g, dtype=torch.float64) @ mix.t()
    return W.float(), X1, X2


def _hess(X: torch.Tensor) -> torch.Tensor:
    return 2.0 * X.t() @ X / X.shape[0]


@pytest.mark.parametrize("key", ["int4-g16-sym", "int3-g8-asym", "int4-ch-sym", "int2-t-asym", "int3-g16-sym-mse",
                                 "int4-g24-sym-ragged", "int4-g16-sym-full"])
@pytest.mark.parametrize("layout", ["out_in", "in_out"])
def test_identity_hessian_equals_rtn(key: str, layout: str) -> None:
    """Oracle: with H = I there is no error propagation, so GPTQ must equal RTN bit for bit (same grid)."""
    scheme = QuantScheme.parse(key)
    W = torch.randn(12, 64, generator=torch.Generator().manual_seed(1))
    w_in = W.t().contiguous() if layout == "in_out" else W
    res = gptq_quantize_weight(w_in, torch.eye(64), scheme, layout=layout)  # type: ignore[arg-type]
    rtn = fake_quantize(w_in, scheme, layout=layout)  # type: ignore[arg-type]
    assert torch.equal(res.dequantized, rtn.dequantized), key


@pytest.mark.parametrize("key", ["int3-g16-sym", "int4-ch-asym"])
def test_blocksize_invariance(key: str) -> None:
    """The lazy block update is algebraically the column-by-column update; float64, atol 1e-10 (round-off only).
    Block sizes divide the group size so group scales are computed from fully updated weights in every case."""
    W, X, _ = _data(0)
    H = _hess(X)
    scheme = QuantScheme.parse(key)
    outs = [gptq_quantize_weight(W.double(), H, scheme, blocksize=b, compute_dtype="float64").dequantized
            for b in (1, 4, 16)]
    for o in outs[1:]:
        assert_allclose(o.numpy(), outs[0].numpy(), atol=1e-10, rtol=0, err_msg=key)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("act_order", [False, True])
def test_beats_rtn_on_calibration_and_heldout(seed: int, act_order: bool) -> None:
    """GPTQ minimizes ||(W - Q) X||^2; on correlated inputs it must beat RTN on the calibration inputs and on a
    held-out draw from the same distribution (same grid, same bits)."""
    W, X1, X2 = _data(seed)
    scheme = QuantScheme.parse("int3-g16-sym")
    H1, H2 = _hess(X1), _hess(X2)
    q = gptq_quantize_weight(W, H1.float(), scheme, act_order=act_order).dequantized
    r = fake_quantize(W, scheme).dequantized
    assert output_error(W, q, H1) < 0.8 * output_error(W, r, H1)
    assert output_error(W, q, H2) < output_error(W, r, H2)


@pytest.mark.parametrize("key", ["int3-g16-sym", "int2-g8-asym", "int4-ch-sym", "int4-g16-sym-full"])
@pytest.mark.parametrize("act_order", [False, True])
def test_levels_on_grid(key: str, act_order: bool) -> None:
    """At most 2**bits distinct values per group, and every value is an integer multiple of its group scale
    (symmetric) or lo + k * scale (asymmetric) with k in range: exact grid membership, atol 1e-5 on k (float32)."""
    scheme = QuantScheme.parse(key)
    W, X, _ = _data(3)
    res = gptq_quantize_weight(W, _hess(X).float(), scheme, act_order=act_order)
    assert max_levels_per_group(res.dequantized, scheme) <= 2**scheme.bits
    rows, cols = res.dequantized.shape
    view = res.dequantized.reshape(rows, res.scales.shape[1], -1) if scheme.granularity == "group" \
        else res.dequantized.reshape(rows, 1, cols)
    s = res.scales.unsqueeze(-1)
    o = res.offsets.unsqueeze(-1)
    k = (view - o) / s
    assert_allclose(k.numpy(), np.round(k.numpy()), atol=1e-4)
    lo, hi = (-(2 ** (scheme.bits - 1)), 2 ** (scheme.bits - 1) - 1) if scheme.symmetric else (0, 2**scheme.bits - 1)
    assert k.round().min() >= lo and k.round().max() <= hi


def test_dead_inputs_zeroed_and_counted() -> None:
    """Reference behaviour: inputs never active (H_jj = 0) get weight 0 and are counted."""
    W, X, _ = _data(2)
    X = X.clone()
    X[:, [5, 40]] = 0
    res = gptq_quantize_weight(W, _hess(X).float(), QuantScheme.parse("int4-g16-sym"))
    assert res.n_dead == 2
    assert torch.all(res.dequantized[:, [5, 40]] == 0)


def test_bad_inputs() -> None:
    W = torch.randn(4, 32)
    s = QuantScheme.parse("int4-g16-sym")
    with pytest.raises(ValueError, match="`hessian` must be 32 x 32"):
        gptq_quantize_weight(W, torch.eye(16), s)
    with pytest.raises(ValueError, match="`percdamp` must be"):
        gptq_quantize_weight(W, torch.eye(32), s, percdamp=-1)
    with pytest.raises(ValueError, match="`group_size` 24 does not divide"):
        gptq_quantize_weight(W, torch.eye(32), QuantScheme.parse("int4-g24-sym"))
    with pytest.raises(TypeError, match="`scheme` must be a QuantScheme"):
        gptq_quantize_weight(W, torch.eye(32), "int4-g16-sym")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`weight` must be 2-D"):
        gptq_quantize_weight(torch.randn(32), torch.eye(32), s)
    with pytest.raises(ValueError, match="`compute_dtype`"):
        gptq_quantize_weight(W, torch.eye(32), s, compute_dtype="float16")  # type: ignore[arg-type]



def _round_on(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Symmetric round-to-nearest of a column ``w`` on per-row steps ``scale`` (codes -2^(b-1) .. 2^(b-1)-1)."""
    qmax = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(w / scale), -qmax - 1, qmax) * scale


def _obs_sequential(W0: torch.Tensor, H: torch.Tensor, scheme: QuantScheme) -> torch.Tensor:
    """Independent oracle (float64, symmetric grids): quantize columns left to right; after each, set the remaining
    columns to the exact constrained least-squares optimum of ``tr((W' - W0) H (W' - W0)^T)`` given every column
    fixed so far, ``Delta_F = -Delta_D H_DF H_FF^{-1}`` by ``torch.linalg.solve`` (no Cholesky, no inverse updates,
    no lazy batches). Per-channel steps come from ``W0``; group steps from the current re-solved weights at each
    group start. The OBS derivation of GPTQ (Frantar et al. 2022, Eq. 2-3), written from scratch."""
    cols = W0.shape[1]
    g = scheme.group_size if scheme.granularity == "group" else None
    per_channel = scheme.model_copy(update={"granularity": "channel", "group_size": None})
    Q = torch.zeros_like(W0)
    cur = W0.clone()
    scale = fake_quantize(W0, per_channel).scales.reshape(-1).double()
    for j in range(cols):
        if g is not None and j % g == 0:
            scale = fake_quantize(cur[:, j:j + g], per_channel).scales.reshape(-1).double()
        Q[:, j] = _round_on(cur[:, j], scale, scheme.bits)
        if j + 1 < cols:
            D, F = slice(0, j + 1), slice(j + 1, cols)
            dD = Q[:, D] - W0[:, D]
            cur = torch.cat([Q[:, D], W0[:, F] - torch.linalg.solve(H[F, F], (dD @ H[D, F]).t()).t()], dim=1)
    return Q


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("key", ["int4-ch-sym", "int3-g8-sym"])
def test_matches_obs_least_squares_oracle(seed: int, key: str) -> None:
    """GPTQ's Cholesky/lazy-batch algorithm equals the from-scratch OBS sequential least-squares solution (float64,
    dampened H passed with percdamp=0). Block size = group size so group steps are taken from fully updated weights,
    as in the oracle. Tolerance 1e-8: round-off of two different linear-algebra paths on a well-conditioned 32 x 32
    Hessian; any algorithmic difference (wrong update, wrong grid) moves some weight by a whole step (>= 1e-2)."""
    W, X, _ = _data(seed, rows=8, cols=32, n=256)
    H = _hess(X)
    H = H + 0.01 * torch.mean(torch.diag(H)) * torch.eye(32, dtype=torch.float64)
    scheme = QuantScheme.parse(key)
    bs = scheme.group_size or 128
    ours = gptq_quantize_weight(W.double(), H, scheme, percdamp=0.0, blocksize=bs, compute_dtype="float64").dequantized
    oracle = _obs_sequential(W.double(), H, scheme)
    assert not torch.allclose(oracle, fake_quantize(W.double(), scheme).dequantized)  # error feedback did something
    assert_allclose(ours.numpy(), oracle.numpy(), atol=1e-8, rtol=0)
