"""Fetching: mirror copy, pinned-URL download (file:// URLs, zip/tgz members), refusal of bad hashes, offline."""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
import zipfile

import pytest

from qdmodels.corpora.fetch import FetchError, fetch_corpus
from qdmodels.corpora.manifest import CorpusManifest, ManifestFile, get_manifest

COMMIT = "0" * 40


def test_mirror_copy_then_already_present(tmp_path, use_manifests, corpus_writer):
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha", "toy/sub/b.txt": b"beta"})
    use_manifests(tmp_path / "dest", mdir)
    r = fetch_corpus("toy", source_dir=mirror)
    assert r.ok and r.fetched == ("toy/a.txt", "toy/sub/b.txt")
    assert (tmp_path / "dest/toy/sub/b.txt").read_bytes() == b"beta"
    r2 = fetch_corpus("toy", source_dir=mirror)
    assert r2.fetched == () and r2.already_present == ("toy/a.txt", "toy/sub/b.txt")


def test_hash_mismatch_refused_and_nothing_left(tmp_path, use_manifests, corpus_writer):
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"},
                                 manifest_sha={"toy/a.txt": hashlib.sha256(b"other").hexdigest()})
    dest = tmp_path / "dest"
    use_manifests(dest, mdir)
    r = fetch_corpus("toy", source_dir=mirror)
    assert not r.ok and r.failed[0][0] == "toy/a.txt" and r.failed[0][1].startswith("refused")
    assert not (dest / "toy/a.txt").exists()
    assert list((dest / "toy").iterdir()) == []  # temp file removed


def test_missing_in_mirror(tmp_path, use_manifests, corpus_writer):
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"})
    (mirror / "toy/a.txt").unlink()
    use_manifests(tmp_path / "dest", mdir)
    r = fetch_corpus("toy", source_dir=mirror)
    assert r.failed and "not in mirror" in r.failed[0][1]


def _archives(root):
    d = root / "upstream" / COMMIT
    d.mkdir(parents=True)
    with zipfile.ZipFile(d / "pack.zip", "w") as zf:
        zf.writestr("inner/z.txt", "zipped")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"tarred"
        info = tarfile.TarInfo("package/t.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (d / "pack.tgz").write_bytes(buf.getvalue())
    (d / "plain.txt").write_bytes(b"plain")
    return d


def test_download_from_pinned_urls_with_archives(tmp_path, use_manifests, corpus_writer):
    up = _archives(tmp_path)
    files = {"c/plain.txt": b"plain", "c/z.txt": b"zipped", "c/t.txt": b"tarred"}
    urls = {"c/plain.txt": (up / "plain.txt").as_uri(), "c/z.txt": (up / "pack.zip").as_uri(),
            "c/t.txt": (up / "pack.tgz").as_uri()}
    members = {"c/z.txt": "inner/z.txt", "c/t.txt": "package/t.txt"}
    _, mdir = corpus_writer(tmp_path / "m", "toy", files, urls=urls, members=members)
    dest = tmp_path / "dest"
    use_manifests(dest, mdir)
    r = fetch_corpus("toy")
    assert r.ok, r.failed
    assert sorted(r.fetched) == ["c/plain.txt", "c/t.txt", "c/z.txt"]
    assert (dest / "c/t.txt").read_bytes() == b"tarred"


def test_offline_without_mirror_says_how(tmp_path, use_manifests, corpus_writer, monkeypatch):
    _, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"})
    use_manifests(tmp_path / "dest", mdir)

    def offline(*a, **k):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FetchError, match=r"looks offline.*qd data fetch toy --from /path/to/mirror"):
        fetch_corpus("toy")


def test_escaping_path_rejected_before_writing(tmp_path, use_manifests, corpus_writer):
    mirror, mdir = corpus_writer(tmp_path, "toy", {"toy/a.txt": b"alpha"})
    use_manifests(tmp_path / "dest", mdir)
    good = get_manifest("toy")
    evil = ManifestFile.model_construct(path="../evil.txt", bytes=1, sha256="a" * 64, url="x", archive_member=None,
                                        archive_sha256=None, commit=None)
    m = CorpusManifest.model_construct(**{**dict(good), "files": (good.files[0], evil)})
    with pytest.raises(ValueError, match="relative path inside the data directory"):
        fetch_corpus(m, source_dir=mirror)
    assert not (tmp_path / "dest" / "toy" / "a.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


@pytest.mark.integration
def test_fetch_real_treebank_from_shared_mirror(shared_data_dir, tmp_path, monkeypatch):
    """The committed manifest's paths and hashes work with the real mirror (copy + verify + atomic rename)."""
    monkeypatch.delenv("QD_MANIFEST_DIR", raising=False)
    r = fetch_corpus("ud_hebrew_iahltwiki", source_dir=shared_data_dir, data_dir=tmp_path)
    assert r.ok and len(r.fetched) == 4
    assert (tmp_path / "ud/UD_Hebrew-IAHLTwiki/he_iahltwiki-ud-dev.conllu").is_file()
