"""`qd data` CLI (typer app tested directly): list, fetch, exit codes 0/1/2."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

from typer.testing import CliRunner

from qdmodels.cli.data import app

runner = CliRunner()


def test_list_shows_flags_and_status(tmp_path, use_manifests, corpus_writer):
    corpus_writer(tmp_path, "ud_toy_nc", {"ud/a.conllu": b"x"}, languages=(("heb_Hebr", "he"),),
                  license_flags=("non-commercial",))
    data, mdir = corpus_writer(tmp_path, "toy_missing", {"toy/b.txt": b"y"})
    (data / "toy/b.txt").unlink()
    use_manifests(data, mdir)
    r = runner.invoke(app, ["list", "--data-dir", str(data)])
    assert r.exit_code == 0, r.output
    row_nc = next(ln for ln in r.output.splitlines() if "ud_toy_nc" in ln)
    assert "non-commercial" in row_nc and "present, verified" in row_nc
    assert "missing" in next(ln for ln in r.output.splitlines() if "toy_missing" in ln)


def test_fetch_exit_codes(tmp_path, use_manifests, corpus_writer, monkeypatch):
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"}, license_flags=("non-commercial",))
    use_manifests(tmp_path / "dest", mdir)
    r = runner.invoke(app, ["fetch", "toy", "--from", str(mirror), "--data-dir", str(tmp_path / "dest")])
    assert r.exit_code == 0, r.output
    assert "1 fetched" in r.output and "non-commercial" in r.output
    r = runner.invoke(app, ["fetch", "tyo"])
    assert r.exit_code == 2 and "Did you mean 'toy'" in r.output
    r = runner.invoke(app, ["fetch"])
    assert r.exit_code == 2

    def offline(*a, **k):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    r = runner.invoke(app, ["fetch", "toy", "--data-dir", str(tmp_path / "fresh")])
    assert r.exit_code == 1 and "--from" in r.output


def test_fetch_refused_file_exits_1(tmp_path, use_manifests, corpus_writer):
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"},
                                 manifest_sha={"toy/a.txt": hashlib.sha256(b"zzz").hexdigest()})
    use_manifests(tmp_path / "dest", mdir)
    r = runner.invoke(app, ["fetch", "toy", "--from", str(mirror), "--data-dir", str(tmp_path / "dest")])
    assert r.exit_code == 1 and "refused" in r.output


def test_fetch_from_a_file_is_a_usage_error(tmp_path, use_manifests, corpus_writer):
    """Regression: `--from` a file exited 1 (a failed run) instead of 2 (a usage error)."""
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"})
    use_manifests(tmp_path / "dest", mdir)
    not_a_dir = tmp_path / "mirror.tar"
    not_a_dir.write_bytes(b"x")
    r = runner.invoke(app, ["fetch", "toy", "--from", str(not_a_dir), "--data-dir", str(tmp_path / "dest")])
    assert r.exit_code == 2 and "is not a directory" in r.output and "mirror.tar" in r.output
