"""SIGKILL mid-sweep, rerun, and the record set equals an uninterrupted run's (provenance ignored)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qdmodels.jobs import JobStore, expand, run_sweep
from qdstats.records import read_records

from .conftest import content_keys, make_spec

REPO = Path(__file__).resolve().parents[3]


def _done_files(out: Path) -> list[Path]:
    d = out / "jobs"
    return [p for p in d.glob("*.jsonl") if not p.name.endswith(".failed.jsonl")] if d.is_dir() else []


@pytest.mark.slow
def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    spec = make_spec()
    n_jobs = len(expand(spec))
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(json.loads(spec.model_dump_json())), encoding="utf-8")
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "qdmodels.cli.sweep", "run", str(spec_file), "--out", str(out),
           "--executor", "local", "--no-progress", "--job-delay", "0.4"]
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed_with = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            n = len(_done_files(out))
            if n >= 1:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_with = n
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed_with is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    log = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    assert killed_with is not None, f"the sweep never wrote a job file (or finished first):\n{log}"
    assert proc.returncode == -signal.SIGKILL
    store = JobStore(out)
    status = store.status(expand(spec))
    assert 1 <= len(status.done) < n_jobs, "kill did not land mid-run"
    assert not (out / "records.jsonl").exists()
    # every file that exists is complete (atomic writes); the rest are pending, none failed
    assert not status.failed
    # rerun: only the missing jobs are computed
    rerun = run_sweep(spec, out, executor="local", progress=False)
    assert sorted(rerun.skipped) == sorted(status.done)
    assert len(rerun.computed) == n_jobs - len(status.done) and rerun.ok
    assert not list((out / "jobs").glob(".*.tmp"))
    # the reference: an uninterrupted run
    ref = tmp_path / "ref"
    run_sweep(spec, ref, executor="local", progress=False)
    got, want = read_records(out / "records.jsonl"), read_records(ref / "records.jsonl")
    assert len(got) == len(want) == 2 * 3 * 8 * 5  # languages x items x eval quantities x conditions
    assert content_keys(got) == content_keys(want)
