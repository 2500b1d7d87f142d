"""`qd sweep plan|run|status` through typer's CliRunner (exit codes 0 / 1 / 2)."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from qdmodels.cli.sweep import app, register

from .conftest import TEXTS, TOO_LONG, make_spec

runner = CliRunner()


def _write(tmp_path, spec, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(json.loads(spec.model_dump_json())), encoding="utf-8")
    return p


def test_plan_run_status(tmp_path, monkeypatch):
    monkeypatch.setenv("QD_CACHE_DIR", str(tmp_path / "cache"))
    spec = _write(tmp_path, make_spec(schemes=["int4-g16-sym"], protect=["none"]))
    out = tmp_path / "out"
    r = runner.invoke(app, ["plan", str(spec), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "sweep plan: 4 jobs" in r.output and "tokens/s" in r.output
    r = runner.invoke(app, ["status", str(spec), "--out", str(out)])
    assert r.exit_code == 0 and "done 0 | failed 0 | pending 4" in r.output
    r = runner.invoke(app, ["run", str(spec), "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert (out / "records.jsonl").is_file()
    r = runner.invoke(app, ["status", str(spec), "--out", str(out), "-v"])
    assert "done 4 | failed 0 | pending 0" in r.output and r.output.count("done ") >= 4


def test_failed_job_exits_1_and_status_shows_error(tmp_path):
    spec = _write(tmp_path, make_spec(texts={**TEXTS, **TOO_LONG}, schemes=[], protect=["none"]))
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(spec), "--out", str(out), "--no-progress"])
    assert r.exit_code == 1
    r = runner.invoke(app, ["status", str(spec), "--out", str(out)])
    assert "done 2 | failed 1 | pending 0" in r.output
    assert "ValueError" in r.output and "context" in r.output


@pytest.mark.parametrize("args, match", [
    (["run", "{spec}", "--executor", "dask"], "executor"),
    (["run", "{spec}", "--workers", "0"], "workers"),
    (["plan", "{missing}"], "not found"),
    (["status", "{bad}"], "schemes"),
])
def test_usage_errors_exit_2(tmp_path, args, match):
    spec = _write(tmp_path, make_spec(schemes=[], protect=["none"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [tiny:gpt2]\ncorpus: inline\ntexts: {eng_Latn: [a]}\nschemes: [int9-g1-sym]\n")
    args = [a.format(spec=spec, missing=tmp_path / "nope.yaml", bad=bad) for a in args]
    r = runner.invoke(app, args + ["--out", str(tmp_path / "o")])
    assert r.exit_code == 2, r.output
    assert match in r.output


def test_register_mounts_sweep_with_layers():
    main = typer.Typer()
    register(main)
    names = {c.name for c in app.registered_commands}
    assert {"plan", "run", "status"} <= names
    assert "layers" in names  # qd sweep layers from qdmodels.cli.measure
