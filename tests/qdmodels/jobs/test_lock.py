"""Two runs on one sweep directory: the second fails at once with a clear message (no racing, no lost files)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from qdmodels.jobs import JobStore, run_sweep
from qdmodels.jobs.store import SweepLockedError

from .conftest import make_spec


def test_a_held_directory_refuses_a_second_run(tmp_path):
    """Regression: both runs ran, and one run's temp-file cleanup could crash the other."""
    store = JobStore(tmp_path)
    with store.lock():
        with pytest.raises(SweepLockedError, match=r"is in use by another sweep run \(pid \d+\)"):
            run_sweep(make_spec(), tmp_path, progress=False)
    assert not (tmp_path / "jobs").exists() or not any((tmp_path / "jobs").iterdir())
    run = run_sweep(make_spec(), tmp_path, progress=False)  # released: the next run works
    assert run.computed and not run.failed


def test_lock_held_by_another_process_is_reported_with_its_pid(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from qdmodels.jobs import JobStore
        with JobStore({str(tmp_path)!r}).lock():
            print("held", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SweepLockedError, match=rf"pid {holder.pid}"):
            with JobStore(tmp_path).lock():
                pass
    finally:
        holder.kill()
        holder.wait()
    with JobStore(tmp_path).lock():  # a killed holder leaves no stale lock
        pass


def test_cli_sweep_run_on_a_held_directory_exits_2(tmp_path):
    from typer.testing import CliRunner

    from qdmodels.cli.main import app

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: t\nmodels: [tiny:llama]\ncorpus: inline\n"
                    "texts: {eng_Latn: [The fox.]}\nschemes: [int4-g16-sym]\n", encoding="utf-8")
    out = tmp_path / "out"
    with JobStore(out).lock():
        res = CliRunner().invoke(app, ["sweep", "run", str(spec), "--out", str(out), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert "in use by another sweep run" in res.output
