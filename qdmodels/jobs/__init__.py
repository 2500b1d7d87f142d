"""Sweeps as resumable job sets: a typed spec, a compute planner, and local / process-pool / Ray executors.

See ``docs/sweeps.md``. Typical use::

    from qdmodels.jobs import load_spec, plan, run_sweep, sweep_status
    spec = load_spec("sweep.yaml")
    print(plan(spec).render())
    run = run_sweep(spec, "runs/sweep1", executor="pool", workers=2)
"""

from qdmodels.jobs.executors import ExecutorName, SweepRun, run_jobs, run_sweep
from qdmodels.jobs.planner import (
    InfeasibleSweepWarning,
    JobEstimate,
    SweepPlan,
    Throughput,
    measure_throughput,
    plan,
)
from qdmodels.jobs.spec import (
    Job,
    JobKind,
    ModelSpec,
    SweepSpec,
    canonical_json,
    corpus_sha256,
    expand,
    job_id,
    load_spec,
)
from qdmodels.jobs.store import (
    JobState,
    JobStore,
    SweepInputsError,
    SweepStatus,
    merge_records,
    sweep_status,
)
from qdmodels.jobs.worker import JobOutcome, run_job

__all__ = [
    "ExecutorName",
    "InfeasibleSweepWarning",
    "Job",
    "JobEstimate",
    "JobKind",
    "JobOutcome",
    "JobState",
    "JobStore",
    "ModelSpec",
    "SweepInputsError",
    "SweepPlan",
    "SweepRun",
    "SweepSpec",
    "SweepStatus",
    "Throughput",
    "canonical_json",
    "corpus_sha256",
    "expand",
    "job_id",
    "load_spec",
    "measure_throughput",
    "merge_records",
    "plan",
    "run_job",
    "run_jobs",
    "run_sweep",
    "sweep_status",
]
