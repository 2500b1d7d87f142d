"""Executors: local, process pool and Ray give the same records; failures are data; reruns resume."""

from __future__ import annotations

import importlib.util
import os

import pytest

from qdmodels.jobs import JobStore, expand, run_sweep
from qdmodels.jobs.worker import run_job
from qdstats.records import FailedMeasurement, read_records

from .conftest import TEXTS, TOO_LONG, content_keys, make_spec


def _all_records(out) -> list:
    return read_records(out / "records.jsonl")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The reference: the spec run by the local executor (1 thread)."""
    out = tmp_path_factory.mktemp("local")
    spec = make_spec()
    run = run_sweep(spec, out, executor="local", progress=False)
    return spec, out, run


def test_local_matches_direct_evaluation(local_run):
    """Oracle: evaluate_conditions called directly on the same items and conditions (1 torch thread, as pinned)."""
    import torch

    from qdmodels.compress.conditions import EvalCondition
    from qdmodels.eval.scoring import evaluate_conditions
    from qdmodels.eval.encoding import text_items
    from qdmodels.compress.pruning import compressed
    from qdmodels.models.tiny import tiny_model

    spec, out, run = local_run
    assert run.ok and len(run.computed) == 10 and not run.skipped
    lm = tiny_model("gpt2")
    expected = []
    for lang, texts in TEXTS.items():
        items = text_items({lang: texts}, prefix="inline")
        conds = [EvalCondition({"scheme": "fp32", "protect": "none", "prune": "none"})]
        for c in spec.conditions():
            plan = None if c["protect"] == "none" else c["protect"]
            conds.append(EvalCondition(c, lambda m, s=c["scheme"], p=plan: compressed(m, scheme=s, plan=p)))
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            res = evaluate_conditions(lm, items, conds, batch_size=2, progress=False)
        finally:
            torch.set_num_threads(prev)
        for er in res.values():
            expected.extend(er.records)
    assert content_keys(_all_records(out)) == content_keys(expected)


def test_rerun_skips_everything(local_run, tmp_path):
    spec, out, _ = local_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "jobs").iterdir()}
    run = run_sweep(spec, out, executor="local", progress=False)
    assert len(run.skipped) == 10 and not run.computed
    assert {p.name: p.stat().st_mtime_ns for p in (out / "jobs").iterdir()} == before


def test_partial_rerun_recomputes_only_missing(local_run, tmp_path):
    """Delete two job files from a copy: only those two are recomputed, and the records are the same."""
    import shutil

    spec, out, _ = local_run
    dst = tmp_path / "copy"
    shutil.copytree(out, dst)
    jobs = expand(spec)
    for j in (jobs[2], jobs[7]):
        (dst / "jobs" / f"{j.id}.jsonl").unlink()
    run = run_sweep(spec, dst, executor="local", progress=False)
    assert sorted(run.computed) == sorted([jobs[2].id, jobs[7].id])
    assert content_keys(_all_records(dst)) == content_keys(_all_records(out))


def test_failing_job_is_recorded_and_others_complete(tmp_path):
    spec = make_spec(texts={**TEXTS, **TOO_LONG}, schemes=["int4-g16-sym"], protect=["none"])
    run = run_sweep(spec, tmp_path, executor="local", progress=False)
    jobs = expand(spec)
    bad = [j.id for j in jobs if j.language == "fin_Latn"]
    assert sorted(run.failed) == sorted(bad) and len(bad) == 2
    assert len(run.computed) == 4
    store = JobStore(tmp_path)
    for i in bad:
        (f,) = store.read_failed(i)
        assert isinstance(f, FailedMeasurement)
        assert f.error.error_type == "ValueError" and "context" in f.error.message
        assert f.input["job_id"] == i and f.language == "fin_Latn"
    recs = _all_records(tmp_path)
    assert {r.language for r in recs} == {"eng_Latn", "heb_Hebr"}
    # a rerun retries the failures (they fail again), skipping the finished jobs
    again = run_sweep(spec, tmp_path, executor="local", progress=False)
    assert sorted(again.failed) == sorted(bad) and len(again.skipped) == 4
    # ... unless told not to
    assert run_sweep(spec, tmp_path, progress=False, retry_failed=False).failed == []


def test_run_job_never_raises_for_a_job_error():
    job = expand(make_spec(texts=TOO_LONG, schemes=[], protect=["none"]))[0]
    out = run_job(job.model_dump(mode="json"))
    assert not out.ok and out.n_failed == 1 and out.job_id == job.id


def test_layer_sweep_job_matches_sweep_layers(tmp_path):
    """Oracle: sweep_layers called directly with the same scheme, seed and options."""
    from qdmodels.eval.encoding import text_items
    from qdmodels.eval.sensitivity import sweep_layers
    from qdmodels.models.tiny import tiny_model

    spec = make_spec(kind="layer_sweep", models=["tiny:llama"], schemes=["int4-g16-sym"], protect=["none"],
                     seeds=[3], n_resamples=20, texts={"eng_Latn": TEXTS["eng_Latn"]})
    run = run_sweep(spec, tmp_path, progress=False)
    assert run.ok
    import torch

    lm = tiny_model("llama")
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with pytest.warns(Warning):
            res = sweep_layers(lm, text_items({"eng_Latn": TEXTS["eng_Latn"]}, prefix="inline"), "int4-g16-sym",
                               n_resamples=20, rng=3, batch_size=2, progress=False)
    finally:
        torch.set_num_threads(prev)
    assert content_keys(_all_records(tmp_path)) == content_keys(res.records)


@pytest.mark.parametrize("kw, match", [({"executor": "dask"}, "executor"), ({"workers": 0}, "workers"),
                                       ({"job_delay": -1}, "job_delay")])
def test_bad_options(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        run_sweep(make_spec(schemes=[], protect=["none"]), tmp_path, progress=False, **kw)


@pytest.mark.slow
def test_pool_matches_local_and_caches_model_per_worker(local_run, tmp_path):
    spec, out, _ = local_run
    run = run_sweep(spec, tmp_path, executor="pool", workers=2, progress=False)
    assert run.ok and len(run.computed) == 10
    assert content_keys(_all_records(tmp_path)) == content_keys(_all_records(out))
    pids = set(run.worker_pids.values())
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    # each worker loaded the (single) model once and reused it for all its jobs
    assert run.model_loads == {p: 1 for p in pids}


@pytest.mark.slow
def test_ray_matches_local(local_run, tmp_path):
    if importlib.util.find_spec("ray") is None:
        print("ray is not installed: pip install 'qd[ray]'")
        pytest.skip("ray is not installed: pip install 'qd[ray]'")
    import ray

    spec, out, _ = local_run
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run = run_sweep(spec, tmp_path, executor="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    assert run.ok and len(run.computed) == 10, run.summary()
    assert content_keys(_all_records(tmp_path)) == content_keys(_all_records(out))
    assert os.getpid() not in set(run.worker_pids.values())


@pytest.mark.integration
def test_ntrex_sweep_on_real_data(tmp_path):
    """Real NTREX-128 items through the job runner (tiny model); skipped without the data directory."""
    from qdmodels.corpora.datadir import resolve_data_dir
    from qdmodels.jobs import SweepSpec

    try:
        data = resolve_data_dir(None)
    except Exception as exc:  # noqa: BLE001 - any resolution failure means no data here
        pytest.skip(f"no data directory: {exc}")
    if not (data / "ntrex128").is_dir():
        pytest.skip(f"NTREX-128 not in {data}")
    spec = SweepSpec(name="ntrex", models=["tiny:gpt2"], languages=["eng", "deu"], split="test", limit=2,
                     schemes=["int4-g16-sym"], batch_size=2)
    run = run_sweep(spec, tmp_path, progress=False)
    assert run.ok, [JobStore(tmp_path).read_failed(i)[0].error.message for i in run.failed]
    recs = _all_records(tmp_path)
    assert {r.language for r in recs} == {"eng_Latn", "deu_Latn"}
    assert {r.corpus.corpus_id for r in recs} == {"ntrex128"}
    assert len({r.item_id for r in recs}) == 2  # the same two lines in both languages (paired)
