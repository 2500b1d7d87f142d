"""Tests for qdmodels.eval.sensitivity: prefix cache = naive forward, sweeps, resumability, protection search."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from qdmodels.eval.encoding import encode_items, text_items
from qdmodels.eval.scoring import evaluate
from qdmodels.eval.batching import make_batches
from qdmodels.compress.rtn import quantized
from qdmodels.eval.sensitivity import PrefixCache, _naive_logprobs, search_protection, site_groups, sweep_layers
from qdmodels.models.blocks import decoder_layers
from qdmodels.models.tiny import FAMILIES, tiny_model
from qdstats.records import FailedMeasurement, Measurement, read_records

# one text longer than Gemma-3's tiny sliding window (16) so local and global attention layers differ
TEXTS = {
    "eng_Latn": ["The quick brown fox jumps over the lazy dog and runs far away into the forest.", "Hi.",
                 "Quantization hurts.", "Der Hund schläft."],
    "heb_Hebr": ["השועל החום המהיר קופץ מעל הכלב העצלן.", "שלום", "בבית הספר", "הכלב ישן."],
}


@pytest.fixture(scope="module")
def items():
    return text_items(TEXTS)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_cache_equals_naive(family, items):
    """Oracle: naive full forward of the perturbed model; atol 1e-5 (fp32 activations, style §2.8)."""
    lm = tiny_model(family, n_layers=3, seed=1)  # own copy: weights are perturbed here
    batches = make_batches(encode_items(lm.model, lm.tokenizer, items), batch_size=3, pad_id=0)
    cache = PrefixCache(lm.model, batches).build()
    naive_fp = _naive_logprobs(lm.model, batches)
    for a, b in zip(cache.fp_logprobs, naive_fp):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=0, atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    for i, layer in enumerate(decoder_layers(lm.model)):
        saved = {n: p.detach().clone() for n, p in layer.named_parameters()}
        with torch.no_grad():
            for p in layer.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        cached = cache.logprobs_from(i)
        naive = _naive_logprobs(lm.model, batches)
        with torch.no_grad():
            for n, p in layer.named_parameters():
                p.copy_(saved[n])
        moved = 0.0
        for a, b, f in zip(cached, naive, cache.fp_logprobs):
            for x, y, z in zip(a, b, f):
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-5, err_msg=f"{family} layer {i}")
                moved = max(moved, float(np.abs(x - z).max()))
        assert moved > 1e-3, f"{family} layer {i}: the perturbation must change the output (test can fail)"


def test_cache_requires_build_and_range(tiny_llama, items):
    batches = make_batches(encode_items(tiny_llama.model, tiny_llama.tokenizer, items[:2]), batch_size=2, pad_id=0)
    cache = PrefixCache(tiny_llama.model, batches)
    with pytest.raises(RuntimeError, match="build"):
        cache.logits_from(0, 0)
    cache.build()
    with pytest.raises(ValueError, match="`start_layer` must be in"):
        cache.logits_from(5, 0)
    partial = PrefixCache(tiny_llama.model, batches, start_layers=[1]).build()
    torch.testing.assert_close(partial.logits_from(1, 0), cache.logits_from(1, 0), rtol=0, atol=0)
    with pytest.raises(ValueError, match="not among the cache's `start_layers`"):
        PrefixCache(tiny_llama.model, batches, start_layers=[0]).build().logits_from(1, 0)
    with pytest.raises(ValueError, match="`start_layers` must be in"):
        PrefixCache(tiny_llama.model, batches, start_layers=[7])


def test_site_groups(tiny_gpt2, tiny_llama):
    g = site_groups(tiny_llama.model)
    assert [x.label for x in g] == ["layers.0", "layers.1"]
    assert all(s.startswith(f"layers.{x.first_layer}.") for x in g for s in x.sites)
    c = site_groups(tiny_gpt2.model, granularity="component", layers=[1])
    assert [x.label for x in c] == ["layers.1.attn", "layers.1.mlp"]
    assert c[0].sites == ("layers.1.attn.qkv_proj", "layers.1.attn.o_proj")
    with pytest.raises(ValueError, match="`granularity`"):
        site_groups(tiny_llama.model, granularity="layr")  # type: ignore[arg-type]


@pytest.mark.parametrize("family", ["llama", "gemma3"])
def test_sweep_matches_evaluate_under_quantization(tiny_models, items, family, tiny_state_guard):
    """Oracle: evaluate() on the model with only that group quantized; atol 1e-4 bit/byte (batching)."""
    lm = tiny_models[family]
    res = sweep_layers(lm, items, "int3-ch-sym", n_resamples=50, progress=False, batch_size=3)
    fp = evaluate(lm, None, items, progress=False)
    assert len(res.records) == 2 * len(TEXTS)
    for r in res.records:
        assert isinstance(r, Measurement) and r.quantity == "sens.delta_bits_per_byte"
        g = next(x for x in site_groups(lm.model) if x.label == r.condition["sites"])
        with quantized(lm, "int3-ch-sym", sites=list(g.sites)):
            q = evaluate(lm, None, [it for it in items if it.language == r.language], progress=False)
        fps = [s for s in fp.scores if s.language == r.language]
        expected = np.mean([a.bits_per_byte - b.bits_per_byte for a, b in zip(q.scores, fps)])
        np.testing.assert_allclose(r.value, expected, rtol=0, atol=1e-4)
        assert r.n == 4 and r.attributes["ci_low"] <= r.value <= r.attributes["ci_high"]
        assert r.condition == {"scheme": "int3-ch-sym", "protect": "none", "prune": "none", "sites": g.label}
        assert r.attributes["prefix_cache"] is True and r.seed == 0


def test_sweep_naive_equals_cached_component(tiny_llama, items, tiny_state_guard):
    a = sweep_layers(tiny_llama, items, "int4-ch-sym", granularity="component", n_resamples=50, progress=False)
    b = sweep_layers(tiny_llama, items, "int4-ch-sym", granularity="component", prefix_cache=False, n_resamples=50,
                     progress=False)
    fa, fb = a.frame(), b.frame()
    assert list(fa["sites"]) == list(fb["sites"]) and "layers.1.mlp" in set(fa["sites"])
    np.testing.assert_allclose(fa["delta_bpb"], fb["delta_bpb"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(fa["ci_low"], fb["ci_low"], rtol=0, atol=1e-6)  # same seed -> same resamples


def test_sweep_resumes_and_records_failures(tiny_llama, items, tmp_path, tiny_state_guard):
    out = tmp_path / "sweep.jsonl"
    first = sweep_layers(tiny_llama, items, "int4-ch-sym", out=out, n_resamples=20, progress=False)
    assert len(read_records(out)) == 4 and not first.skipped
    again = sweep_layers(tiny_llama, items, "int4-ch-sym", out=out, n_resamples=20, progress=False)
    assert again.records == [] and len(again.skipped) == 4
    # drop the last unit (as after a crash): only that unit is recomputed, with the same value
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:-1]))
    third = sweep_layers(tiny_llama, items, "int4-ch-sym", out=out, n_resamples=20, progress=False)
    assert len(third.records) == 1 and len(third.skipped) == 3
    assert third.records[0].value == first.records[-1].value
    # ... and the same bootstrap CI: each unit's generator comes from (seed, language, layer), not the units before it
    assert third.records[0].attributes["ci_low"] == first.records[-1].attributes["ci_low"]
    assert third.records[0].attributes["ci_high"] == first.records[-1].attributes["ci_high"]
    # a different item set is a different unit
    other = sweep_layers(tiny_llama, items[:3], "int4-ch-sym", out=out, n_resamples=20, progress=False)
    assert not other.skipped

    @contextlib.contextmanager
    def flaky(model, scheme, sites):
        if sites[0].startswith("layers.1."):
            raise RuntimeError("simulated failure")
        with quantized(model, scheme, sites=list(sites)):
            yield

    out2 = tmp_path / "flaky.jsonl"
    res = sweep_layers(tiny_llama, items, "int4-ch-sym", out=out2, quantize=flaky, n_resamples=20, progress=False)
    fails = [r for r in res.records if isinstance(r, FailedMeasurement)]
    assert len(fails) == 2 and fails[0].error.message == "simulated failure"
    assert fails[0].condition["sites"] == "layers.1"
    retry = sweep_layers(tiny_llama, items, "int4-ch-sym", out=out2, n_resamples=20, progress=False)
    assert len(retry.records) == 2 and len(retry.skipped) == 2  # failed units are retried


def test_sweep_split_over_languages_equals_one_run(tiny_llama, items, tiny_state_guard):
    """Two runs on one language each write the records of one run on both (values and bootstrap CIs)."""
    def key(r):
        return (r.language, r.condition["sites"])

    def strip(r):
        return r.model_dump(exclude={"provenance"})

    both = sweep_layers(tiny_llama, items, "int4-ch-sym", n_resamples=50, progress=False).records
    parts = [r for lang in ("heb_Hebr", "eng_Latn")
             for r in sweep_layers(tiny_llama, [it for it in items if it.language == lang], "int4-ch-sym",
                                   n_resamples=50, progress=False).records]
    assert sorted(map(key, both)) == sorted(map(key, parts)) and len(both) == 4
    assert {key(r): strip(r) for r in both} == {key(r): strip(r) for r in parts}
    assert len({r.attributes["ci_low"] for r in both}) == 4  # the units do not share one stream's draws


def test_sweep_item_records_and_errors(tiny_llama, items, tiny_state_guard):
    res = sweep_layers(tiny_llama, items[:4], "int4-ch-sym", layers=[0], keep_item_records=True, n_resamples=20,
                       progress=False)
    q = [r for r in res.records if r.quantity == "eval.bits_per_byte"]
    assert len(q) == 4 and q[0].condition["sites"] == "layers.0"
    with pytest.raises(ValueError, match="`n_resamples` must be >= 0"):
        sweep_layers(tiny_llama, items, "int4-ch-sym", n_resamples=-1, progress=False)
    assert res.records[-1].attributes["ci_low"] is not None
    with pytest.raises(TypeError, match="`scheme` must be a QuantScheme"):
        sweep_layers(tiny_llama, items, 4, progress=False)


def test_search_protection(items, tiny_state_guard):
    lm = tiny_model("llama", n_layers=3)
    dev = [it for it in items if it.item_id in ("text:0", "text:1")]
    test = [it for it in items if it.item_id in ("text:2", "text:3")]
    res = search_protection(lm, dev, test, "int3-ch-sym", k=1, progress=False)
    sw = sweep_layers(lm, dev, "int3-ch-sym", n_resamples=0, progress=False).frame()
    assert sw["ci_low"].isna().all()
    worst = int(sw.groupby("sites")["delta_bpb"].mean().idxmax().split(".")[1])
    assert res.layers == (worst,)
    assert res.plan_key == f"layers={worst}"
    assert res.bits_per_weight["protected"] >= res.bits_per_weight["unprotected"]
    protects = {r.condition["protect"] for r in res.test_records}
    assert protects == {"none", f"layers={worst}"}
    assert {r.item_id for r in res.test_records} == {"text:2", "text:3"}
    g = search_protection(lm, dev, test, "int3-ch-sym", k=1, method="greedy", progress=False)
    assert len(g.layers) == 1 and len(g.dev_scores) == 3
    with pytest.raises(ValueError, match="overlap"):
        search_protection(lm, dev, dev, "int3-ch-sym", k=1, progress=False)
    with pytest.raises(ValueError, match="`k` must be <= 2"):
        search_protection(lm, dev, test, "int3-ch-sym", k=3, progress=False)


def test_cli_sweep_layers_resumes(tmp_path, monkeypatch):
    import typer
    from typer.testing import CliRunner

    import qdmodels.cli.measure as cm
    import qdmodels.cli.sweep as cs
    from qdmodels.cli import _common

    monkeypatch.setattr(_common, "load_items", lambda corpus, langs, split, limit, data_dir, sample="first": text_items(TEXTS))
    app = typer.Typer()
    cm.register(app)
    cs.register(app)  # `qd sweep` holds plan/run/status and `layers`, as in qdmodels.cli.main
    out = tmp_path / "s.jsonl"
    args = ["sweep", "layers", "--model", "tiny:gpt2", "--quant", "int4-ch-sym", "--granularity", "component",
            "--layers", "1", "--n-resamples", "20", "--out", str(out), "--no-progress"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert len(read_records(out)) == 4
    r2 = CliRunner().invoke(app, args)
    assert r2.exit_code == 0 and "0 units computed, 4 skipped" in r2.output
    bad = CliRunner().invoke(app, ["sweep", "layers", "--model", "tiny:gpt2", "--quant", "int4-ch-sym",
                                   "--layers", "x", "--out", str(out)])
    assert bad.exit_code == 2 and "`--layers`" in bad.output
