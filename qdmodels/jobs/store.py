"""Where a sweep keeps its results: one atomically written record file per job.

Layout of ``<out>/``::

    spec.json                 the validated spec (informational; never read back as truth)
    inputs.json               corpus sha256, resolved device and compute dtype of the first run: a resumed run
                              that would change records (another corpus file, another device) is refused
    jobs/<job_id>.jsonl       records of a finished job (written with write_records(mode='w'): temp file + rename)
    jobs/<job_id>.failed.jsonl  FailedMeasurement record(s) of a job that raised
    records.jsonl             all finished jobs merged, in job order (qd sweep run writes it at the end)
    .lock                     held (an OS file lock, released when the process ends, even killed) while a run writes

Two runs on one directory would race on the same job files and clean up each other's temp files: the second run
fails at once with :class:`SweepLockedError` naming the holder's pid.

A job is **done** when ``<job_id>.jsonl`` exists and parses as records; a torn or corrupt file (which the
atomic rename makes impossible short of disk corruption) counts as pending and is recomputed. A job is
**failed** when only its ``.failed.jsonl`` exists; a rerun retries it, and success removes the failure file.
Anything else is **pending**. Because files are renamed into place only when complete, a crash (SIGKILL
included) loses at most the jobs that were running.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from qdmodels.jobs.spec import Job, SweepSpec, canonical_json
from qdstats.records import (
    FailedMeasurement,
    Measurement,
    Record,
    RecordFormatError,
    atomic_write_text,
    read_records,
    write_records,
)

__all__ = ["JobState", "JobStore", "SweepInputsError", "SweepLockedError", "SweepStatus", "merge_records", "run_inputs",
           "sweep_status"]


class SweepLockedError(ValueError):
    """Another run holds the sweep's output directory (a usage error: wait for it or choose another ``out``)."""

class SweepInputsError(ValueError):
    """A resumed sweep would use another corpus file or device than the run that wrote its output directory."""


JobState = Literal["done", "failed", "pending"]


def run_inputs(spec: SweepSpec) -> dict[str, str | None]:
    """What a sweep's records depend on beyond the job ids: the corpus (and its sha256), the device it resolves to on
    this machine (``'auto'`` may differ between machines) and the compute dtype."""
    from qdmodels.jobs.spec import corpus_sha256
    from qdmodels.runtime import describe_device, resolve_device

    return {"corpus": spec.corpus, "corpus_sha256": corpus_sha256(spec),
            "device": describe_device(resolve_device(spec.device)), "compute_dtype": spec.compute_dtype}


@dataclass(frozen=True)
class SweepStatus:
    """Done / failed / pending job ids of a sweep (in job order), with the jobs themselves."""

    jobs: tuple[Job, ...]
    state: dict[str, JobState]

    def ids(self, state: JobState) -> list[str]:
        return [j.id for j in self.jobs if self.state[j.id] == state]

    @property
    def done(self) -> list[str]:
        return self.ids("done")

    @property
    def failed(self) -> list[str]:
        return self.ids("failed")

    @property
    def pending(self) -> list[str]:
        return self.ids("pending")

    @property
    def complete(self) -> bool:
        return all(s == "done" for s in self.state.values())

    def counts(self) -> dict[str, int]:
        return {s: len(self.ids(s)) for s in ("done", "failed", "pending")}  # type: ignore[arg-type]


@dataclass
class JobStore:
    """The job files of one sweep output directory.

    Parameters
    ----------
    out : path
        Sweep output directory (created on first write).
    """

    out: Path
    _valid: dict[str, bool] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    @property
    def jobs_dir(self) -> Path:
        return self.out / "jobs"

    def path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.jsonl"

    def failed_path(self, job_id: str) -> Path:
        return self.jobs_dir / f"{job_id}.failed.jsonl"

    def is_done(self, job_id: str) -> bool:
        """True when the job's record file exists and every line parses as a record."""
        p = self.path(job_id)
        if not p.is_file():
            return False
        key = f"{job_id}:{p.stat().st_mtime_ns}:{p.stat().st_size}"
        if key not in self._valid:
            try:
                read_records(p)
                self._valid[key] = True
            except (RecordFormatError, OSError, UnicodeDecodeError):
                self._valid[key] = False
        return self._valid[key]

    def state(self, job_id: str) -> JobState:
        if self.is_done(job_id):
            return "done"
        if self.failed_path(job_id).is_file():
            return "failed"
        return "pending"

    def write_done(self, job_id: str, records: Sequence[Record]) -> Path:
        """Write a finished job's records atomically, then drop any earlier failure file."""
        if any(isinstance(r, FailedMeasurement) for r in records):
            raise ValueError("`records` of a done job must not contain FailedMeasurement; use write_failed.")
        write_records(self.path(job_id), records, mode="w")
        self.failed_path(job_id).unlink(missing_ok=True)
        return self.path(job_id)

    def write_failed(self, job_id: str, failures: Sequence[FailedMeasurement]) -> Path:
        """Write a failed job's FailedMeasurement record(s) atomically."""
        write_records(self.failed_path(job_id), failures, mode="w")
        return self.failed_path(job_id)

    def read(self, job_id: str) -> list[Record]:
        return read_records(self.path(job_id))

    def read_failed(self, job_id: str) -> list[Record]:
        return read_records(self.failed_path(job_id))

    def check_inputs(self, spec: SweepSpec) -> dict[str, str | None]:
        """Compare :func:`run_inputs` with ``<out>/inputs.json`` (written on the first run).

        Raises
        ------
        SweepInputsError
            The corpus file's sha256, the resolved device or the compute dtype differ from the first run's.
        """
        import json

        now = run_inputs(spec)
        path = self.out / "inputs.json"
        if path.is_file():
            before = json.loads(path.read_text(encoding="utf-8"))
            diff = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
            if diff:
                what = "; ".join(f"{k}: first run {a!r}, now {b!r}" for k, (a, b) in diff.items())
                raise SweepInputsError(
                    f"`out` {str(self.out)!r} holds a sweep run with other inputs ({what}); resuming would mix records "
                    "of two corpora or devices. Use another output directory, or restore the original inputs.")
            return now
        atomic_write_text(path, canonical_json(now) + "\n")
        return now

    def write_spec(self, spec: SweepSpec) -> Path:
        return atomic_write_text(self.out / "spec.json", canonical_json(spec.model_dump(mode="json")) + "\n")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``<out>/.lock`` for the block; raise :class:`SweepLockedError` if another process holds it.

        An advisory ``flock`` on POSIX (released by the OS when the holder exits, so a killed run leaves no stale
        lock); elsewhere no lock is taken.
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no locking
            yield
            return
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / ".lock"
        fh = open(path, "a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip() or "unknown"
                raise SweepLockedError(
                    f"`out` {str(self.out)!r} is in use by another sweep run (pid {holder}); wait for it to finish or "
                    "choose another output directory."
                ) from None
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fh.close()  # closing the descriptor releases the lock

    def clean_temp_files(self) -> int:
        """Remove temp files left by writes that a crash interrupted (``.<name>.*.tmp``); returns the count."""
        n = 0
        if self.jobs_dir.is_dir():
            for p in self.jobs_dir.glob(".*.tmp"):
                try:
                    p.unlink()
                    n += 1
                except OSError:
                    pass
        return n

    def status(self, jobs: Sequence[Job]) -> SweepStatus:
        return SweepStatus(jobs=tuple(jobs), state={j.id: self.state(j.id) for j in jobs})


def sweep_status(spec: SweepSpec, out: str | os.PathLike[str]) -> SweepStatus:
    """Done / failed / pending jobs of ``spec`` in the output directory ``out``."""
    from qdmodels.jobs.spec import expand

    return JobStore(Path(out)).status(expand(spec))


def merge_records(
    spec: SweepSpec, out: str | os.PathLike[str], *, dest: str | os.PathLike[str] | None = None,
    include_failed: bool = False,
) -> list[Record]:
    """Concatenate the records of all finished jobs (job order) and write them to ``dest``.

    Parameters
    ----------
    spec : SweepSpec
    out : path
        Sweep output directory.
    dest : path, optional
        Record file to write atomically (default ``<out>/records.jsonl``).
    include_failed : bool, default False
        Also append the FailedMeasurement records of failed jobs.

    Returns
    -------
    list of Measurement or FailedMeasurement

    Raises
    ------
    ValueError
        Records of one model name carry different ``ModelRef`` hashes (the weights changed between runs:
        results from two different models must not be merged).
    """
    from qdmodels.jobs.spec import expand

    store = JobStore(Path(out))
    jobs = expand(spec)
    recs: list[Record] = []
    refs: dict[str, str] = {}
    for j in jobs:
        st = store.state(j.id)
        if st == "done":
            part = store.read(j.id)
        elif st == "failed" and include_failed:
            part = store.read_failed(j.id)
        else:
            continue
        for r in part:
            if isinstance(r, Measurement) and r.model is not None:
                key = r.model.sha256 or r.model.revision or ""
                prev = refs.setdefault(j.model.name, key)
                if prev != key:
                    raise ValueError(
                        f"records of model {j.model.name!r} carry two different weight hashes ({prev[:12]}..., {key[:12]}...); "
                        f"the model changed between runs. Move {store.jobs_dir} aside and rerun."
                    )
        recs.extend(part)
    write_records(Path(dest) if dest is not None else store.out / "records.jsonl", recs, mode="w")
    return recs
