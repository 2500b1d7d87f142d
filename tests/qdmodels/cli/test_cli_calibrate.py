"""`qd calibrate` usage errors exit with code 2 and name the option (no model is loaded)."""

from __future__ import annotations

from typer.testing import CliRunner

from qdmodels.cli.calibrate import app


def test_gptq_bad_split_exit_2(tmp_path) -> None:
    res = CliRunner().invoke(app, ["gptq", "--model", "tiny", "--out", str(tmp_path / "o.jsonl"), "--split", "train"])
    assert res.exit_code == 2
    assert "`--split` must be 'dev' or 'test'" in res.output


def test_gptq_bad_scheme_exit_2(tmp_path) -> None:
    res = CliRunner().invoke(app, ["gptq", "--model", "tiny", "--out", str(tmp_path / "o.jsonl"), "--quant", "int4"])
    assert res.exit_code == 2
    assert "`key` must look like" in res.output


def test_proxies_bad_granularity_exit_2(tmp_path) -> None:
    res = CliRunner().invoke(app, ["proxies", "--model", "tiny", "--out", str(tmp_path / "o.jsonl"),
                                   "--granularity", "head"])
    assert res.exit_code == 2
    assert "`--granularity`" in res.output
