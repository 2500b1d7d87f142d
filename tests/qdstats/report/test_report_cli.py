"""`qd report` through typer's CliRunner (register() on a fresh app), on SYNTHETIC record files."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from qdmodels.cli.report import register
from qdstats.records import write_parquet, write_records

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()

    @a.callback()
    def _root() -> None:  # a group, as in the main qd app
        pass

    register(a)
    return a


@pytest.fixture(scope="module")
def record_files(small_records, tmp_path_factory):
    d = tmp_path_factory.mktemp("recs")
    half = len(small_records) // 2
    write_records(d / "a.jsonl", small_records[:half], mode="w")
    write_parquet(d / "b.parquet", small_records[half:])
    return d / "a.jsonl", d / "b.parquet"


def test_report_command_writes_report(app, record_files, tmp_path):
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", *map(str, record_files), "--out", str(out), "--title", "SYNTHETIC CLI",
                                   "--n-resamples", "99", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (out / "report.html").exists() and (out / "report.md").exists()
    assert "SYNTHETIC CLI" in (out / "report.html").read_text(encoding="utf-8")
    assert "sections: degradation, sensitivity, alignment, tokenizer" in res.output
    assert "omitted claims" in res.output


def test_report_command_usage_errors_exit_2(app, record_files, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["report", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "record file(s) not found" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"quantity": "eval.bits_per_bite", "value": 1}\n', encoding="utf-8")
    res = runner.invoke(app, ["report", str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "cannot read records" in res.output and "bad.jsonl:1" in res.output
    res = runner.invoke(app, ["report", str(record_files[0]), "--out", str(tmp_path / "o"),
                              "--claims", str(tmp_path / "none.json")])
    assert res.exit_code == 2 and "claims table not found" in res.output
    res = runner.invoke(app, ["report", str(record_files[0])])
    assert res.exit_code == 2  # --out is required


@pytest.mark.slow
def test_report_command_does_not_import_torch():
    code = ("import sys; import qdmodels.cli.report, qdstats.report; "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False False"


def test_duplicated_measurements_exit_2_naming_the_file_unless_dedupe(app, small_records, tmp_path):
    """Regression: a file written twice doubled every record and the report silently lost English (exit 0)."""
    twice = tmp_path / "twice.jsonl"
    write_records(twice, list(small_records) + list(small_records), mode="w")
    res = CliRunner().invoke(app, ["report", str(twice), "--out", str(tmp_path / "o"), "--n-resamples", "99"])
    assert res.exit_code == 2, res.output
    assert "duplicated measurement(s) in" in res.output and "twice.jsonl" in res.output and "--dedupe" in res.output
    res = CliRunner().invoke(app, ["report", str(twice), "--out", str(tmp_path / "o"), "--n-resamples", "99", "--dedupe"])
    assert res.exit_code == 0, res.output
    assert "--dedupe dropped" in res.output and "sections: degradation" in res.output


def test_records_of_two_corpora_are_not_pooled(app, small_records, tmp_path):
    """Regression: two corpora were pooled into one row per language."""
    from qdstats.records import CorpusRef, Measurement

    other = CorpusRef(corpus_id="flores_plus", split="devtest", sha256="1" * 64)
    moved = [r.model_copy(update={"corpus": other, "item_id": f"f{r.item_id}"})
             if isinstance(r, Measurement) and r.item_id is not None else r for r in small_records]
    f = tmp_path / "mixed.jsonl"
    write_records(f, list(small_records) + moved, mode="w")
    res = CliRunner().invoke(app, ["report", str(f), "--out", str(tmp_path / "o"), "--n-resamples", "99"])
    assert res.exit_code == 2, res.output
    assert "corpora or splits" in res.output and "flores_plus:devtest" in res.output and "--corpus" in res.output
    res = CliRunner().invoke(app, ["report", str(f), "--out", str(tmp_path / "o"), "--n-resamples", "99",
                                   "--corpus", "flores_plus:devtest"])
    assert res.exit_code == 0, res.output


def test_empty_record_file_exits_2(app, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    res = CliRunner().invoke(app, ["report", str(empty), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "no records" in res.output and "empty.jsonl" in res.output
