"""Warnings reach the terminal once each, as notes, never as Python warning lines with source paths."""

from __future__ import annotations

import warnings

from typer.testing import CliRunner

from qdmodels.cli._common import warnings_as_notes
from qdmodels.cli.main import app


def test_warnings_as_notes_prints_each_text_once(capsys):
    restore = warnings_as_notes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for _ in range(3):
                warnings.warn("only 3 languages (< 10)", UserWarning, stacklevel=1)
            warnings.warn("another note", UserWarning, stacklevel=1)
    finally:
        restore()
    err = capsys.readouterr().err
    assert err.count("note: only 3 languages (< 10)") == 1 and "note: another note" in err
    assert ".py:" not in err and "UserWarning" not in err


def test_degenerate_data_is_a_note_not_an_error_or_a_source_path(tmp_path, shared_data_dir):
    """Regression: `qd tokenize parity --limit 3` (three sentences of one document) failed with "`clusters` must have
    at least 2 distinct clusters" once resampling became the default, and warnings were either swallowed or printed
    as `file.py:NN: Warning` lines. Now: the premium without a CI, and the reason once, as a note."""
    res = CliRunner().invoke(app, ["tokenize", "parity", "--tokenizer", "gpt2", "--langs", "eng_Latn,heb_Hebr",
                                   "--limit", "3", "--data-dir", str(shared_data_dir), "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    notes = [ln for ln in res.output.splitlines() if ln.startswith("note: ")]
    assert any("a cluster-bootstrap interval needs at least 2" in n for n in notes)
    assert len(notes) == len(set(notes))
    assert "Warning:" not in res.output and ".py:" not in res.output
