"""Compute planner: token counts from the real tokenizer, cached throughput, scaling, infeasibility warnings."""

from __future__ import annotations

import json
import warnings

import pytest

from qdmodels.jobs import expand, run_sweep
from qdmodels.jobs.planner import InfeasibleSweepWarning, measure_throughput, plan

from .conftest import TEXTS, make_spec


@pytest.fixture()
def cache(tmp_path):
    return tmp_path / "cache"


def test_tokens_are_counted_with_the_models_tokenizer(cache):
    """Oracle: encode_item on the same texts (context token excluded)."""
    from qdmodels.eval.encoding import encode_item, text_items
    from qdmodels.models.tiny import tiny_tokenizer

    spec = make_spec()
    p = plan(spec, cache_dir=cache, max_seconds=0.2)
    tok = tiny_tokenizer()
    for lang, texts in TEXTS.items():
        want = sum(encode_item(tok, it).n_tokens for it in text_items({lang: texts}))
        got = {e.n_tokens for e in p.jobs if e.language == lang}
        assert got == {want}
    assert len(p.jobs) == len(expand(spec))
    assert all(e.seconds > 0 and e.memory_bytes > 0 for e in p.jobs)


def test_throughput_is_cached_per_model_and_machine(cache):
    from qdmodels.eval.encoding import text_items
    from qdmodels.models.tiny import tiny_model

    lm = tiny_model("gpt2")
    items = text_items(TEXTS)
    a = measure_throughput(lm, items, batch_size=2, threads=1, max_seconds=0.2, cache_dir=cache, apply_keys=["int4-g16-sym"])
    b = measure_throughput(lm, items, batch_size=2, threads=1, max_seconds=0.2, cache_dir=cache, apply_keys=["int4-g16-sym"])
    assert a == b  # the second call read the cache (same timestamp and numbers)
    assert a.tokens_per_second > 0 and a.apply_seconds["int4-g16-sym"] > 0
    data = json.loads((cache / "throughput.json").read_text())
    assert list(data) == [a.key] and data[a.key]["machine"]["cpu_count"] >= 1
    # another model (different weights) is another cache entry
    c = measure_throughput(tiny_model("gpt2", seed=1), items, batch_size=2, threads=1, max_seconds=0.2, cache_dir=cache)
    assert c.key != a.key
    # a new apply key is measured and added without re-timing from scratch being required
    d = measure_throughput(lm, items, batch_size=2, threads=1, max_seconds=0.2, cache_dir=cache, apply_keys=["2:4"])
    assert "2:4" in d.apply_seconds
    e = measure_throughput(lm, items, batch_size=2, threads=1, max_seconds=0.2, cache_dir=cache, refresh=True)
    assert e.measured_at >= a.measured_at


def test_time_scales_with_conditions_and_done_jobs_cost_nothing(cache, tmp_path):
    small = plan(make_spec(schemes=["int4-g16-sym"], protect=["none"]), cache_dir=cache, max_seconds=0.2)
    big = plan(make_spec(), cache_dir=cache, max_seconds=0.2)
    assert len(big.jobs) == 10 and len(small.jobs) == 4
    assert big.total_seconds > small.total_seconds
    per_job = {e.label: e.seconds for e in small.jobs}
    assert all(abs(per_job[e.label] - e.seconds) < 1e-12 for e in big.jobs if e.label in per_job)
    spec = make_spec(schemes=["int4-g16-sym"], protect=["none"])
    run_sweep(spec, tmp_path / "out", progress=False)
    done = plan(spec, cache_dir=cache, out=tmp_path / "out", max_seconds=0.2)
    assert {e.state for e in done.jobs} == {"done"} and done.total_seconds == 0.0 and done.wall_seconds == 0.0


def test_layer_sweep_costs_more_than_eval(cache):
    kw = {"schemes": ["int4-g16-sym"], "protect": ["none"], "models": ["tiny:llama"]}
    ev = plan(make_spec(**kw), cache_dir=cache, max_seconds=0.2)
    ls = plan(make_spec(kind="layer_sweep", n_resamples=10, **kw), cache_dir=cache, max_seconds=0.2)
    q_ev = [e for e in ev.jobs if "int4" in e.label]
    assert all(b.seconds > a.seconds for a, b in zip(q_ev, ls.jobs))
    # the prefix cache (the runtime share is this process's RSS, which differs between the two calls)
    assert all(b.memory_bytes - ls.runtime_bytes > a.memory_bytes - ev.runtime_bytes for a, b in zip(q_ev, ls.jobs))


def test_infeasible_warnings(cache):
    spec = make_spec(schemes=["int4-g16-sym"], protect=["none"])
    with pytest.warns(InfeasibleSweepWarning, match="budget"):
        p = plan(spec, cache_dir=cache, budget_seconds=1e-9, max_seconds=0.2)
    assert not p.feasible and "budget" in p.warnings[0]
    with pytest.warns(InfeasibleSweepWarning, match="memory"):
        p = plan(spec, cache_dir=cache, memory_bytes=1, workers=2, max_seconds=0.2)
    assert p.peak_memory_bytes == 2 * max(e.memory_bytes for e in p.jobs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = plan(spec, cache_dir=cache, budget_seconds=1e6, memory_bytes=2**50, max_seconds=0.2)
    assert ok.feasible
    text = ok.render()
    assert "tokens/s" in text and "expected wall" in text and "tiny:gpt2 eng_Latn int4-g16-sym" in text


@pytest.mark.parametrize("kw, match", [({"workers": 0}, "workers"), ({"budget_seconds": -1}, "budget_seconds")])
def test_bad_options(cache, kw, match):
    with pytest.raises(ValueError, match=match):
        plan(make_spec(), cache_dir=cache, **kw)
