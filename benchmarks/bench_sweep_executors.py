"""Same small sweep on the process pool and on Ray with 1 and 2 workers: speed-up, overhead per job, equal records.

Every configuration runs the identical job set into a fresh output directory and must give the same records
(content keys, provenance ignored) as the local sequential run. Reported per configuration:

* ``wall_s``: wall time of the executor phase (worker start-up, model loads and IPC included);
* ``job_s_sum``: seconds spent inside jobs (model load included in each worker's first job);
* ``speedup``: wall of the same executor with 1 worker divided by this wall;
* ``overhead_per_job_s``: ``(wall_s * workers - job_s_sum) / n_jobs``, the worker-seconds per job not spent
  inside a job (process/actor start-up, scheduling, pickling, idle workers at the end).

Ray is started once (``ray.init(num_cpus=2)``; its start-up time is reported separately) and reused.
The planner's estimate for one worker is reported next to the measured local wall time.

    python benchmarks/bench_sweep_executors.py                      # tiny model, seconds
    python benchmarks/bench_sweep_executors.py --model smollm2-135m --limit 4 --langs eng_Latn,heb_Hebr
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import _common as c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny:llama", help="load_model name, or tiny:<family> (inline texts, no data)")
    p.add_argument("--langs", default="eng_Latn,heb_Hebr", help="NTREX languages for a real model")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=4, help="items per language (real model)")
    p.add_argument("--schemes", default="int4-g16-sym,int3-ch-sym")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--tiny-repeat", type=int, default=8, help="tiny model: copies of each text (job size)")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()

    from qdmodels.jobs import SweepSpec, expand, run_sweep
    from qdmodels.jobs.planner import plan
    from qdmodels.models.tiny import TINY_TEXT
    from qdstats.records import read_records

    info = c.machine()
    schemes = [s for s in args.schemes.split(",") if s]
    if args.model.startswith("tiny:"):
        texts = {"eng_Latn": [TINY_TEXT[0]] * args.tiny_repeat, "heb_Hebr": [TINY_TEXT[4]] * args.tiny_repeat,
                 "deu_Latn": [TINY_TEXT[1]] * args.tiny_repeat, "tur_Latn": [TINY_TEXT[2]] * args.tiny_repeat}
        texts = {k: [f"{t} ({i})" for i, t in enumerate(v)] for k, v in texts.items()}
        spec = SweepSpec(name="bench-executors", models=[{"name": args.model, "n_layers": 4}], corpus="inline",
                         texts=texts, schemes=schemes, batch_size=args.batch_size)
    else:
        spec = SweepSpec(name="bench-executors", models=[args.model], languages=[x for x in args.langs.split(",") if x],
                         split=args.split, limit=args.limit, schemes=schemes, batch_size=args.batch_size,
                         data_dir=os.environ.get("QD_DATA_DIR"))
    n_jobs = len(expand(spec))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_p = Path(tmp)
        est = plan(spec, workers=1, cache_dir=tmp_p / "cache", max_seconds=2.0)
        configs: list[tuple[str, int]] = [("local", 1), ("pool", 1), ("pool", 2)]
        ray_init_s = None
        ray = None
        if not args.no_ray:
            try:
                import ray as _ray

                ray = _ray
                configs += [("ray", 1), ("ray", 2)]
            except ImportError:
                print("ray not installed: skipping the Ray configurations")
        rows = []
        ref_keys = None
        for executor, workers in configs:
            if executor == "ray" and ray is not None and not ray.is_initialized():
                t0 = time.perf_counter()
                ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
                ray_init_s = time.perf_counter() - t0
            out = tmp_p / f"{executor}-{workers}"
            if executor == "local":
                from qdmodels.jobs import worker

                worker._MODEL_CACHE.clear()  # the planner loaded it: make the local run pay its model load too
            run = run_sweep(spec, out, executor=executor, workers=workers, progress=False)  # type: ignore[arg-type]
            keys = sorted(r.content_key() for r in read_records(out / "records.jsonl"))
            if ref_keys is None:
                ref_keys = keys
            job_sum = sum(run.job_seconds.values())
            rows.append({"executor": executor, "workers": workers, "wall_s": run.wall_seconds, "job_s_sum": job_sum,
                         "n_jobs": n_jobs, "failed": len(run.failed), "records_equal_local": keys == ref_keys,
                         "overhead_per_job_s": (run.wall_seconds * workers - job_sum) / n_jobs,
                         "model_loads": sum(run.model_loads.values())})
            print(f"{executor:>5} x{workers}: wall {run.wall_seconds:7.2f} s, inside jobs {job_sum:7.2f} s, "
                  f"overhead/job {rows[-1]['overhead_per_job_s']:.3f} s, equal records {keys == ref_keys}")
        if ray is not None and ray.is_initialized():
            ray.shutdown()
    base = {r["executor"]: r["wall_s"] for r in rows if r["workers"] == 1}
    for r in rows:
        r["speedup"] = base[r["executor"]] / r["wall_s"]
        if r["workers"] == 2:
            print(f"{r['executor']}: speed-up 1 -> 2 workers = {r['speedup']:.2f}x")
    local_wall = next(r["wall_s"] for r in rows if r["executor"] == "local")
    print(f"planner: expected {est.wall_seconds:.2f} s (1 worker, incl. model load) vs local measured {local_wall:.2f} s")
    c.write("sweep_executors", {
        "machine": info, "model": args.model, "spec": spec.model_dump(mode="json", exclude={"texts"}), "n_jobs": n_jobs,
        "ray_init_s": ray_init_s, "results": rows,
        "planner": {"expected_wall_s_1_worker": est.wall_seconds, "expected_compute_s": est.total_seconds,
                    "measured_local_wall_s": local_wall},
        "all_records_equal": all(r["records_equal_local"] for r in rows),
    }, args.out)


if __name__ == "__main__":
    main()
