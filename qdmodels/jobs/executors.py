"""Run the pending jobs of a sweep: local sequential, local process pool, or Ray; same records from all three.

The driver (:func:`run_sweep`) expands the spec, skips jobs that are done in ``<out>/jobs/``, hands the rest
to an executor, and writes each job's records atomically as soon as it comes back (so a crash loses only the
jobs in flight). Workers return records; only the driver writes files, so a Ray cluster needs no shared
filesystem.

Executors
---------
``'local'``
    In this process, one job after another (the model is loaded once and reused).
``'pool'``
    :class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method (fork is unsafe with
    torch's thread pools). Each worker process loads a model the first time one of its jobs needs it and
    keeps it for its later jobs (:func:`qdmodels.jobs.worker.get_model`).
``'ray'``
    ``workers`` Ray actors, each holding its loaded model across jobs, fed through :class:`ray.util.ActorPool`.
    Uses the running Ray instance if ``ray.is_initialized()``; else ``ray.init(address=address)`` for an
    existing cluster, or a local one (``num_cpus=workers``) that is shut down at the end.

Identical results: every job runs with the spec's pinned torch thread count (``SweepSpec.threads``, part of
the job id) in whatever process runs it, jobs restore the model bit-exactly, and records are compared with
:meth:`~qdstats.records.Measurement.content_key`, which ignores provenance (tests check all three executors).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qdmodels.jobs.spec import Job, SweepSpec, expand
from qdmodels.jobs.store import JobStore, merge_records
from qdmodels.jobs.worker import JobOutcome, init_worker, run_job
from qdstats.records import FailedMeasurement
from qdstats.validation import check_int, check_option

__all__ = ["ExecutorName", "SweepRun", "run_jobs", "run_sweep"]

ExecutorName = Literal["local", "pool", "ray"]
EXECUTORS: tuple[str, ...] = ("local", "pool", "ray")


@dataclass
class SweepRun:
    """Result of :func:`run_sweep`.

    Attributes
    ----------
    out : Path
        Sweep output directory.
    executor : str
    workers : int
    n_jobs : int
        Jobs in the spec.
    skipped : list of str
        Ids found done before this run.
    computed : list of str
        Ids finished by this run.
    failed : list of str
        Ids that failed in this run (their ``.failed.jsonl`` holds the error).
    wall_seconds : float
        Wall time of the executor phase (workers' start-up included).
    job_seconds : dict
        Job id -> seconds spent inside the job (model load included for a worker's first job).
    worker_pids : dict
        Job id -> pid of the process that ran it.
    model_loads : dict
        Pid -> number of model loads in that process during this run (1 per worker and model when the
        per-worker cache works).
    records_path : Path or None
        The merged record file (when ``merge=True``).
    """

    out: Path
    executor: str
    workers: int
    n_jobs: int
    skipped: list[str] = field(default_factory=list)
    computed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0
    job_seconds: dict[str, float] = field(default_factory=dict)
    worker_pids: dict[str, int] = field(default_factory=dict)
    model_loads: dict[int, int] = field(default_factory=dict)
    records_path: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        """Plain-text end summary."""
        n_run = len(self.computed) + len(self.failed)
        mean = (sum(self.job_seconds.values()) / len(self.job_seconds)) if self.job_seconds else float("nan")
        lines = [
            (f"sweep: {self.n_jobs} jobs | {len(self.skipped)} already done | {len(self.computed)} computed | "
            f"{len(self.failed)} failed"),
            (f"executor {self.executor} x{self.workers}: wall {self.wall_seconds:.2f} s for {n_run} jobs "
            f"(mean {mean:.2f} s inside a job)"),
            f"records: {self.records_path if self.records_path else self.out / 'jobs'}",
        ]
        if self.failed:
            lines.append(f"failed jobs (retried on the next run): {', '.join(i[:12] for i in self.failed)}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- executors
def _local(jobs: Sequence[Job], *, workers: int, data_dir: str | None,
           address: str | None, job_delay: float) -> Iterator[JobOutcome]:
    for j in jobs:
        if job_delay:
            time.sleep(job_delay)
        yield run_job(j, data_dir)


def _pool(jobs: Sequence[Job], *, workers: int, data_dir: str | None,
          address: str | None, job_delay: float) -> Iterator[JobOutcome]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    ex = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker, initargs=(data_dir,))
    finished = False
    try:
        futs = {ex.submit(run_job, j.model_dump(mode="json"), data_dir): j for j in jobs}
        for fut in as_completed(futs):
            try:
                out = fut.result()
            except Exception as exc:  # noqa: BLE001 - the worker process died (BrokenProcessPool, pickling...)
                out = _infra_failure(futs[fut], exc)
            yield out
        finished = True
    finally:
        # on Ctrl-C or an error in the driver, do not run the queued jobs: cancel them and return
        ex.shutdown(wait=finished, cancel_futures=not finished)


def _ray(jobs: Sequence[Job], *, workers: int, data_dir: str | None,
         address: str | None, job_delay: float) -> Iterator[JobOutcome]:
    try:
        import ray
        from ray.util import ActorPool
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("executor 'ray' needs Ray: pip install 'qd[ray]' (or pip install ray).") from exc

    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        @ray.remote(num_cpus=1)
        class _Worker:  # pragma: no cover - runs in Ray worker processes
            def __init__(self, data_dir: str | None) -> None:
                init_worker(data_dir)

            def run(self, job: dict[str, Any]) -> JobOutcome:
                return run_job(job, data_dir)

        actors = [_Worker.remote(data_dir) for _ in range(workers)]
        pool = ActorPool(actors)
        by_id = {j.id: j for j in jobs}
        for j in jobs:
            pool.submit(lambda a, v: a.run.remote(v), j.model_dump(mode="json"))
        done: set[str] = set()
        while pool.has_next():
            try:
                out = pool.get_next_unordered()
            except Exception as exc:  # noqa: BLE001 - an actor died; report the jobs it never returned
                for i in [i for i in by_id if i not in done]:
                    yield _infra_failure(by_id[i], exc)
                return
            done.add(out.job_id)
            yield out
        for a in actors:
            ray.kill(a)
    finally:
        if started:
            ray.shutdown()


_IMPLS: dict[str, Callable[..., Iterator[JobOutcome]]] = {"local": _local, "pool": _pool, "ray": _ray}


def _infra_failure(job: Job, exc: BaseException) -> JobOutcome:
    fail = FailedMeasurement.from_exception(exc, routine="qdmodels.jobs.executors", language=job.language,
                                            condition=dict(job.condition), input={"job_id": job.id, "job": job.content()})
    return JobOutcome(job.id, False, [fail], 0.0)


def run_jobs(
    jobs: Sequence[Job], *, executor: ExecutorName = "local", workers: int = 1,
    address: str | None = None, data_dir: str | None = None, job_delay: float = 0.0,
) -> Iterator[JobOutcome]:
    """Run ``jobs`` on an executor and yield each :class:`~qdmodels.jobs.worker.JobOutcome` as it completes.

    Lower-level than :func:`run_sweep`: nothing is written. Options as in :func:`run_sweep`.
    """
    check_option(executor, "executor", EXECUTORS)
    workers = check_int(workers, "workers", minimum=1)
    if not jobs:
        return iter(())
    return _IMPLS[executor](list(jobs), workers=workers, data_dir=data_dir, address=address,
                            job_delay=float(job_delay))


def _progress(enabled: bool, total: int) -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), console=Console(file=sys.stderr, emoji=False, highlight=False), disable=not enabled, transient=False)


def run_sweep(
    spec: SweepSpec,
    out: str | os.PathLike[str],
    *,
    executor: ExecutorName = "local",
    workers: int = 1,
    address: str | None = None,
    retry_failed: bool = True,
    merge: bool = True,
    progress: bool = True,
    job_delay: float = 0.0,
) -> SweepRun:
    """Run every job of ``spec`` that is not done in ``out``; resumable, loss-free, failures recorded.

    Parameters
    ----------
    spec : SweepSpec
        The sweep.
    out : path
        Output directory (``<out>/jobs/<job_id>.jsonl`` per job; see :mod:`qdmodels.jobs.store`).
    executor : {'local', 'pool', 'ray'}, default 'local'
        Where jobs run (see the module docstring).
    workers : int, default 1
        Worker processes (pool) or actors (ray); ignored by ``'local'``.
    address : str, optional
        Ray cluster address (``'ray://host:10001'`` or ``'auto'``); default a local Ray instance.
    retry_failed : bool, default True
        Rerun jobs that failed before (False leaves them failed).
    merge : bool, default True
        Write all finished jobs' records to ``<out>/records.jsonl`` at the end.
    progress : bool, default True
        Rich progress bar across jobs (with ETA) on stderr, and the end summary.
    job_delay : float, default 0.0
        Seconds to sleep before each job (``'local'`` only): slows a tiny sweep down so that tests can
        interrupt it mid-run. Leave 0 otherwise.

    Returns
    -------
    SweepRun
        Ids skipped / computed / failed, wall time, per-job seconds and worker pids, merged file path.

    Raises
    ------
    ValueError
        Unknown ``executor`` (did-you-mean), ``workers`` < 1, ``job_delay`` < 0.
    SweepInputsError
        ``out`` was written by a run with another corpus file (sha256), device or compute dtype.
    ImportError
        ``executor='ray'`` without Ray installed.

    Notes
    -----
    A job that raises is written as a :class:`~qdstats.records.FailedMeasurement` (``<id>.failed.jsonl``) and
    the sweep continues. The driver writes each job file with one atomic rename, so killing the run (even with
    SIGKILL) loses only the jobs in flight; the next run skips every finished job.
    Validated against: an uninterrupted run (content keys equal after a SIGKILL and a rerun) and across the
    three executors (tests/qdmodels/jobs/).
    """
    if not isinstance(spec, SweepSpec):
        raise TypeError(f"`spec` must be a SweepSpec; got {type(spec).__name__}.")
    check_option(executor, "executor", EXECUTORS)
    workers = check_int(workers, "workers", minimum=1)
    if not isinstance(job_delay, (int, float)) or job_delay < 0:
        raise ValueError(f"`job_delay` must be a number >= 0; got {job_delay!r}.")
    store = JobStore(Path(out))
    with store.lock():
        return _run_locked(spec, store, executor=executor, workers=workers, address=address, job_delay=job_delay,
                           retry_failed=retry_failed, merge=merge, progress=progress)


def _run_locked(spec: SweepSpec, store: JobStore, *, executor: str, workers: int, address: str | None,
                job_delay: float, retry_failed: bool, merge: bool, progress: bool) -> SweepRun:
    """The body of :func:`run_sweep`, run while holding the output directory's lock."""
    store.clean_temp_files()
    store.check_inputs(spec)  # refuses a changed corpus file or another device before any job runs
    jobs = expand(spec)
    store.write_spec(spec)
    run = SweepRun(out=store.out, executor=executor, workers=1 if executor == "local" else workers, n_jobs=len(jobs))
    todo = []
    for j in jobs:
        st = store.state(j.id)
        if st == "done" or (st == "failed" and not retry_failed):
            run.skipped.append(j.id)
        else:
            todo.append(j)
    data_dir = spec.data_dir or os.environ.get("QD_DATA_DIR")
    t0 = time.perf_counter()
    with _progress(progress, len(jobs)) as bar:
        from rich.markup import escape

        task = bar.add_task(escape(f"{spec.name} ({executor})"), total=len(jobs), completed=len(run.skipped), failed=0)
        for oc in run_jobs(todo, executor=executor, workers=workers, address=address,
                           data_dir=data_dir, job_delay=job_delay):
            if oc.ok:
                store.write_done(oc.job_id, oc.records)
                run.computed.append(oc.job_id)
            else:
                store.write_failed(oc.job_id, [r for r in oc.records if isinstance(r, FailedMeasurement)])
                run.failed.append(oc.job_id)
            run.job_seconds[oc.job_id] = oc.seconds
            run.worker_pids[oc.job_id] = oc.pid
            run.model_loads[oc.pid] = run.model_loads.get(oc.pid, 0) + oc.model_loads
            bar.update(task, advance=1, failed=len(run.failed))
    run.wall_seconds = time.perf_counter() - t0
    if merge:
        merge_records(spec, store.out)
        run.records_path = store.out / "records.jsonl"
    if progress:
        print(run.summary(), file=sys.stderr)
    return run
