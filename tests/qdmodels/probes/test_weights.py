"""Tests for qdmodels.probes.weights: exact statistics against scipy/numpy, planted outliers, degenerate tensors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats as sst
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qdmodels.probes import weights as wmod
from qdmodels.models.sites import site_map
from qdmodels.models.tiny import tiny_model
from qdmodels.probes.weights import tensor_stats, weight_stats
from qdstats.validation import DegenerateDataWarning


def _by(recs, site, q):
    return [r for r in recs if r.site == site and r.quantity == q]


@pytest.mark.parametrize("family", ["gpt2", "llama", "bloom"])
def test_against_scipy(tiny_models, family):
    """Oracle: scipy.stats.kurtosis(fisher=True, bias=True) and numpy on float64 copies; rtol 1e-10 (same formula)."""
    lm = tiny_models[family]
    sm = site_map(lm.model)
    recs = weight_stats(lm, k=2.5)
    sites = {r.site for r in recs}
    assert "embed_tokens" in sites and any(s.endswith("mlp.down_proj") for s in sites)
    for name in sites:
        w = sm.get(name).param.detach().double().numpy()
        x = w.ravel()
        np.testing.assert_allclose(_by(recs, name, "weight.excess_kurtosis")[0].value, sst.kurtosis(x), rtol=1e-10)
        np.testing.assert_allclose(_by(recs, name, "weight.std")[0].value, x.std(), rtol=1e-10)
        np.testing.assert_allclose(_by(recs, name, "weight.absmax")[0].value, np.abs(x).max(), rtol=0)
        frac = np.mean(np.abs(x - x.mean()) > 2.5 * x.std())
        r = _by(recs, name, "weight.outlier_fraction")[0]
        assert r.value == frac and r.condition["k"] == 2.5
        ck = _by(recs, name, "weight.channel_kurtosis_max")[0]
        w_oi = w.T if sm.get(name).weight_layout == "in_out" else w
        per_ch = sst.kurtosis(w_oi.reshape(w_oi.shape[0], -1), axis=1)
        np.testing.assert_allclose(ck.value, np.nanmax(per_ch), rtol=1e-10)
        assert ck.attributes["channel"] == int(np.nanargmax(per_ch))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_planted_super_weight_found(family):
    """Plant one large weight in a down_proj (GPT-2 Conv1D is [in, out]) and find it at its position."""
    lm = tiny_model(family, seed=3)
    sm = site_map(lm.model)
    site = sm.get("layers.1.mlp.down_proj")
    out_ch, in_ch = 5, 17
    with torch.no_grad():
        if site.weight_layout == "in_out":
            site.param[in_ch, out_ch] = -3.0
        else:
            site.param[out_ch, in_ch] = -3.0
    recs = weight_stats(lm, super_weight_top=2)
    sw = _by(recs, "layers.1.mlp.down_proj", "weight.super_weight")
    assert len(sw) == 2
    assert sw[0].value == -3.0
    assert (sw[0].attributes["out_channel"], sw[0].attributes["in_channel"]) == (out_ch, in_ch)
    assert sw[0].attributes["abs_over_std"] > 20
    assert _by(recs, "layers.1.mlp.down_proj", "weight.absmax")[0].value == 3.0
    # the planted site now has the largest kurtosis and max/std among the down projections
    kurt = {r.site: r.value for r in recs if r.quantity == "weight.excess_kurtosis" and r.site.endswith("down_proj")}
    assert max(kurt, key=kurt.get) == "layers.1.mlp.down_proj"
    assert _by(recs, "layers.1.mlp.down_proj", "weight.channel_kurtosis_max")[0].attributes["channel"] == out_ch


def test_chunked_equals_unchunked(monkeypatch):
    w = torch.randn(37, 11, generator=torch.Generator().manual_seed(0))
    full = tensor_stats(w)
    monkeypatch.setattr(wmod, "_CHUNK_ELEMS", 20)  # forces 1-row chunks
    small = tensor_stats(w)
    np.testing.assert_allclose(small.excess_kurtosis, full.excess_kurtosis, rtol=1e-12)
    np.testing.assert_allclose(small.channel_kurtosis, full.channel_kurtosis, rtol=1e-12)
    assert small.outlier_fraction == full.outlier_fraction and small.argmax == full.argmax


@settings(max_examples=30)
@given(scale=st.floats(0.01, 100), shift=st.floats(-10, 10), seed=st.integers(0, 1000))
def test_kurtosis_affine_invariant(scale, shift, seed):
    w = torch.randn(16, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a, b = tensor_stats(w), tensor_stats(w * scale + shift)
    np.testing.assert_allclose(b.excess_kurtosis, a.excess_kurtosis, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(b.max_over_std * 0 + b.std, a.std * scale, rtol=1e-8)
    assert b.outlier_fraction == a.outlier_fraction


def test_constant_site_nan_with_warning(tiny_llama):
    lm = tiny_model("llama")
    sm = site_map(lm.model)
    with torch.no_grad():
        sm.get("layers.0.attn.q_proj").param.fill_(0.5)
    with pytest.warns(DegenerateDataWarning, match="constant"):
        recs = weight_stats(lm, sites=["layers.0.attn.q_proj"])
    k = _by(recs, "layers.0.attn.q_proj", "weight.excess_kurtosis")[0]
    assert math.isnan(k.value) and "constant" in k.warnings[0]
    assert _by(recs, "layers.0.attn.q_proj", "weight.outlier_fraction")[0].value == 0.0


def test_tied_and_errors(tiny_gpt2):
    recs = weight_stats(tiny_gpt2, sites=["embed_tokens", "lm_head"])
    a = _by(recs, "embed_tokens", "weight.excess_kurtosis")[0]
    b = _by(recs, "lm_head", "weight.excess_kurtosis")[0]
    assert a.value == b.value and a.attributes["tied_with"] == "lm_head"
    with pytest.raises(ValueError, match="`k` must be a positive"):
        weight_stats(tiny_gpt2, k=0)
    with pytest.raises(ValueError, match="`super_weight_top` must be >= 0"):
        weight_stats(tiny_gpt2, super_weight_top=-1)
    with pytest.raises(KeyError, match="matches no site"):
        weight_stats(tiny_gpt2, sites=["layers.9"])
    with pytest.raises(ValueError, match="`model_ref` is required"):
        weight_stats(tiny_gpt2.model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        weight_stats(tiny_gpt2.model, model_ref=tiny_gpt2.ref, sites=["layers.0"])


def test_cli_weights_and_activations(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    import qdmodels.cli.measure as cm
    from qdmodels.cli import _common
    from qdmodels.eval.encoding import text_items
    from qdstats.records import read_records

    monkeypatch.setattr(_common, "load_items", lambda *a, **k: text_items({"eng_Latn": ["The fox.", "A dog."]}))
    app = typer.Typer()
    cm.register(app)
    out = tmp_path / "w.jsonl"
    r = CliRunner().invoke(app, ["weights", "--model", "tiny:llama", "--sites", "layers.0.mlp", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert {x.site for x in read_records(out)} == {"layers.0.mlp.gate_proj", "layers.0.mlp.up_proj", "layers.0.mlp.down_proj"}
    out2 = tmp_path / "a.jsonl"
    r = CliRunner().invoke(app, ["activations", "--model", "tiny:llama", "--out", str(out2), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert {x.quantity for x in read_records(out2)} >= {"act.rms", "act.first_token_ratio"}
    bad = CliRunner().invoke(app, ["weights", "--model", "tiny:llama", "--k", "-1", "--out", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2 and "`k` must be a positive" in bad.output
