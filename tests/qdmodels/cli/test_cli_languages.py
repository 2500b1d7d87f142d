"""Languages on the command line are normalized: `eng` and `eng_Latn` are one language, `--reference` too."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from qdmodels.cli import _common, main

runner = CliRunner()


def test_language_helpers():
    assert _common.language("eng") == _common.language("eng_Latn") == "eng_Latn"
    assert _common.language("zho-CN") == "zho_Hans"
    assert _common.languages("eng,eng_Latn, heb,heb_Hebr") == ["eng_Latn", "heb_Hebr"]
    assert _common.language_keys(["eng_Latn", "heb_Hebr"], "eng") == (["eng_Latn", "heb_Hebr"], "eng_Latn")
    assert _common.language_keys(["heb", "eng", "eng_Latn"], "eng_Latn") == (["heb", "eng"], "eng")
    assert _common.language_keys(["heb"], "eng") == (["eng", "heb"], "eng")
    with pytest.raises(ValueError, match="not a known"):
        _common.language("xx_Nope")


def _data_dir() -> Path | None:
    for d in (os.environ.get("QD_DATA_DIR"), Path(__file__).resolve().parents[4] / "shared" / "data"):
        if d and (Path(d) / "ntrex128" / "NTREX-128").is_dir() and (Path(d) / "tokenizers").is_dir():
            return Path(d)
    return None


@pytest.mark.integration
def test_parity_lists_the_reference_once(tmp_path, monkeypatch):
    data = _data_dir()
    if data is None:
        pytest.skip("needs the NTREX-128 data directory (QD_DATA_DIR)")
    monkeypatch.setenv("QD_DATA_DIR", str(data))
    out = tmp_path / "p.jsonl"
    # the default reference is `eng`; the languages name English as eng_Latn
    r = runner.invoke(main.app, ["tokenize", "parity", "--tokenizer", "gpt2", "--langs", "eng_Latn,heb_Hebr",
                                 "--limit", "5", "--n-resamples", "0", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    per_lang = [x["language"] for x in rows if x["quantity"] == "tok.tokens_per_sentence"]
    assert sorted(per_lang) == ["eng_Latn", "heb_Hebr"]
    assert sum(line.startswith("eng") for line in r.stdout.splitlines()) == 1


class _FakeDemo:
    def __init__(self, **kw):
        self.kw = kw
        self.table = pd.DataFrame(columns=["scheme", "language"])
        self.warnings = ()
        self.n_records, self.seconds, self.report_paths = 0, 0.0, []
        self.records_path = self.summary_path = Path(kw["out_dir"]) / "records.jsonl"


def test_demo_reference_is_normalized_and_first(tmp_path, monkeypatch):
    import qdmodels.workflows.demo as wd

    seen = {}

    def fake(**kw):
        seen.update(kw)
        return _FakeDemo(**kw)

    monkeypatch.setattr(wd, "run_demo", fake)
    r = runner.invoke(main.app, ["demo", "-m", "some-model", "--revision", "abc", "--langs", "deu,eng_Latn,heb",
                                 "--reference", "eng", "--quant", "int4-g64-sym,int3-g64-sym",
                                 "--out", str(tmp_path / "d"), "--no-progress", "--no-report"])
    assert r.exit_code == 0, r.output
    assert seen["languages"] == ["eng_Latn", "deu_Latn", "heb_Hebr"]
    assert seen["schemes"] == ["int4-g64-sym", "int3-g64-sym"]
    assert seen["revision"] == "abc" and seen["progress"] is False and seen["n_resamples"] == 2000
    r = runner.invoke(main.app, ["demo", "--langs", "deu", "--reference", "xx_Nope", "--out", str(tmp_path / "d")])
    assert r.exit_code == 2 and "not a known" in r.stderr


def test_report_reference_is_normalized(tmp_path, monkeypatch):
    import qdstats.report

    seen = {}

    class _Res:
        sections, omitted, html, markdown = (), {}, None, None

    def fake(recs, **kw):
        seen.update(kw)
        return _Res()

    monkeypatch.setattr(qdstats.report, "build_report", fake)
    recs = tmp_path / "r.jsonl"
    _common.write_out(recs, [_common_measurement()], "w")
    r = runner.invoke(main.app, ["report", str(recs), "--reference", "heb", "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    assert seen["reference"] == "heb_Hebr" and seen["n_resamples"] == 2000


def _common_measurement():
    from qdstats.records import Measurement

    return Measurement(quantity="eval.bits_per_byte", value=1.0, language="heb_Hebr")
