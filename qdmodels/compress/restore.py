"""Reversible in-place weight changes: exact backups and the one handle every compressor returns.

:class:`WeightBackup` keeps bit-exact copies of the tensors a compressor is about to change, in memory or in an
anonymous temporary file; :class:`RestoreHandle` pairs a compressor's report with that backup and puts the
weights back on :meth:`~RestoreHandle.restore` or on leaving a ``with`` block. Round-to-nearest quantization,
GPTQ and pruning all return a ``RestoreHandle``.

Examples
--------
>>> import torch
>>> from qdmodels.compress.restore import RestoreHandle, WeightBackup
>>> p = torch.nn.Parameter(torch.ones(3))
>>> backup = WeightBackup("memory")
>>> _ = backup.save(p)
>>> with torch.no_grad():
...     _ = p.mul_(0)
>>> with RestoreHandle(report="changed", backup=backup) as report:
...     report
'changed'
>>> p.tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import torch

from qdstats.validation import check_option

__all__ = ["BackupStorage", "RestoreHandle", "WeightBackup", "resolve_backup_storage", "spill_dir"]

ReportT = TypeVar("ReportT")



BackupStorage = Literal["memory", "disk"]
_BACKUP_STORAGES = ("memory", "disk")


def resolve_backup_storage(backup: BackupStorage | None) -> BackupStorage:
    """``backup`` if given, else ``$QD_BACKUP`` (``'memory'`` or ``'disk'``), else ``'disk'``.

    Raises
    ------
    ValueError
        An option (or the environment variable) outside ``{'memory', 'disk'}``.
    """
    if backup is None:
        env = os.environ.get("QD_BACKUP")
        if env is None or env == "":
            return "disk"
        check_option(env, "QD_BACKUP (environment variable)", _BACKUP_STORAGES)
        return env  # type: ignore[return-value]
    check_option(backup, "backup", _BACKUP_STORAGES)
    return backup


def spill_dir() -> str:
    """Directory of the disk backups: ``$QD_SPILL_DIR`` if set, else the system temporary directory."""
    return os.environ.get("QD_SPILL_DIR") or tempfile.gettempdir()


class WeightBackup:
    """Exact copies of tensors before in-place modification; restores them bit-exactly.

    ``storage='memory'`` keeps clones next to the tensors (same device). ``'disk'`` writes their raw bytes to an
    anonymous temporary file in :func:`spill_dir` (unlinked when created, so nothing is left behind, even after
    a crash) and reads them back on restore: the backup then costs no process memory, which for a whole-model
    condition is the size of every quantized tensor (SmolLM2-135M: 406 MiB of 513 MiB). If the temporary
    directory is a RAM-backed tmpfs, set ``QD_SPILL_DIR`` to a directory on disk.
    """

    def __init__(self, storage: BackupStorage | None = None) -> None:
        self.storage: BackupStorage = resolve_backup_storage(storage)
        self._saved: list[tuple[torch.nn.Parameter, Any]] = []
        self._file: Any = None
        self.restored = False

    def save(self, p: torch.nn.Parameter) -> torch.Tensor:
        """Back up ``p``; return an exact copy of its current values (the caller's to use and drop)."""
        orig = p.detach().clone()
        if self.storage == "memory":
            self._saved.append((p, orig))
            return orig
        cpu = orig.to("cpu").contiguous()
        nbytes = cpu.numel() * cpu.element_size()
        try:
            if self._file is None:
                self._file = tempfile.TemporaryFile(dir=spill_dir(), prefix="qd-backup-")
            off = self._file.seek(0, os.SEEK_END)
            if nbytes:
                self._file.write(memoryview(cpu.reshape(-1).view(torch.uint8).numpy()))
        except OSError as e:
            raise OSError(
                f"could not write the weight backup ({nbytes} bytes) to {spill_dir()!r}: {e}. Set QD_SPILL_DIR to a "
                "writable directory with room, or QD_BACKUP=memory (or backup='memory') to keep it in memory."
            ) from e
        self._saved.append((p, (off, nbytes, cpu.dtype, tuple(cpu.shape))))
        return orig

    def restore(self) -> None:
        if self.restored:
            return
        with torch.no_grad():
            for p, item in reversed(self._saved):
                if isinstance(item, torch.Tensor):
                    p.data.copy_(item)
                    continue
                off, nbytes, dtype, shape = item
                if nbytes == 0:
                    continue
                buf = bytearray(nbytes)
                self._file.seek(off)
                got = self._file.readinto(buf)
                if got != nbytes:
                    raise OSError(f"weight backup file truncated: read {got} of {nbytes} bytes at offset {off}.")
                p.data.copy_(torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(shape))
        self.restored = True
        self._saved.clear()
        if self._file is not None:
            self._file.close()
            self._file = None



@dataclass
class RestoreHandle(Generic[ReportT]):
    """Returned by every in-place compressor: its ``report`` and :meth:`restore` (bit-exact, idempotent).

    Used as a context manager it yields the report and restores the weights on exit, also after an error.
    """

    report: ReportT
    backup: WeightBackup = field(repr=False)

    @property
    def restored(self) -> bool:
        """Whether the original weights are back."""
        return self.backup.restored

    def restore(self) -> None:
        """Put the original weights back (idempotent)."""
        self.backup.restore()

    def __enter__(self) -> ReportT:
        return self.report

    def __exit__(self, *exc: object) -> None:
        self.restore()
