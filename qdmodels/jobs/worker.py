"""Running one job: load (or reuse) the model, load the items, compute, return records or a failure.

Every executor calls :func:`run_job` in the process that does the work. The loaded model is cached per
process (:func:`get_model`, one model at a time), so a worker that runs many jobs of one model loads it once.
Jobs restore the model exactly (the compression context managers restore bit-exactly), so reusing it across
jobs cannot leak one condition into the next.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any

from qdmodels.jobs.spec import Job, ModelSpec
from qdstats.records import FailedMeasurement, Record

__all__ = ["JobOutcome", "get_model", "init_worker", "job_items", "run_job"]

ROUTINE = "qdmodels.jobs.run_job"
_MODEL_CACHE: dict[str, Any] = {}
_LOADS = {"n": 0}


@dataclass
class JobOutcome:
    """What a job returns to the driver: its records (or failure records), timing and the worker's pid."""

    job_id: str
    ok: bool
    records: list[Record]
    seconds: float
    pid: int = field(default_factory=os.getpid)
    model_loads: int = 0

    @property
    def n_failed(self) -> int:
        return sum(isinstance(r, FailedMeasurement) for r in self.records)


def init_worker(data_dir: str | None = None) -> None:
    """Per-process setup of a pool/Ray worker: the data directory (threads are set per job)."""
    if data_dir:
        os.environ["QD_DATA_DIR"] = data_dir


def get_model(spec: ModelSpec, device: str = "cpu") -> Any:
    """The loaded model of ``spec`` on ``device``, from this process's cache (one model kept; a new one replaces it)."""
    key = spec.model_dump_json() + "@" + device
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _LOADS["n"] += 1
        if spec.name.startswith("tiny:"):
            from qdmodels.models.tiny import tiny_model

            lm = tiny_model(spec.name.split(":", 1)[1], seed=spec.seed or 0, n_layers=spec.n_layers or 2,  # type: ignore[arg-type]
                            device=device)
        else:
            from qdmodels.models.loading import load_model

            lm = load_model(spec.name, revision=spec.revision, dtype=spec.dtype, device=device)
        _MODEL_CACHE[key] = lm
    return _MODEL_CACHE[key]


def model_loads() -> int:
    """How many times this process has loaded a model (for tests of the per-worker cache)."""
    return _LOADS["n"]


def job_items(job: Job, data_dir: str | None = None) -> list[Any]:
    """The items of a job: inline texts wrapped by :func:`~qdmodels.eval.encoding.text_items`, NTREX lines, or the
    user's corpus file read by :func:`~qdmodels.corpora.load_corpus` (whose sha256 must equal ``job.corpus_sha256``:
    a file changed after the sweep was planned is refused)."""
    if job.corpus == "inline":
        from qdmodels.eval.encoding import text_items

        texts = list(job.texts or ())
        if job.limit is not None:
            texts = texts[: job.limit]
        return text_items({job.language: texts}, prefix="inline")
    if job.corpus != "ntrex128":
        from qdmodels.corpora.user import load_corpus

        pc = load_corpus(job.corpus, languages=[job.language], split=job.split, limit=job.limit)
        items = [it for seq in pc.items.values() for it in seq]
        got = {it.corpus.sha256 for it in items if it.corpus is not None}
        if got != {job.corpus_sha256}:
            raise ValueError(f"`corpus` {job.corpus!r} now has sha256 {sorted(got)}, not the {job.corpus_sha256!r} the "
                             "job was made for: the file changed since the sweep was planned.")
        return items
    from qdmodels.corpora.ntrex import load_ntrex

    pc = load_ntrex([job.language], split=job.split, limit=job.limit, data_dir=data_dir)  # type: ignore[arg-type]
    return [it for seq in pc.items.values() for it in seq]


def _condition(job: Job) -> Any:
    from qdmodels.compress.conditions import QUANT_BACKENDS, EvalCondition, quant_condition
    from qdmodels.compress.pruning import compressed
    from qdmodels.compress.scheme import ProtectionPlan

    c = job.condition
    scheme = None if c["scheme"] == "fp32" else c["scheme"]
    prune = None if c["prune"] == "none" else c["prune"]
    plan = None if c["protect"] == "none" else c["protect"]
    if scheme is None and prune is None:
        return EvalCondition(dict(c))
    if scheme is not None and prune is None and scheme.startswith(tuple(QUANT_BACKENDS)):  # gguf-, torchao-, ...
        backend = quant_condition(scheme, plan=None if plan is None else ProtectionPlan.parse(plan))
        return EvalCondition(dict(c), backend.apply, backend.check)

    def apply(model: Any) -> contextlib.AbstractContextManager[Any]:
        return compressed(model, scheme=scheme, prune=prune, plan=plan)

    return EvalCondition(dict(c), apply)


def compute_job(job: Job, data_dir: str | None = None) -> list[Record]:
    """The records of a job (exceptions propagate; :func:`run_job` turns them into failure records).

    Runs with ``job.params['threads']`` torch threads (restored afterwards), whatever the executor.
    """
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(int(job.params.get("threads", prev)))
    try:
        return _compute(job, data_dir)
    finally:
        torch.set_num_threads(prev)


def _compute(job: Job, data_dir: str | None) -> list[Record]:
    lm = get_model(job.model, job.params.get("device", "cpu"))
    items = job_items(job, data_dir)
    if job.kind == "eval":
        from qdmodels.eval.scoring import evaluate_conditions

        res = evaluate_conditions(lm, items, [_condition(job)], batch_size=int(job.params["batch_size"]),
                                  max_batch_tokens=job.params.get("max_batch_tokens"),
                                  compute_dtype=job.params.get("compute_dtype", "float32"), progress=False)
        return [r for er in res.values() for r in er.records]
    from qdmodels.eval.sensitivity import sweep_layers

    p = job.params
    res = sweep_layers(lm, items, job.condition["scheme"], granularity=p["granularity"], layers=p["layers"],
                       prefix_cache=p["prefix_cache"], batch_size=int(p["batch_size"]), n_resamples=int(p["n_resamples"]),
                       confidence_level=float(p["confidence_level"]), rng=job.seed, progress=False)
    return list(res.records)


def run_job(job: Job | dict[str, Any], data_dir: str | None = None) -> JobOutcome:
    """Run one job and never raise for a job's own error: it becomes a FailedMeasurement.

    Parameters
    ----------
    job : Job or dict
        The job (a dict is validated, as sent across processes).
    data_dir : str, optional
        Data directory for corpus loaders.

    Returns
    -------
    JobOutcome
        ``ok=True`` with the records, or ``ok=False`` with FailedMeasurement record(s): the job's exception
        (type, message, traceback; ``input`` holds the job id and content so it can be retried), or the
        unit failures that :func:`~qdmodels.eval.sensitivity.sweep_layers` recorded.
    """
    if not isinstance(job, Job):
        job = Job.model_validate(job)
    t0 = time.perf_counter()
    loads0 = model_loads()
    try:
        records = compute_job(job, data_dir)
        failures = [r for r in records if isinstance(r, FailedMeasurement)]
        if failures:
            return JobOutcome(job.id, False, failures, time.perf_counter() - t0, model_loads=model_loads() - loads0)
        return JobOutcome(job.id, True, records, time.perf_counter() - t0, model_loads=model_loads() - loads0)
    except Exception as exc:  # noqa: BLE001 - a failed job is data; the sweep goes on
        fail = FailedMeasurement.from_exception(
            exc, routine=ROUTINE, language=job.language, condition=dict(job.condition),
            input={"job_id": job.id, "job": job.content()},
        )
        return JobOutcome(job.id, False, [fail], time.perf_counter() - t0, model_loads=model_loads() - loads0)
