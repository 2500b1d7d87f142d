"""`qd claims` CLI (typer CliRunner): exit codes 0/1/2, staleness, and no torch import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from claims_synth import bpb_records, spec_dict
from typer.testing import CliRunner

from qdmodels.cli.claims import app
from qdstats.records import write_records

ROOT = Path(__file__).resolve().parents[3]
runner = CliRunner()


@pytest.fixture()
def workspace(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "did.yaml").write_text(yaml.safe_dump(spec_dict(id="C.heb")), encoding="utf-8")
    recs = tmp_path / "records.jsonl"
    write_records(recs, bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=25, seed=0), mode="w")
    return tmp_path, specs, recs


def test_validate_ok_and_invalid(workspace):
    tmp, specs, _ = workspace
    res = runner.invoke(app, ["validate", str(specs)])
    assert res.exit_code == 0, res.output
    assert "ok  C.heb" in res.output
    bad = tmp / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec_dict(id="B", test="diff_in_dif")), encoding="utf-8")
    res = runner.invoke(app, ["validate", str(bad)])
    assert res.exit_code == 2
    assert "Did you mean 'diff_in_diff'" in res.output


def test_validate_seed_specs():
    res = runner.invoke(app, ["validate", str(ROOT / "analyses" / "claims")])
    assert res.exit_code == 0, res.output


def test_build_then_check_then_stale(workspace):
    tmp, specs, recs = workspace
    out = tmp / "table"
    res = runner.invoke(app, ["build", str(specs), "--records", str(recs), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "claims_table.md").exists() and "supported" in res.output
    md = (out / "claims_table.md").read_text(encoding="utf-8")
    assert "Made with:" in md and "qd claims build" in md and "--records" in md
    assert runner.invoke(app, ["check", str(out)]).exit_code == 0
    assert runner.invoke(app, ["check", str(out / "claims_table.json"), "--rebuild"]).exit_code == 0
    # records change -> stale
    write_records(recs, bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=3, seed=9), mode="a")
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 1 and "records changed" in res.output


def test_spec_change_makes_table_stale(workspace):
    tmp, specs, recs = workspace
    out = tmp / "table"
    assert runner.invoke(app, ["build", str(specs), "-r", str(recs), "--out", str(out)]).exit_code == 0
    (specs / "did.yaml").write_text(yaml.safe_dump(spec_dict(id="C.heb", seed=5)), encoding="utf-8")
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 1 and "spec of claim 'C.heb' changed" in res.output


def test_new_spec_file_in_directory_makes_table_stale(workspace):
    tmp, specs, recs = workspace
    out = tmp / "table"
    assert runner.invoke(app, ["build", str(specs), "-r", str(recs), "--out", str(out)]).exit_code == 0
    (specs / "more.yaml").write_text(yaml.safe_dump(spec_dict(id="C.more")), encoding="utf-8")
    res = runner.invoke(app, ["check", str(out)])
    assert res.exit_code == 1 and "'C.more' is in the specs but not in the table" in res.output


def test_build_with_error_row_exits_1_but_writes_table(workspace):
    tmp, specs, recs = workspace
    (specs / "broken.yaml").write_text(
        yaml.safe_dump(spec_dict(id="C.broken", params={**spec_dict()["params"], "cluster": "zz"})), encoding="utf-8")
    out = tmp / "table"
    res = runner.invoke(app, ["build", str(specs), "-r", str(recs), "--out", str(out)])
    assert res.exit_code == 1
    assert (out / "claims_table.json").exists() and "error" in res.output


def test_usage_errors_exit_2(workspace, tmp_path):
    _, specs, _ = workspace
    assert runner.invoke(app, ["check", str(tmp_path / "nope")]).exit_code == 2
    assert runner.invoke(app, ["build", str(specs), "-r", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]).exit_code == 2
    assert runner.invoke(app, ["build", str(specs)]).exit_code == 2  # missing required options


def test_cli_and_engine_do_not_import_torch():
    code = ("import sys, qdmodels.cli.claims, qdstats.claims; from qdstats.claims import list_tests; list_tests(); "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert res.returncode == 0, res.stdout + res.stderr


def test_check_fails_when_a_document_summary_disagrees(workspace):
    tmp, specs, recs = workspace
    out = tmp / "table"
    assert runner.invoke(app, ["build", str(specs), "--records", str(recs), "--out", str(out)]).exit_code == 0
    doc = tmp / "README.md"
    doc.write_text("# x\n<!-- claims-summary:start -->\n1 claims: 1 inconclusive.\n<!-- claims-summary:end -->\n")
    res = runner.invoke(app, ["check", str(out), "--doc", str(doc)])
    assert res.exit_code == 1 and "claims summary disagrees" in res.output
    assert runner.invoke(app, ["summary", str(out), "--sync", str(doc)]).exit_code == 0
    res = runner.invoke(app, ["check", str(out), "--doc", str(doc)])
    assert res.exit_code == 0 and "1 document(s) agree" in res.output
    res = runner.invoke(app, ["summary", str(out)])
    assert res.exit_code == 0 and res.output.startswith("1 claims: ")
    assert runner.invoke(app, ["summary", str(out), "--sync", str(tmp / "missing.md")]).exit_code == 2
