"""Fixtures for corpus tests: the real shared data directory (integration) and small written fixtures (unit)."""

from __future__ import annotations

from pathlib import Path

import pytest


def write_corpus(
    root: Path,
    corpus_id: str,
    files: dict[str, bytes],
    *,
    kind: str = "treebank",
    languages: tuple[tuple[str, str], ...] = (),
    license_flags: tuple[str, ...] = (),
    urls: dict[str, str] | None = None,
    members: dict[str, str] | None = None,
    manifest_sha: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Write ``files`` under ``root/data`` and a valid manifest under ``root/corpora/<corpus_id>/``.

    ``manifest_sha`` overrides the recorded sha256 of some files (to plant a mismatch).
    Returns (data_dir, manifest_dir).
    """
    import hashlib

    import yaml

    data, mdir = root / "data", root / "corpora"
    entries = []
    for rel, payload in files.items():
        p = data / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(payload)
        e = {
            "path": rel,
            "bytes": len(payload),
            "sha256": (manifest_sha or {}).get(rel, hashlib.sha256(payload).hexdigest()),
            "url": (urls or {}).get(rel, f"https://example.org/repo/{'0' * 40}/{rel}"),
        }
        if members and rel in members:
            e["archive_member"] = members[rel]
        entries.append(e)
    manifest = {
        "corpus_id": corpus_id,
        "title": corpus_id,
        "kind": kind,
        "source": {"kind": "git", "repository": "https://example.org/repo", "commit": "0" * 40},
        "license": {"spdx": "CC-BY-SA-4.0"},
        "license_flags": list(license_flags),
        "languages": [{"code": c, "source_code": s} for c, s in languages],
        "files": entries,
    }
    (mdir / corpus_id).mkdir(parents=True, exist_ok=True)
    (mdir / corpus_id / "manifest.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    return data, mdir


@pytest.fixture
def use_manifests(monkeypatch):
    """Point QD_MANIFEST_DIR / QD_DATA_DIR at fixture folders (and clear the manifest cache before and after)."""
    from qdmodels.corpora.manifest import _load_all

    def _use(data_dir: Path, manifest_dir: Path) -> None:
        _load_all.cache_clear()
        monkeypatch.setenv("QD_MANIFEST_DIR", str(manifest_dir))
        monkeypatch.setenv("QD_DATA_DIR", str(data_dir))

    yield _use
    _load_all.cache_clear()


@pytest.fixture
def corpus_writer():
    """The :func:`write_corpus` helper, as a fixture (test modules do not import conftest)."""
    return write_corpus
