"""`qd sweep plan|run|status SPEC`: sweeps as resumable job sets (see docs/sweeps.md).

Mount with ``app.add_typer(qdmodels.cli.sweep.app, name="sweep")``; the ``layers`` command of
:mod:`qdmodels.cli.measure` is mounted into the same group when that module is present (:func:`register`).
Runnable on its own: ``python -m qdmodels.cli.sweep run SPEC --out DIR``.
Exit codes: 0 ok, 1 a failed run (any job failed), 2 usage or validation error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import ProgressOpt, SpecArg, SpecCorpusOpt, SpecDeviceOpt, SpecDTypeOpt, WorkersOpt
from qdmodels.cli._common import SweepOutOpt as OutOpt

__all__ = ["app", "plan_cmd", "register", "run_cmd", "status_cmd"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Sweeps as resumable job sets: plan, run (local, process pool, Ray), status.")


def _out(spec: Any, out: Path | None) -> Path:
    return out if out is not None else Path("runs") / spec.name


def _spec(spec: Path, corpus: str | None, device: str | None, dtype: str | None) -> Any:
    """The validated spec with the command-line overrides applied (SweepSpec.with_overrides)."""
    from qdmodels.jobs.spec import load_spec
    from qdstats.validation import check_option

    if dtype is not None:
        check_option(dtype, "--dtype", ("float32", "bfloat16"))
    return load_spec(spec).with_overrides(corpus=corpus, device=device, compute_dtype=dtype)


@app.command("plan")
def plan_cmd(
    spec: SpecArg,
    workers: WorkersOpt = 1,
    budget: Annotated[float | None, typer.Option("--budget-hours", help="Warn when the expected wall time exceeds this.")] = None,
    out: OutOpt = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Re-measure throughput even when cached.")] = False,
    corpus: SpecCorpusOpt = None,
    device: SpecDeviceOpt = None,
    dtype: SpecDTypeOpt = None,
) -> None:
    """Expected time and memory per job and in total on this machine (measures throughput once, then caches it).

    Examples:

      qd sweep plan sweep.yaml --workers 2
      qd sweep plan sweep.yaml --budget-hours 4 --out runs/smollm2 --refresh
    """

    def run() -> None:
        from qdmodels.jobs.planner import plan

        s = _spec(spec, corpus, device, dtype)
        p = plan(s, workers=workers, budget_seconds=budget * 3600 if budget is not None else None,
                 out=_out(s, out), refresh=refresh)
        c.echo(p.render())

    c.guard(run)


@app.command("run")
def run_cmd(
    spec: SpecArg,
    executor: Annotated[str, typer.Option("--executor", help="local, pool or ray.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray cluster address (default: a local Ray).")] = None,
    workers: WorkersOpt = 1,
    out: OutOpt = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed/--no-retry-failed", help="Rerun jobs that failed before.")] = True,
    progress: ProgressOpt = True,
    job_delay: Annotated[float, typer.Option("--job-delay", hidden=True, help="Seconds to sleep before each local job (tests).")] = 0.0,
    corpus: SpecCorpusOpt = None,
    device: SpecDeviceOpt = None,
    dtype: SpecDTypeOpt = None,
) -> None:
    """Run every job not yet done in --out; each job's records are written atomically; rerun to resume.

    Examples:

      qd sweep run sweep.yaml --out runs/smollm2
      qd sweep run sweep.yaml --executor pool --workers 2 --no-retry-failed
      qd sweep run sweep.yaml --executor ray --address auto --workers 16
      qd sweep run sweep.yaml --corpus my_sentences.tsv --device auto --out runs/mine
    """

    def run() -> None:
        from qdmodels.jobs.executors import run_sweep

        s = _spec(spec, corpus, device, dtype)
        res = run_sweep(s, _out(s, out), executor=executor, workers=workers,  # type: ignore[arg-type]
                        address=address, retry_failed=retry_failed, progress=progress, job_delay=job_delay)
        if not progress:
            c.err(res.summary())
        if res.failed:
            raise typer.Exit(1)

    c.guard(run)


@app.command("status")
def status_cmd(
    spec: SpecArg,
    out: OutOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every job.")] = False,
    corpus: SpecCorpusOpt = None,
    device: SpecDeviceOpt = None,
    dtype: SpecDTypeOpt = None,
) -> None:
    """Done / failed / pending jobs of SPEC in --out (with each failure's error).

    Examples:

      qd sweep status sweep.yaml --out runs/smollm2
      qd sweep status sweep.yaml -v
    """

    def run() -> None:
        from qdmodels.jobs.store import JobStore
        from qdstats.records import FailedMeasurement

        s = _spec(spec, corpus, device, dtype)
        store = JobStore(_out(s, out))
        st = sweep_status_of(s, store)
        counts = st.counts()
        c.echo(f"{s.name}: {len(st.jobs)} jobs | done {counts['done']} | failed {counts['failed']} | pending {counts['pending']}")
        for j in st.jobs:
            state = st.state[j.id]
            if state == "failed":
                recs = store.read_failed(j.id)
                err = next((r.error for r in recs if isinstance(r, FailedMeasurement)), None)
                msg = f"{err.error_type}: {err.message}" if err else "?"
                c.echo(f"  failed  {j.id[:12]}  {j.describe()}  -- {msg}")
            elif verbose:
                c.echo(f"  {state:<7} {j.id[:12]}  {j.describe()}")

    c.guard(run)


def sweep_status_of(spec: Any, store: Any) -> Any:
    from qdmodels.jobs.spec import expand

    return store.status(expand(spec))


def register(main_app: typer.Typer) -> None:
    """Mount this group as ``qd sweep``, with ``qd sweep layers`` from :mod:`qdmodels.cli.measure` if present.

    Use this *instead of* mounting ``measure.sweep_app`` as ``sweep`` (two groups cannot share a name).
    """
    try:
        from qdmodels.cli import measure

        if not any(getattr(cmd, "name", None) == "layers" for cmd in app.registered_commands):
            app.command("layers")(measure.sweep_layers_cmd)
    except ImportError:  # pragma: no cover
        pass
    main_app.add_typer(app, name="sweep", help="Sweeps as resumable job sets (plan, run, status) and layer sweeps.")


if __name__ == "__main__":  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
