"""Automatic provenance stamps for records (after QCElemental's ``provenance_stamp``)."""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ROUTINE_RENAMES", "Provenance", "current_routine", "git_sha", "library_versions", "provenance_stamp",
    "package_version",
]

_TRACKED_LIBRARIES = (
    "numpy", "scipy", "pandas", "pydantic", "statsmodels", "pingouin",
    "torch", "transformers", "tokenizers", "gguf",
)

#: Module paths of producing routines that moved (old prefix -> new prefix). Records keep the routine that made
#: them (provenance is never rewritten); :func:`current_routine` says where that code lives today.
ROUTINE_RENAMES: dict[str, str] = {
    # 2026-12: qdmodels reorganized into subpackages by job (docs/architecture.md)
    "qdmodels.evaluation.": "qdmodels.eval.scoring.",
    "qdmodels.sensitivity.": "qdmodels.eval.sensitivity.",
    "qdmodels.proxies.": "qdmodels.eval.proxies.",
    "qdmodels.quantization.": "qdmodels.compress.rtn.",
    "qdmodels.calibrated.": "qdmodels.compress.gptq.",
    "qdmodels.calibration.": "qdmodels.compress.calibration_sets.",
    "qdmodels.pruning.": "qdmodels.compress.pruning.",
    "qdmodels.weights.": "qdmodels.probes.weights.",
    "qdmodels.activations.": "qdmodels.probes.activations.",
    "qdmodels.representation.": "qdmodels.probes.representation.",
    "qdmodels.ablation.": "qdmodels.probes.ablation.",
    "qdmodels.demo.": "qdmodels.workflows.demo.",
}


def current_routine(routine: str) -> str:
    """Where the code of a record's ``provenance.routine`` lives today (``routine`` itself when it did not move).

    Examples
    --------
    >>> current_routine("qdmodels.evaluation.evaluate")
    'qdmodels.eval.scoring.evaluate'
    >>> current_routine("qdmodels.tokenization.parity")
    'qdmodels.tokenization.parity'
    """
    for old, new in ROUTINE_RENAMES.items():
        if routine.startswith(old):
            return new + routine[len(old):]
    return routine


class Provenance(BaseModel):
    """Who made a record, with which code, when and where."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")

    package: str = Field(default="qd", description="Creating package.")
    version: str = Field(description="Version of the creating package.")
    git_sha: str | None = Field(default=None, description="Git commit of the qd checkout (with '-dirty' if modified), when available.")
    routine: str = Field(description="Fully qualified function that produced the record, e.g. 'qdmodels.eval.scoring.evaluate'.")
    created_at: str = Field(description="UTC timestamp, ISO 8601.")
    python: str = Field(default_factory=platform.python_version, description="Python version.")
    platform: str = Field(default_factory=platform.platform, description="Operating system / machine description.")
    device: str | None = Field(default=None, description="Compute device, e.g. 'cpu' or 'cuda:0 (NVIDIA H100)'.")
    libraries: dict[str, str] = Field(default_factory=dict, description="Versions of relevant libraries that were imported.")


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("qd")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


@functools.lru_cache(maxsize=1)
def git_sha() -> str | None:
    """The commit of the qd source tree (``QD_GIT_SHA`` overrides), or None outside a checkout."""
    env = os.environ.get("QD_GIT_SHA")
    if env:
        return env
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


def library_versions() -> dict[str, str]:
    """Versions of tracked libraries that are *already imported* (never imports torch itself)."""
    out: dict[str, str] = {}
    for name in _TRACKED_LIBRARIES:
        mod = sys.modules.get(name)
        if mod is not None:
            out[name] = str(getattr(mod, "__version__", "unknown"))
    return out


def provenance_stamp(routine: str, *, device: str | None = None) -> Provenance:
    """A fresh :class:`Provenance` for ``routine``.

    ``QD_FIXED_TIMESTAMP`` (ISO 8601) pins ``created_at``, for byte-identical reruns in tests.
    """
    ts = os.environ.get("QD_FIXED_TIMESTAMP") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Provenance(
        version=package_version(),
        git_sha=git_sha(),
        routine=routine,
        created_at=ts,
        device=device,
        libraries=library_versions(),
    )
