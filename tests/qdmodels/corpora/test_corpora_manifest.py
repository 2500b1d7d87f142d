"""Manifests (CorpusManifest), data-directory resolution, verification; integration against the real files."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from qdmodels.corpora.datadir import manifest_dir, resolve_data_dir, safe_join
from qdmodels.corpora.manifest import (
    CorpusManifest,
    ManifestError,
    get_manifest,
    list_manifests,
    load_manifest,
    verify_corpus,
)
from qdstats.validation import UnknownNameError

REPO = Path(__file__).resolve().parents[3]
SHA = "a" * 64


def _base(**over):
    d = {
        "corpus_id": "toy",
        "title": "toy",
        "kind": "text",
        "source": {"kind": "git", "repository": "https://github.com/o/r", "commit": "c" * 40},
        "license": {"spdx": "CC-BY-4.0"},
        "files": [{"path": "toy/a.txt", "bytes": 1, "sha256": SHA, "url": f"https://raw.githubusercontent.com/o/r/{'c' * 40}/a.txt"}],
    }
    d.update(over)
    return d


def test_valid_manifest_round_trips():
    m = CorpusManifest.model_validate(_base())
    assert CorpusManifest.model_validate_json(m.model_dump_json()) == m


@pytest.mark.parametrize("bad_path", ["/etc/passwd", "../x", "a/../../x", "a//b", "C:/x", "a\\b", "./a"])
def test_escaping_paths_rejected(bad_path):
    f = _base()["files"][0] | {"path": bad_path}
    with pytest.raises(ValidationError, match="relative path inside the data directory"):
        CorpusManifest.model_validate(_base(files=[f]))


def test_bad_sha_unpinned_url_duplicates_rejected():
    f = _base()["files"][0]
    with pytest.raises(ValidationError, match="64 lowercase hex"):
        CorpusManifest.model_validate(_base(files=[f | {"sha256": "XYZ"}]))
    with pytest.raises(ValidationError, match="not pinned to commit"):
        CorpusManifest.model_validate(_base(files=[f | {"url": "https://raw.githubusercontent.com/o/r/main/a.txt"}]))
    with pytest.raises(ValidationError, match="more than once"):
        CorpusManifest.model_validate(_base(files=[f, f]))
    with pytest.raises(ValidationError, match="needs `commit`"):
        CorpusManifest.model_validate(_base(source={"kind": "git", "repository": "https://github.com/o/r"}))
    with pytest.raises(ValidationError, match="String should match pattern"):
        CorpusManifest.model_validate(_base(languages=[{"code": "he", "source_code": "he"}]))


def test_load_manifest_errors_name_the_file(tmp_path):
    d = tmp_path / "toy"
    d.mkdir()
    (d / "manifest.yaml").write_text("corpus_id: [unclosed", encoding="utf-8")
    with pytest.raises(ManifestError, match="manifest.yaml.*not valid YAML"):
        load_manifest(d / "manifest.yaml")
    (d / "manifest.yaml").write_text(yaml.safe_dump(_base(corpus_id="other")), encoding="utf-8")
    with pytest.raises(ManifestError, match="declares corpus_id 'other' but lives in folder 'toy'"):
        load_manifest(d / "manifest.yaml")


def test_get_manifest_did_you_mean(tmp_path, use_manifests, corpus_writer):
    data, mdir = corpus_writer(tmp_path, "ud_toy", {"ud/t/x-ud-dev.conllu": b"x"})
    use_manifests(data, mdir)
    with pytest.raises(UnknownNameError, match="`name` 'ud_tyo' is not a known corpus. Did you mean 'ud_toy'"):
        get_manifest("ud_tyo")


def test_verify_detects_missing_and_mismatch(tmp_path, use_manifests, corpus_writer):
    data, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"abc", "toy/b.txt": b"def"},
                              manifest_sha={"toy/b.txt": hashlib.sha256(b"other").hexdigest()})
    use_manifests(data, mdir)
    (data / "toy/a.txt").unlink()
    st = {s.path: s for s in verify_corpus(get_manifest("toy"), data)}
    assert not st["toy/a.txt"].present
    assert st["toy/b.txt"].present and not st["toy/b.txt"].verified and "sha256" in st["toy/b.txt"].message


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("QD_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir(tmp_path / "arg") == (tmp_path / "arg").resolve()
    assert resolve_data_dir() == (tmp_path / "env").resolve()
    monkeypatch.delenv("QD_DATA_DIR")
    assert resolve_data_dir() == (tmp_path / "xdg" / "qd" / "data").resolve()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_data_dir() == (Path.home() / ".cache" / "qd" / "data").resolve()
    with pytest.raises(TypeError, match="`data_dir` must be a path"):
        resolve_data_dir(3)  # type: ignore[arg-type]


def test_manifest_dir_default_and_override(tmp_path, monkeypatch):
    monkeypatch.delenv("QD_MANIFEST_DIR", raising=False)
    assert manifest_dir() == REPO / "corpora"
    monkeypatch.setenv("QD_MANIFEST_DIR", str(tmp_path))
    assert manifest_dir() == tmp_path.resolve()


def test_safe_join_blocks_symlink_escape(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(ValueError, match="escapes the data directory"):
        safe_join(root, "link/outside.txt")


# ---------------------------------------------------------------- committed manifests and real data

def test_committed_manifests_cover_required_corpora(monkeypatch):
    monkeypatch.delenv("QD_MANIFEST_DIR", raising=False)
    ms = list_manifests(REPO / "corpora")
    required = {"ntrex128", "morpho_challenge_2010", "sigmorphon2022_segmentation", "morphynet", "unimorph_heb",
                "udhr2", "tokenizers", "dataset_build", "ud_hebrew_iahltwiki", "ud_hebrew_htb", "ud_arabic_padt",
                "ud_korean_kaist"}
    assert required <= set(ms)
    assert ms["ud_hebrew_htb"].license_flags == ("non-commercial",)
    assert ms["ud_arabic_padt"].license_flags == ("non-commercial",)
    assert ms["ud_hebrew_iahltwiki"].license_flags == ()
    assert len(ms["ntrex128"].languages) == 128


@pytest.mark.integration
def test_every_ud_treebank_has_a_manifest(shared_data_dir):
    ms = list_manifests(REPO / "corpora")
    for folder in (shared_data_dir / "ud").iterdir():
        cid = "ud_" + folder.name[3:].lower().replace("-", "_")
        assert cid in ms, folder.name


@pytest.mark.integration
def test_manifests_match_shared_manifest_tsv(shared_data_dir):
    """Oracle: the data folder's MANIFEST.tsv (sha256sum). Every non-SOURCE.txt file is in exactly one manifest."""
    with open(shared_data_dir / "MANIFEST.tsv", encoding="utf-8") as fh:
        tsv = {r["path"]: (int(r["bytes"]), r["sha256"]) for r in csv.DictReader(fh, delimiter="\t")}
    seen: dict[str, str] = {}
    for cid, m in list_manifests(REPO / "corpora").items():
        if m.location != "data_dir":
            continue
        for f in m.files:
            assert f.path not in seen, f"{f.path} in {cid} and {seen[f.path]}"
            seen[f.path] = cid
            assert tsv[f.path] == (f.bytes, f.sha256), f.path
    expected = {p for p in tsv if not p.endswith("SOURCE.txt")}
    assert set(seen) == expected


@pytest.mark.integration
@pytest.mark.slow
def test_every_manifest_sha256_matches_real_files(shared_data_dir):
    """Hash every real file (about 150 MB) and the installed dataset_build files; exact equality."""
    bad = []
    for cid, m in list_manifests(REPO / "corpora").items():
        for s in verify_corpus(m, shared_data_dir):
            if not s.verified:
                bad.append((cid, s.path, s.message))
    assert bad == []


@pytest.mark.integration
def test_generator_reproduces_committed_manifests(shared_data_dir, tmp_path):
    """scripts/make_manifests.py regenerates byte-identical manifests and READMEs from the data folder."""
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "make_manifests.py"), "--data", str(shared_data_dir),
                        "--out", str(tmp_path)], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    generated = sorted(tmp_path.glob("*/*"))
    assert len(generated) == 2 * len(list((REPO / "corpora").glob("*/manifest.yaml")))
    for new in generated:
        old = REPO / "corpora" / new.parent.name / new.name
        assert old.read_text(encoding="utf-8") == new.read_text(encoding="utf-8"), f"{new.parent.name}/{new.name}"
