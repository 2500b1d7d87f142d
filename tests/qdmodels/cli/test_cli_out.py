"""`--out` records files: an existing file needs --append or --overwrite, the location is checked before any
compute, records are written atomically; results go to stdout and logs to stderr."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from qdmodels.cli import _common, main
from qdmodels.eval.encoding import text_items
from qdstats.records import Measurement, read_records

runner = CliRunner()
TEXTS = {"eng_Latn": ["The cat sat on the mat.", "A dog barked twice."],
         "heb_Hebr": ["החתול ישב על השטיח.", "כלב נבח פעמיים."]}
EVAL = ["eval", "--model", "tiny:llama", "--langs", "eng_Latn,heb_Hebr", "--limit", "2", "--no-progress"]


@pytest.fixture()
def fake_items(monkeypatch):
    monkeypatch.setattr(_common, "load_items", lambda corpus, langs, split, limit, data_dir, sample="first":
                        text_items({k: v for k, v in TEXTS.items() if k in langs.split(",")}))


@pytest.fixture()
def no_compute(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("compute started before --out was validated")

    monkeypatch.setattr(_common, "load_items", boom)
    monkeypatch.setattr(_common, "load", boom)


def test_same_out_twice_exits_2_and_leaves_the_file_unchanged(tmp_path, fake_items):
    out = tmp_path / "e.jsonl"
    r = runner.invoke(main.app, [*EVAL, "--out", str(out)])
    assert r.exit_code == 0, r.output
    before = out.read_bytes()
    assert len(read_records(out)) == 2 * 2 * 8  # fp32, 2 languages x 2 sentences, 8 quantities
    r = runner.invoke(main.app, [*EVAL, "--out", str(out)])
    assert r.exit_code == 2
    assert str(out) in r.stderr and "--append" in r.stderr and "--overwrite" in r.stderr
    assert out.read_bytes() == before


def test_append_and_overwrite(tmp_path, fake_items):
    out = tmp_path / "e.jsonl"
    assert runner.invoke(main.app, [*EVAL, "--out", str(out)]).exit_code == 0
    n = len(read_records(out))
    r = runner.invoke(main.app, [*EVAL, "--out", str(out), "--append"])
    assert r.exit_code == 0, r.output
    assert len(read_records(out)) == 2 * n
    r = runner.invoke(main.app, [*EVAL, "--out", str(out), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert len(read_records(out)) == n
    r = runner.invoke(main.app, [*EVAL, "--out", str(out), "--append", "--overwrite"])
    assert r.exit_code == 2 and "exclude each other" in r.stderr


def test_missing_parents_are_created(tmp_path, fake_items):
    out = tmp_path / "a" / "b" / "e.jsonl"
    r = runner.invoke(main.app, [*EVAL, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert read_records(out)


@pytest.mark.parametrize("args", [
    ["eval", "--model", "tiny:llama"],
    ["weights", "--model", "tiny:llama"],
    ["activations", "--model", "tiny:llama"],
    ["probe", "repr", "--model", "tiny:llama", "--quant", "int4-ch-sym"],
    ["probe", "ablate", "--model", "tiny:llama"],
    ["calibrate", "proxies", "--model", "tiny:llama"],
    ["sweep", "layers", "--model", "tiny:llama", "--quant", "int4-ch-sym"],
], ids=lambda a: "-".join(x for x in a[:2] if not x.startswith("-")))
def test_out_location_is_checked_before_any_compute(tmp_path, no_compute, args):
    r = runner.invoke(main.app, [*args, "--out", str(tmp_path)])
    assert r.exit_code == 2 and "is a directory" in r.stderr, r.output
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    r = runner.invoke(main.app, [*args, "--out", str(blocker / "r.jsonl")])
    assert r.exit_code == 2 and "cannot create its directory" in r.stderr, r.output


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_location_is_refused(tmp_path, no_compute):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        r = runner.invoke(main.app, ["eval", "--model", "tiny:llama", "--out", str(ro / "e.jsonl")])
        assert r.exit_code == 2 and "not writable" in r.stderr
    finally:
        ro.chmod(0o700)


def _rec(v: float) -> Measurement:
    return Measurement(quantity="eval.bits_per_byte", value=v)


def test_write_out_is_atomic(tmp_path, monkeypatch):
    out = tmp_path / "r.jsonl"
    out.write_bytes(b"OLD")  # a torn last line is completed before appending
    assert _common.write_out(out, [_rec(1.0)], "a") == 1
    assert out.read_bytes().startswith(b"OLD\n") and len(out.read_bytes().splitlines()) == 2
    old = out.read_bytes()
    with pytest.raises(TypeError):
        _common.write_out(out, [_rec(2.0), object()], "w")  # fails half-way through the records
    assert out.read_bytes() == old

    import qdstats.records.io as rio

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rio.os, "replace", killed)  # interrupted at the last step
    with pytest.raises(KeyboardInterrupt):
        _common.write_out(out, [_rec(3.0)] * 100, "a")
    assert out.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]  # no partial or temporary file left


def test_results_to_stdout_logs_to_stderr(tmp_path, fake_items):
    out = tmp_path / "e.jsonl"
    r = runner.invoke(main.app, [*EVAL, "--quant", "int4-ch-sym", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "mean bits/byte" in r.stdout and "wrote" not in r.stdout
    assert "wrote 64 records" in r.stderr and "mean bits/byte" not in r.stderr
