"""`qd demo` prints headline sentences and hides an all-undefined p column; `qd card` usage errors exit 2."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from qdmodels.cli import main

runner = CliRunner()


def _fake_result(tmp: Path, p: float):
    from qdmodels.workflows.demo import DemoResult

    rows = []
    for lang, d in (("eng_Latn", 0.0), ("kor_Hang", 0.35)):
        rows.append({"language": lang, "scheme": "int4-g64-sym", "fp32_bpb": 1.0, "delta_n": 24,
                     "delta_estimate": 0.1 + d, "delta_ci_low": 0.09 + d, "delta_ci_high": 0.11 + d,
                     "did_estimate": d, "did_ci_low": d - 0.05 if d else 0.0, "did_ci_high": d + 0.05 if d else 0.0,
                     "did_pvalue": math.nan if lang == "eng_Latn" else p})
    return DemoResult(out_dir=tmp, records_path=tmp / "r.jsonl", summary_path=tmp / "s.jsonl",
                      table=pd.DataFrame(rows), n_records=0, seconds=1.0)


def test_demo_headlines_and_hidden_p(monkeypatch, tmp_path):
    import qdmodels.workflows.demo as demo

    monkeypatch.setattr(demo, "run_demo", lambda **kw: _fake_result(tmp_path, math.nan))
    res = runner.invoke(main.app, ["demo", "--out", str(tmp_path / "d"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "INT4 (int4-g64-sym): kor_Hang (+0.350 [0.300, 0.400]) loses more bit/byte than eng_Latn" in res.stdout
    assert "Decision rule" in res.stdout
    assert "No p column" in res.stdout and "—" not in res.stdout
    monkeypatch.setattr(demo, "run_demo", lambda **kw: _fake_result(tmp_path, 0.002))
    res = runner.invoke(main.app, ["demo", "--out", str(tmp_path / "d"), "--no-progress"])
    assert "0.0020" in res.stdout and "No p column" not in res.stdout


def test_card_usage_errors_exit_2(tmp_path):
    res = runner.invoke(main.app, ["card", "smollm2-135m", "--sensitivity", "maybe", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "sensitivity" in res.output
    res = runner.invoke(main.app, ["card", "smollm2-135m", "--model", "gemma3-270m", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "disagree" in res.output
