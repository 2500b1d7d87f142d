"""Tests for qdmodels.models.hooks: every hook and patched forward is removed, also on error."""

from __future__ import annotations

import pytest
import torch

from qdmodels.models.hooks import HookSet, capture, count_hooks, detach_output, patched_forward
from qdmodels.models.sites import site_map


def test_capture_outputs_and_cleanup(tiny_llama):
    sm = site_map(tiny_llama.model)
    mods = {f"layers.{i}": m for i, m in enumerate(sm.layers)}
    ids = torch.tensor([[1, 5, 6, 7]])
    with capture(mods) as store:
        with torch.no_grad():
            tiny_llama.model(ids)
    assert count_hooks(tiny_llama.model) == 0
    assert [len(v) for v in store.values()] == [1] * len(mods)
    assert store["layers.0"][0].shape == (1, 4, tiny_llama.model.config.hidden_size)
    # captured output of block 0 is the input of block 1
    with capture({"in1": sm.layers[1]}, what="input") as st2:
        with torch.no_grad():
            tiny_llama.model(ids)
    torch.testing.assert_close(st2["in1"][0], store["layers.0"][0], rtol=0, atol=0)


def test_hooks_removed_on_error(tiny_llama):
    sm = site_map(tiny_llama.model)
    with pytest.raises(RuntimeError, match="boom"):
        with capture({"l0": sm.layers[0]}):
            raise RuntimeError("boom")
    assert count_hooks(tiny_llama.model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with HookSet() as hs:
            hs.pre(sm.layers[0], lambda m, a: None)
            hs.forward(sm.layers[1], lambda m, a, o: None)
            assert count_hooks(tiny_llama.model) == 2
            raise RuntimeError("boom")
    assert count_hooks(tiny_llama.model) == 0


def test_patched_forward_restored():
    lin = torch.nn.Linear(2, 2)
    x = torch.ones(1, 2)
    y = lin(x)
    with patched_forward({lin: lambda *a, **k: torch.zeros(1, 2)}):
        assert torch.equal(lin(x), torch.zeros(1, 2))
        with pytest.raises(RuntimeError, match="already has a patched forward"):
            with patched_forward({lin: lambda *a, **k: None}):
                pass
    assert "forward" not in lin.__dict__
    assert torch.equal(lin(x), y)
    with pytest.raises(ValueError):
        with patched_forward({lin: lambda *a, **k: None}):
            raise ValueError("x")
    assert "forward" not in lin.__dict__


def test_detach_output_clones():
    t = torch.ones(2)
    out = detach_output((t, [t]))
    t.add_(1)
    assert out[0].tolist() == [1.0, 1.0] and out[1][0].tolist() == [1.0, 1.0]


def test_capture_bad_option():
    with pytest.raises(ValueError, match="`what` must be one of"):
        with capture({}, what="outptu"):  # type: ignore[arg-type]
            pass
