"""Reading and writing records: JSONL (append-safe, atomic per write), tidy DataFrames, Parquet, JSON Schema.

JSONL is the primary format: one record per line, each line written with a single ``os.write`` on a file
opened with ``O_APPEND`` and then fsynced, so concurrent appenders never interleave within a line and a crash
loses at most the record being written. ``mode="w"`` writes to a temporary file in the same directory and
renames it over the target (atomic replace).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import ValidationError

from qdstats.validation import check_option
from qdstats.records.measurement import FailedMeasurement, Measurement, Record

__all__ = [
    "RecordFormatError",
    "atomic_path",
    "atomic_write_text",
    "default_file_mode",
    "export_json_schemas",
    "from_frame",
    "read_parquet",
    "read_records",
    "record_from_dict",
    "to_frame",
    "write_parquet",
    "write_records",
]

_SCHEMAS: dict[str, type[Measurement] | type[FailedMeasurement]] = {
    "qd.measurement": Measurement,
    "qd.failed_measurement": FailedMeasurement,
}
_DICT_FIELDS = ("condition", "attributes")
_NESTED = ("model", "corpus", "provenance")


class RecordFormatError(ValueError):
    """A record file line that is not a valid record; the message starts with ``file:line``."""


def record_from_dict(data: dict[str, Any]) -> Record:
    """Validate a dict as the record type named by its ``schema_name``."""
    name = data.get("schema_name", "qd.measurement")
    if name not in _SCHEMAS:
        raise ValueError(f"`schema_name` must be one of {sorted(_SCHEMAS)}; got {name!r}.")
    return _SCHEMAS[name].model_validate(data)


def _dump_line(rec: Record) -> bytes:
    if not isinstance(rec, (Measurement, FailedMeasurement)):
        raise TypeError(f"`records` must contain Measurement or FailedMeasurement; got {type(rec).__name__}.")
    return (rec.model_dump_json() + "\n").encode("utf-8")


def default_file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (0o666 minus the umask); mkstemp files are 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary file path next to ``path``; on a normal exit, move it onto ``path`` atomically.

    The temporary file is in the same directory (so ``os.replace`` is atomic), hidden (``.<name>.*<suffix>``),
    and gets the mode a plain ``open(path, 'w')`` would give. On an exception, or when the block deletes the
    file, ``path`` is left as it was (the old file or none, never a partial one) and the temporary file is removed.
    This is the one atomic-write mechanism of the package: :func:`atomic_write_text`, :func:`write_parquet`,
    corpus and model fetching use it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, default_file_mode())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike[str], text: str | bytes) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def write_records(
    path: str | os.PathLike[str], records: Iterable[Record], *, mode: Literal["a", "w"] = "a"
) -> int:
    """Write records as JSONL.

    Parameters
    ----------
    path
        Target file; parent directories are created.
    records
        Measurements and/or failures.
    mode : {'a', 'w'}
        ``'a'`` appends, one atomic ``os.write`` per record; ``'w'`` atomically replaces the file.

    Returns
    -------
    int
        Number of records written.
    """
    check_option(mode, "mode", ("a", "w"))
    path = Path(path)
    lines = [_dump_line(r) for r in records]
    if mode == "w":
        atomic_write_text(path, b"".join(lines))
        return len(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        # repair a torn last line (crash mid-write) so appended records start on a fresh line
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    os.write(fd, b"\n")
        for line in lines:
            os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return len(lines)


def read_records(
    path: str | os.PathLike[str], *, on_error: Literal["raise", "warn"] = "raise"
) -> list[Record]:
    """Read a JSONL record file.

    A line that is not valid JSON or not a valid record raises :class:`RecordFormatError` with
    ``file:line`` (``on_error='warn'`` skips it with a warning instead, e.g. for a line torn by a crash).
    """
    check_option(on_error, "on_error", ("raise", "warn"))
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"record file not found: {path}")
    out: list[Record] = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                out.append(record_from_dict(json.loads(line)))
            except (UnicodeDecodeError, json.JSONDecodeError, ValidationError, ValueError) as exc:
                msg = f"{path}:{lineno}: not a valid record: {_describe_error(exc)}"
                if on_error == "raise":
                    raise RecordFormatError(msg) from exc
                warnings.warn(msg, stacklevel=2)
    return out


def _describe_error(exc: Exception) -> str:
    """One line naming every failing field with pydantic's message (which lists the allowed values)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start} of the line)"
    if isinstance(exc, ValidationError):
        parts = []
        for e in exc.errors():
            loc = ".".join(str(x) for x in e.get("loc", ())) or "(record)"
            parts.append(f"`{loc}`: {e.get('msg', '')} (got {e.get('input')!r})"[:300])
        return f"{exc.error_count()} validation error(s): " + "; ".join(parts)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _flatten(rec: Record) -> dict[str, Any]:
    d = rec.model_dump(mode="json")
    row: dict[str, Any] = {}
    for k, v in d.items():
        if k in _NESTED:
            if v is None:
                continue
            for kk, vv in v.items():
                if kk == "libraries":
                    row[f"{k}.{kk}"] = json.dumps(vv, sort_keys=True)
                elif isinstance(vv, list):
                    row[f"{k}.{kk}"] = json.dumps(vv)
                else:
                    row[f"{k}.{kk}"] = vv
        elif k in _DICT_FIELDS:
            for kk, vv in v.items():
                row[f"{k}.{kk}"] = vv
        elif k == "error" and isinstance(v, dict):
            for kk, vv in v.items():
                row[f"error.{kk}"] = vv
        elif k == "warnings":
            row[k] = json.dumps(list(v))
        elif k == "input":
            row[k] = json.dumps(v, sort_keys=True)
        else:
            row[k] = v
    if "value" in row and row["value"] is None:
        row["value"] = math.nan
    return row


def to_frame(records: Sequence[Record]) -> pd.DataFrame:
    """Tidy DataFrame, one row per record; nested fields flattened with ``.`` (``model.model_id``,
    ``condition.bits``...). ``warnings`` is a JSON list string. Values keep full precision.

    Examples
    --------
    >>> from qdstats.records import Measurement, to_frame
    >>> df = to_frame([Measurement(quantity="eval.n_tokens", value=3.0, condition={"bits": 4})])
    >>> df.loc[0, "condition.bits"]
    4
    """
    rows = [_flatten(r) for r in records]
    df = pd.DataFrame(rows)
    for col in df.columns:
        if col.startswith(("condition.", "attributes.")):
            # rebuild from the rows: pandas would have turned ints mixed with missing into floats
            df[col] = pd.Series([row.get(col) for row in rows], dtype=object, index=df.index)
    return df


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def from_frame(df: pd.DataFrame) -> list[Record]:
    """Inverse of :func:`to_frame` (also accepts frames read back from Parquet)."""
    out: list[Record] = []
    for row in df.to_dict(orient="records"):
        d: dict[str, Any] = {}
        for col, v in row.items():
            if "." in col:
                head, key = col.split(".", 1)
                if head in _DICT_FIELDS:
                    if not _is_missing(v):
                        d.setdefault(head, {})[key] = v.item() if hasattr(v, "item") else v
                    continue
                if head in _NESTED or head == "error":
                    if _is_missing(v):
                        continue
                    if key == "libraries" or (isinstance(v, str) and v.startswith("[")):
                        v = json.loads(v)
                    d.setdefault(head, {})[key] = v.item() if hasattr(v, "item") else v
                    continue
            if col in ("warnings", "input") and isinstance(v, str):
                v = json.loads(v)
            if _is_missing(v) and col != "value":
                continue
            d[col] = v.item() if hasattr(v, "item") else v
        schema = d.get("schema_name", "qd.measurement")
        fields = _SCHEMAS[schema].model_fields if schema in _SCHEMAS else {}
        # a mixed frame has columns of the other record type, NaN for this row: drop them
        d = {k: v for k, v in d.items() if k in fields or not (_is_missing(v) or v == "[]")}
        out.append(record_from_dict(d))
    return out


def write_parquet(path: str | os.PathLike[str], records: Sequence[Record]) -> Path:
    """Write records to Parquet (atomic). Dict fields are stored as JSON strings so mixed types survive."""
    df = to_frame(records)
    for col in [c for c in df.columns if c.startswith(("condition.", "attributes."))]:
        df[col] = [None if _is_missing(v) else json.dumps(v) for v in df[col]]
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(path)


def read_parquet(path: str | os.PathLike[str]) -> list[Record]:
    """Read records written by :func:`write_parquet`."""
    df = pd.read_parquet(path)
    for col in [c for c in df.columns if c.startswith(("condition.", "attributes."))]:
        df[col] = pd.Series([None if _is_missing(v) else json.loads(v) for v in df[col]], dtype=object, index=df.index)
    return from_frame(df)


def export_json_schemas(directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``<schema_name>.schema.json`` for every record type into ``directory``."""
    directory = Path(directory)
    paths = []
    for name, cls in _SCHEMAS.items():
        p = directory / f"{name}.v1.schema.json"
        atomic_write_text(p, json.dumps(cls.model_json_schema(), indent=2, sort_keys=True) + "\n")
        paths.append(p)
    return paths
