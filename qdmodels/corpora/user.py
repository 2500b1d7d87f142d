"""Your own text: :func:`load_corpus` reads a corpus id, a file, a folder or a Hugging Face dataset into the same
:class:`~qdmodels.corpora.ntrex.ParallelCorpus` of :class:`~qdmodels.corpora.types.ParallelItem` that
:func:`~qdmodels.corpora.ntrex.load_ntrex` returns, so every scorer, probe and command takes it unchanged.

Sources (``path_or_id``), first match wins:

* a corpus id with a loader: ``'ntrex128'`` (:func:`~qdmodels.corpora.ntrex.load_ntrex`), ``'dataset_build'``
  (paragraphs, not parallel) and every manifest with ``location: hub`` (``'flores_plus'``: FLORES+ at its pinned
  revision, read with ``datasets``);
* ``'hf:<repo>[@<revision>][:<split>]'``: a Hugging Face hub dataset, read with ``datasets`` (imported lazily);
* a folder of ``<lang>.txt`` files, one sentence per line, line-aligned (line *k* of every file is item ``'k'``);
* a file: ``.tsv``/``.tab``, ``.csv`` (both read with Python's ``csv``: RFC 4180 double-quote quoting, so a
  quoted field may hold tabs and newlines), ``.jsonl``/``.ndjson`` (one JSON object per line), ``.parquet``/``.pq``.

A file is **long** (a row per sentence: columns ``language`` and ``text``) or **wide** (a row per parallel item: one
column per language code). Optional columns in both: ``item_id`` (the pairing key across languages; long files are
parallel only with it), ``document_id`` (the cluster of the bootstrap CIs), ``split`` (rows kept by ``split=``) and
``line`` (the item's line in an original source, e.g. when the file is an export of another corpus; default: the
row's own 0-based line in the file). ``columns={'text': 'sentence', ...}`` maps these names to other column names.
Long files ignore other columns; in a wide file every other column must be a language code.

Rules, all checked with errors that name the file, the line and the value (:class:`CorpusFormatError`, a
``ValueError``): language codes are normalized (``heb``, ``he`` and ``heb_Hebr`` are all ``heb_Hebr``); a text may
not be empty; ``(language, item_id)`` is unique; an item has one ``document_id`` in every language. Texts are
NFC-normalized as NTREX items are. Without ``document_id`` each item is its own document and the corpus says so once
(:data:`NO_DOCUMENT_ID_NOTE` in ``ParallelCorpus.notes``). Items carry a ``CorpusRef``: ``corpus_id`` is
``'user:<file name>'`` (``'hf:<repo>'`` for hub data), ``sha256`` the file's sha256 (a folder: sha256 of its sorted
per-file hashes joined by newlines; hub data: sha256 of the rows read), ``split`` the ``split=`` asked for (``'all'``
without one).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.languages import normalize_language
from qdmodels.corpora.manifest import CorpusManifest, list_manifests, sha256_file
from qdmodels.corpora.normalize import normalization_steps, normalize_text
from qdmodels.corpora.ntrex import ParallelCorpus
from qdmodels.corpora.types import ParallelItem
from qdstats.records import LANGUAGE_PATTERN, CorpusRef
from qdstats.validation import UnknownNameError, check_int, check_option, did_you_mean

__all__ = [
    "FILE_SUFFIXES",
    "NO_DOCUMENT_ID_NOTE",
    "CorpusFormatError",
    "corpus_ids",
    "load_corpus",
    "resolve_language",
]

#: The one note a command prints when items carry no document id.
NO_DOCUMENT_ID_NOTE = "no document_id: CIs cluster by item"
#: Column names the loader knows (everything else in a wide file must be a language code).
RESERVED = ("language", "text", "item_id", "document_id", "split", "line")
#: File suffix -> reader.
FILE_SUFFIXES = {".tsv": "tsv", ".tab": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".parquet": "parquet", ".pq": "parquet"}
Format = Literal["auto", "long", "wide"]
Sample = Literal["first", "spread"]

_LANG_RE = re.compile(LANGUAGE_PATTERN)
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class CorpusFormatError(ValueError):
    """A corpus file (or hub dataset) is malformed; the message names the file, the line (or row) and the value."""


# ---------------------------------------------------------------------------------------------------------------
# language codes
# ---------------------------------------------------------------------------------------------------------------


def resolve_language(code: str) -> str:
    """The ``<ISO 639-3>_<Script>`` code of a language code as people write it.

    ``heb_Hebr``, ``heb`` and ``he`` give ``heb_Hebr``; NTREX codes (``zho-CN``, ``eng-GB``), UD codes and
    dataset_build codes are looked up in their tables; a well-formed ``xxx_Yyyy`` code that no table lists
    (``cmn_Hans`` of FLORES+) is kept as it is.

    Raises
    ------
    UnknownNameError
        ``code`` is not in any table and not of the form ``xxx_Yyyy`` (a ``ValueError``).

    Examples
    --------
    >>> resolve_language("he"), resolve_language("heb"), resolve_language("heb_Hebr")
    ('heb_Hebr', 'heb_Hebr', 'heb_Hebr')
    """
    if not isinstance(code, str):
        raise TypeError(f"a language code must be a string; got {code!r} of type {type(code).__name__}.")
    c = code.strip()
    if _LANG_RE.match(c):
        return c
    for scheme in ("ntrex128", "ud", "dataset_build"):
        for cand in dict.fromkeys((c, c.lower())):
            try:
                return normalize_language(cand, scheme=scheme)
            except UnknownNameError:
                pass
    raise UnknownNameError(
        f"{code!r} is not a known language code: give ISO 639-3 + ISO 15924 script (heb_Hebr, spa_Latn), or a "
        "code of NTREX-128 (heb, zho-CN), UD (he) or dataset_build (ara)."
    )


# ---------------------------------------------------------------------------------------------------------------
# reading files into (line number, record) pairs
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    label: str                                # the file as the user named it, or 'hf:<repo> [config/split]'
    unit: str                                 # 'line' or 'row' (for messages)
    columns: tuple[str, ...]
    records: list[tuple[int, dict[str, Any]]]  # (1-based line/row where the record starts, values)


def _decode(raw: bytes, label: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CorpusFormatError(f"{label}, line {line}: not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                                "save the file as UTF-8.") from None


def _read_delimited(path: Path, label: str, delimiter: str) -> _Table:
    text = _decode(path.read_bytes(), label)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    records: list[tuple[int, dict[str, Any]]] = []
    prev = 0
    try:
        for fields in reader:
            start, prev = prev + 1, reader.line_num
            if not fields:  # a blank line
                continue
            if header is None:
                header = [f.strip() for f in fields]
                empty = [i + 1 for i, h in enumerate(header) if not h]
                if empty:
                    raise CorpusFormatError(f"{label}, line {start}: header column {empty[0]} has no name.")
                dup = sorted({h for h in header if header.count(h) > 1})
                if dup:
                    raise CorpusFormatError(f"{label}, line {start}: header names column {dup[0]!r} twice.")
                continue
            if len(fields) != len(header):
                raise CorpusFormatError(
                    f"{label}, line {start}: {len(fields)} field(s), but the header has {len(header)} "
                    f"({', '.join(header)}); a field holding a {'tab' if delimiter == chr(9) else 'comma'} or a "
                    "newline must be in double quotes.")
            records.append((start, dict(zip(header, fields))))
    except csv.Error as exc:
        raise CorpusFormatError(f"{label}, line {prev + 1}: {exc}") from None
    if header is None:
        raise CorpusFormatError(f"{label} is empty: it needs a header line and rows.")
    return _Table(label, "line", tuple(header), records)


def _read_jsonl(path: Path, label: str) -> _Table:
    text = _decode(path.read_bytes(), label)
    records: list[tuple[int, dict[str, Any]]] = []
    columns: dict[str, None] = {}
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusFormatError(f"{label}, line {n}: not valid JSON ({exc.msg}, column {exc.colno}).") from None
        if not isinstance(obj, dict):
            raise CorpusFormatError(f"{label}, line {n}: each line must be a JSON object; got {type(obj).__name__}.")
        columns.update(dict.fromkeys(obj))
        records.append((n, obj))
    return _Table(label, "line", tuple(columns), records)


def _read_parquet(path: Path, label: str) -> _Table:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - any pyarrow failure means "not a readable Parquet file"
        raise CorpusFormatError(f"{label}: not a readable Parquet file ({type(exc).__name__}: {exc}).") from None
    return _Table(label, "row", tuple(table.column_names), list(enumerate(table.to_pylist(), 1)))


def _read_file(path: Path, label: str) -> _Table:
    kind = FILE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise CorpusFormatError(
            f"{label}: unknown file type {path.suffix or '(no suffix)'!r}; use one of "
            f"{', '.join(sorted(FILE_SUFFIXES))}, or a folder of <lang>.txt files.")
    if kind == "tsv":
        return _read_delimited(path, label, "\t")
    if kind == "csv":
        return _read_delimited(path, label, ",")
    if kind == "jsonl":
        return _read_jsonl(path, label)
    return _read_parquet(path, label)


# ---------------------------------------------------------------------------------------------------------------
# records -> rows
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    where: str            # 'pud.tsv, line 7' (for messages)
    line: int             # 0-based line (or row) of the record in its file, or the `line` column
    language: str         # normalized code
    source_code: str      # the code as the file writes it
    text: str             # as in the file (normalized later)
    item_id: str | None
    document_id: str | None
    split: str | None


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip()) or (isinstance(v, float) and math.isnan(v))


def _key(v: Any, where: str, name: str) -> str:
    """An id-like value (item_id, document_id, split) as a string; numbers from JSON/Parquet become their digits."""
    if _empty(v):
        raise CorpusFormatError(f"{where}: `{name}` is empty.")
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise CorpusFormatError(f"{where}: `{name}` must be a string or an integer; got {v!r}.")
    if isinstance(v, float):
        if not v.is_integer():
            raise CorpusFormatError(f"{where}: `{name}` must be a string or an integer; got {v!r}.")
        return str(int(v))
    return str(v).strip()


def _line_value(v: Any, where: str) -> int:
    try:
        out = int(_key(v, where, "line"))
    except ValueError:
        raise CorpusFormatError(f"{where}: `line` must be a non-negative integer; got {v!r}.") from None
    if out < 0:
        raise CorpusFormatError(f"{where}: `line` must be a non-negative integer; got {v!r}.")
    return out


def _text(v: Any, where: str, language: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        v = ""
    if not isinstance(v, str):
        raise CorpusFormatError(f"{where}: the {language} text must be a string; got {v!r}.")
    if not v.strip():
        raise CorpusFormatError(f"{where}: the {language} text is empty; remove the row or give the sentence.")
    return v


class _Languages:
    """Normalizes language values with a cache; a bad value is a CorpusFormatError naming where it occurred."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __call__(self, value: Any, where: str, what: str = "`language` value") -> str:
        if _empty(value) or not isinstance(value, str):
            raise CorpusFormatError(f"{where}: {what} {value!r} is not a language code.")
        if value not in self._seen:
            try:
                self._seen[value] = resolve_language(value)
            except UnknownNameError as exc:
                raise CorpusFormatError(f"{where}: {what} {value!r}: {exc}") from None
        return self._seen[value]


def _rename(table: _Table, columns: Mapping[str, str] | None) -> tuple[tuple[str, ...], dict[str, str]]:
    """Column names after ``columns`` (loader name -> file name) and the file-name -> loader-name map."""
    if not columns:
        return table.columns, {c: c for c in table.columns}
    if not isinstance(columns, Mapping):
        raise TypeError(f"`columns` must map loader column names to the file's; got {columns!r}.")
    rename: dict[str, str] = {}
    for ours, theirs in columns.items():
        if theirs not in table.columns:
            raise CorpusFormatError(
                f"{table.label}: `columns` maps {ours!r} to {theirs!r}, which is not a column."
                + did_you_mean(str(theirs), table.columns) + f" Columns: {', '.join(table.columns)}.")
        rename[theirs] = ours
    mapped = set(rename.values())
    out = {c: rename.get(c, c) for c in table.columns if c in rename or c not in mapped}
    return tuple(out.values()), out


def _rows(table: _Table, fmt: Format, columns: Mapping[str, str] | None, langs: _Languages,
          fixed: Mapping[str, Any] | None = None) -> tuple[list[_Row], set[str], bool]:
    """Rows of a table, the optional columns it has, and whether it is wide (a row = one parallel item)."""
    names, rename = _rename(table, columns)
    present = set(names) | set(fixed or {})
    long = {"language", "text"} <= present
    if fmt == "long" and not long:
        missing = sorted({"language", "text"} - present)
        raise CorpusFormatError(f"{table.label}: a long-format file needs the columns `language` and `text`; "
                                f"{', '.join(missing)} missing (columns: {', '.join(names)}). Map other names with "
                                "`columns=`.")
    if fmt == "wide" or not long:
        return _wide_rows(table, names, rename, langs, fixed)
    out: list[_Row] = []
    for n, rec in table.records:
        r = {rename[k]: v for k, v in rec.items() if k in rename}
        if fixed:
            r = {**r, **fixed}
        where = f"{table.label}, {table.unit} {n}"
        raw = r.get("language")
        code = langs(raw, where)
        out.append(_Row(
            where=where, line=_line_value(r.get("line"), where) if "line" in present else n - 1, language=code,
            source_code=str(raw).strip(), text=_text(r.get("text"), where, code),
            item_id=_key(r.get("item_id"), where, "item_id") if "item_id" in present else None,
            document_id=_key(r.get("document_id"), where, "document_id") if "document_id" in present else None,
            split=_key(r.get("split"), where, "split") if "split" in present else None))
    return out, present & {"item_id", "document_id", "split", "line"}, False


def _wide_rows(table: _Table, names: tuple[str, ...], rename: dict[str, str], langs: _Languages,
               fixed: Mapping[str, Any] | None) -> tuple[list[_Row], set[str], bool]:
    header_where = f"{table.label}, {'line 1 (header)' if table.unit == 'line' else 'columns'}"
    lang_cols: dict[str, str] = {}  # loader column name -> normalized code
    hint = (" A long-format file needs both `language` and `text`." if {"language", "text"} & set(names) else "")
    for col in names:
        if col in RESERVED and col not in ("language", "text"):
            continue
        try:
            code = resolve_language(col)
        except UnknownNameError:
            raise CorpusFormatError(
                f"{header_where}: column {col!r} is neither a language code nor one of item_id, document_id, split, "
                f"line (a wide file has one column per language).{hint}") from None
        other = next((c for c, k in lang_cols.items() if k == code), None)
        if other is not None:
            raise CorpusFormatError(f"{header_where}: columns {other!r} and {col!r} are the same language {code}.")
        lang_cols[col] = code
    if not lang_cols:
        raise CorpusFormatError(f"{header_where}: no language columns (columns: {', '.join(names)}).")
    present = set(names) | set(fixed or {})
    out: list[_Row] = []
    for k, (n, rec) in enumerate(table.records, 1):
        r = {rename[c]: v for c, v in rec.items() if c in rename}
        if fixed:
            r = {**r, **fixed}
        where = f"{table.label}, {table.unit} {n}"
        item = _key(r.get("item_id"), where, "item_id") if "item_id" in present else str(k)
        doc = _key(r.get("document_id"), where, "document_id") if "document_id" in present else None
        split = _key(r.get("split"), where, "split") if "split" in present else None
        line = _line_value(r.get("line"), where) if "line" in present else n - 1
        for col, code in lang_cols.items():
            out.append(_Row(where=f"{where}, column {col!r}", line=line, language=code, source_code=col,
                            text=_text(r.get(col), f"{where}, column {col!r}", code), item_id=item, document_id=doc,
                            split=split))
    return out, (present & {"document_id", "split", "line"}) | {"item_id"}, True


def _folder_rows(folder: Path, label: str, langs: _Languages) -> tuple[list[_Row], str]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".txt")
    if not files:
        raise CorpusFileError(f"folder {label!r} has no <lang>.txt files (one sentence per line, e.g. eng.txt, heb.txt).")
    rows: list[_Row] = []
    counts: dict[str, int] = {}
    by_code: dict[str, str] = {}
    hashes = []
    for p in files:
        flabel = f"{label.rstrip('/')}/{p.name}"
        code = langs(p.stem, flabel, "file name")
        if code in by_code:
            raise CorpusFormatError(f"{flabel}: the same language {code} as {by_code[code]}.")
        by_code[code] = p.name
        raw = p.read_bytes()
        hashes.append(hashlib.sha256(raw).hexdigest())
        lines = _decode(raw, flabel).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for i, ln in enumerate(lines):
            where = f"{flabel}, line {i + 1}"
            rows.append(_Row(where=where, line=i, language=code, source_code=p.stem,
                             text=_text(ln.removesuffix("\r"), where, code), item_id=str(i + 1), document_id=None,
                             split=None))
        counts[p.name] = len(lines)
    if len(set(counts.values())) > 1:
        raise CorpusFormatError(
            f"folder {label!r}: the files have different numbers of lines ({', '.join(f'{k} {v}' for k, v in counts.items())}); "
            "<lang>.txt files must be line-aligned (line k of every file is item k).")
    sha = hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()
    return rows, sha


# ---------------------------------------------------------------------------------------------------------------
# rows -> ParallelCorpus
# ---------------------------------------------------------------------------------------------------------------


def _check_rows(rows: Sequence[_Row], has_item_id: bool, has_doc: bool) -> None:
    """(language, item_id) unique; one document_id per item across languages."""
    if has_item_id:
        seen: dict[tuple[str, str], str] = {}
        for r in rows:
            k = (r.language, r.item_id or "")
            if k in seen:
                raise CorpusFormatError(f"{r.where}: duplicate (language, item_id) = ({r.language}, {r.item_id!r}); "
                                        f"first at {seen[k]}.")
            seen[k] = r.where
    if has_item_id and has_doc:
        docs: dict[str, _Row] = {}
        for r in rows:
            first = docs.setdefault(r.item_id or "", r)
            if first.document_id != r.document_id:
                raise CorpusFormatError(
                    f"{r.where}: item {r.item_id!r} has document_id {r.document_id!r} in {r.language}, but "
                    f"{first.document_id!r} in {first.language} ({first.where}); an item belongs to one document.")


def _select(n: int, limit: int | None, sample: str) -> list[int]:
    if limit is None or limit >= n:
        return list(range(n))
    if sample == "first":
        return list(range(limit))
    return sorted({round(k * (n - 1) / max(limit - 1, 1)) for k in range(limit)})


def _build(rows: list[_Row], *, label: str, corpus_id: str, sha256: str, version: str | None,
           optional: set[str], languages: Sequence[str] | str | None, split: str | None, limit: int | None,
           sample: str, strip_diacritics: bool, license_flags: tuple[str, ...] = (),
           notes: Sequence[str] = ()) -> ParallelCorpus:
    has_item_id, has_doc, has_split = "item_id" in optional, "document_id" in optional, "split" in optional
    _check_rows(rows, has_item_id, has_doc)
    available = list(dict.fromkeys(r.language for r in rows))
    if not available:
        raise CorpusFormatError(f"{label} has no rows.")
    if languages is None:
        keys = {code: code for code in available}
    else:
        wanted = [languages] if isinstance(languages, str) else list(languages)
        if not wanted:
            raise ValueError("`languages` must not be empty; pass None for every language of the corpus.")
        keys = {}
        for w in wanted:
            code = resolve_language(w)
            if code not in available:
                raise UnknownNameError(f"`languages` entry {w!r} ({code}) is not in {label}." + did_you_mean(code, available)
                                       + f" Its languages: {', '.join(available)}.")
            keys[w] = code
    if split not in (None, "all"):
        if not has_split:
            raise ValueError(f"`split` {split!r}: {label} has no `split` column; leave the split out (every row) or "
                             "add a split column.")
        splits = list(dict.fromkeys(r.split for r in rows))
        rows = [r for r in rows if r.split == split]
        if not rows:
            raise ValueError(f"`split` {split!r} matches no row of {label}." + did_you_mean(split, [str(s) for s in splits])
                             + f" Its splits: {', '.join(str(s) for s in splits)}.")
    per: dict[str, list[_Row]] = {code: [] for code in dict.fromkeys(keys.values())}
    counters: dict[str, int] = {}
    for r in rows:
        if r.language in per:
            if r.item_id is None:  # long file without item_id: ids are per language, nothing is paired
                counters[r.language] = counters.get(r.language, 0) + 1
                r = _Row(r.where, r.line, r.language, r.source_code, r.text, f"{r.language}:{counters[r.language]}",
                         r.document_id, r.split)
            per[r.language].append(r)
    out_notes = list(notes)
    for code, rs in per.items():
        if not rs:
            raise ValueError(f"{label} has no {code} rows" + (f" in split {split!r}." if split else "."))
    id_sets = {code: {r.item_id for r in rs} for code, rs in per.items()}
    parallel = has_item_id and len({frozenset(s) for s in id_sets.values()}) == 1
    if has_item_id and not parallel:
        sizes = ", ".join(f"{c} {len(s)}" for c, s in id_sets.items())
        out_notes.append(f"{label}: the languages do not have the same item_id values ({sizes} items): items are "
                         "not paired, comparisons resample each language on its own.")
    if not has_item_id and len(per) > 1:
        out_notes.append(f"{label} has no item_id: sentences are not paired across languages, comparisons resample "
                         "each language on its own.")
    if not has_doc:
        out_notes.append(NO_DOCUMENT_ID_NOTE)
    chosen: dict[str, list[_Row]] = {}
    if parallel:
        first = next(iter(per.values()))
        order = [first[i].item_id for i in _select(len(first), limit, sample)]
        for code, rs in per.items():
            by_id = {r.item_id: r for r in rs}
            chosen[code] = [by_id[i] for i in order]
    else:
        for code, rs in per.items():
            chosen[code] = [rs[i] for i in _select(len(rs), limit, sample)]
    items: dict[str, tuple[ParallelItem, ...]] = {}
    for key, code in keys.items():
        steps = normalization_steps(code, strip_diacritics=strip_diacritics)
        ref = CorpusRef(corpus_id=corpus_id, split=split or "all", sha256=sha256, normalization=steps,
                        version=version, license_flags=license_flags)
        items[key] = tuple(
            ParallelItem(item_id=r.item_id or "", line=r.line, document_id=r.document_id or r.item_id or "",
                         language=code, source_code=r.source_code, text=normalize_text(r.text, steps),
                         split=r.split if r.split is not None else split, corpus=ref)
            for r in chosen[code])
    rule = ("user: rows of the `split` column" if has_split else "user: no split column (every row)")
    return ParallelCorpus(corpus_id=corpus_id, split=split or "all", split_rule=rule, items=items,
                          license_flags=license_flags, parallel=parallel, has_document_ids=has_doc,
                          notes=tuple(dict.fromkeys(out_notes)))


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face hub
# ---------------------------------------------------------------------------------------------------------------


def _parse_hf(spec: str) -> tuple[str, str | None, str | None]:
    """``'hf:<repo>[@<revision>][:<split>]'`` -> (repo, revision, split)."""
    body = spec[len("hf:"):]
    split = None
    if ":" in body:
        body, split = body.rsplit(":", 1)
        if not split:
            raise ValueError(f"`corpus` {spec!r}: empty split after ':'.")
    revision = None
    if "@" in body:
        body, revision = body.split("@", 1)
        if not revision:
            raise ValueError(f"`corpus` {spec!r}: empty revision after '@'.")
    if not _HF_REPO.match(body):
        raise ValueError(f"`corpus` {spec!r}: expected 'hf:<owner>/<dataset>[@<revision>][:<split>]', e.g. "
                         "'hf:openlanguagedata/flores_plus:devtest'.")
    return body, revision, split


def _hf_tables(repo: str, *, split: str | None, revision: str | None, config: str | None,
               languages: Sequence[str] | None) -> list[tuple[_Table, dict[str, Any]]]:
    """Read the dataset with ``datasets`` (lazily imported); one table per (configuration, split)."""
    try:
        import datasets
    except ImportError:
        raise ImportError(f"reading hf:{repo} needs the `datasets` library: `pip install datasets` (or use a local "
                          "TSV/CSV/JSONL/Parquet file).") from None
    if config is not None and "{language}" in config:
        if not languages:
            raise ValueError(f"`languages` must be given for hf:{repo}: it has one configuration per language "
                             f"({config!r}).")
        parts: list[tuple[str | None, str | None]] = [(lang, config.format(language=lang)) for lang in languages]
    else:
        parts = [(None, config)]
    out: list[tuple[_Table, dict[str, Any]]] = []
    for lang, cfg in parts:
        ds = datasets.load_dataset(repo, cfg, split=split, revision=revision)
        splits = {split: ds} if split is not None else dict(ds)
        for sname, d in splits.items():
            records = [(i, dict(row)) for i, row in enumerate(d, 1)]
            cols = tuple(dict.fromkeys(k for _, r in records for k in r))
            label = f"hf:{repo}" + (f"@{revision[:12]}" if revision else "") + f" [{cfg or 'default'}/{sname}]"
            fixed: dict[str, Any] = {}
            if lang is not None:
                fixed["language"] = lang
            if sname is not None:
                fixed["split"] = sname
            out.append((_Table(label, "row", cols, records), fixed))
    return out


def _load_hf(repo: str, *, corpus_id: str, revision: str | None, hf_split: str | None, config: str | None,
             columns: Mapping[str, str] | None, fmt: Format, languages: Sequence[str] | str | None,
             limit: int | None, sample: str, strip_diacritics: bool, license_flags: tuple[str, ...] = (),
             notes: Sequence[str] = ()) -> ParallelCorpus:
    wanted = None if languages is None else [languages] if isinstance(languages, str) else list(languages)
    codes = None if wanted is None else list(dict.fromkeys(resolve_language(w) for w in wanted))
    langs = _Languages()
    rows: list[_Row] = []
    optional: set[str] = set()
    for table, fixed in _hf_tables(repo, split=hf_split, revision=revision, config=config, languages=codes):
        r, opt, _wide = _rows(table, fmt, columns, langs, fixed)
        rows.extend(r)
        optional |= opt
    h = hashlib.sha256()
    for r in rows:
        h.update("\t".join((r.language, r.item_id or "", r.document_id or "", r.split or "", r.text)).encode() + b"\n")
    out_notes = list(notes)
    if revision is None:
        out_notes.append(f"hf:{repo} is not pinned to a revision: pass revision= (or hf:{repo}@<commit>) so the "
                         "records name the exact data.")
    return _build(rows, label=f"hf:{repo}", corpus_id=corpus_id, sha256=h.hexdigest(), version=revision,
                  optional=optional, languages=languages, split=hf_split, limit=limit,
                  sample=sample, strip_diacritics=strip_diacritics, license_flags=license_flags, notes=out_notes)


# ---------------------------------------------------------------------------------------------------------------
# corpus ids with loaders
# ---------------------------------------------------------------------------------------------------------------


def _hub_manifests() -> dict[str, CorpusManifest]:
    try:
        return {k: m for k, m in list_manifests().items() if m.location == "hub"}
    except (CorpusFileError, ValueError):
        return {}


def corpus_ids() -> tuple[str, ...]:
    """Corpus ids :func:`load_corpus` reads by name: ``ntrex128``, ``dataset_build`` and the hub manifests."""
    return ("ntrex128", "dataset_build", *sorted(_hub_manifests()))


def _no_file_options(name: str, **given: Any) -> None:
    bad = [k for k, v in given.items() if v is not None]
    if bad:
        raise ValueError(f"`{bad[0]}` applies to files and hf: datasets, not to the corpus id {name!r}.")


def _load_dataset_build(languages: Sequence[str] | str | None, split: str | None, limit: int | None, sample: str,
                        strip_diacritics: bool) -> ParallelCorpus:
    from qdmodels.corpora.dataset_build import load_dataset_build

    if split not in (None, "all"):
        raise ValueError(f"`split` {split!r}: dataset_build has no splits; leave it out.")
    db = load_dataset_build(languages, strip_diacritics=strip_diacritics)
    items = {k: tuple(v[i] for i in _select(len(v), limit, sample)) for k, v in db.items.items()}
    return ParallelCorpus(corpus_id="dataset_build", split="all", split_rule="none (topic-matched paragraphs)",
                          items=items, license_flags=db.license_flags, parallel=False, has_document_ids=False,
                          notes=("dataset_build is not parallel: comparisons resample each language on its own.",
                                 NO_DOCUMENT_ID_NOTE))


# ---------------------------------------------------------------------------------------------------------------
# the entry point
# ---------------------------------------------------------------------------------------------------------------


def load_corpus(
    path_or_id: str | os.PathLike[str],
    *,
    languages: Sequence[str] | str | None = None,
    split: str | None = None,
    limit: int | None = None,
    sample: Sample = "first",
    data_dir: str | os.PathLike[str] | None = None,
    format: Format = "auto",
    columns: Mapping[str, str] | None = None,
    revision: str | None = None,
    hf_config: str | None = None,
    corpus_id: str | None = None,
    strip_diacritics: bool = False,
) -> ParallelCorpus:
    """Load a corpus by id, from a file or folder, or from the Hugging Face hub, as a :class:`ParallelCorpus`.

    Parameters
    ----------
    path_or_id : str or path-like
        ``'ntrex128'``, ``'dataset_build'``, ``'flores_plus'`` (see :func:`corpus_ids`); ``'hf:<repo>[@<rev>][:<split>]'``;
        a ``.tsv``/``.csv``/``.jsonl``/``.parquet`` file; or a folder of ``<lang>.txt`` files. See the module
        docstring for the formats.
    languages : str or sequence of str, optional
        Languages to keep, in any code :func:`resolve_language` reads (``'heb'``, ``'he'``, ``'heb_Hebr'``); items are
        keyed by these names. None keeps every language (keyed by normalized code; by NTREX code for ntrex128).
    split : str, optional
        Rows whose ``split`` column equals it (a file without that column is an error); None or ``'all'``: every
        row. ntrex128: ``'dev'`` (default), ``'test'``, ``'all'``; hub datasets: the dataset's split to read.
    limit : int, optional
        Items per language; for a parallel corpus the same items in every language.
    sample : {'first', 'spread'}
        With ``limit``: the first items, or items spread evenly over the corpus (first and last included).
    data_dir : path-like, optional
        Data directory of the corpus ids (ntrex128).
    format : {'auto', 'long', 'wide'}
        File layout; 'auto': long when the file has ``language`` and ``text`` columns, else wide.
    columns : mapping, optional
        Loader column name -> the file's (or dataset's) column name, e.g. ``{'text': 'sentence', 'item_id': 'id'}``.
    revision, hf_config : str, optional
        Hub revision (a commit, for reproducible records) and configuration (``'{language}'`` in it: one
        configuration per language) of an ``hf:`` dataset.
    corpus_id : str, optional
        ``CorpusRef.corpus_id`` of the items (default ``'user:<file name>'``, ``'hf:<repo>'``).
    strip_diacritics : bool
        Remove Hebrew niqqud / Arabic harakat after NFC (recorded in ``CorpusRef.normalization``).

    Returns
    -------
    ParallelCorpus
        ``items`` per language; ``parallel`` (same item ids in every language), ``has_document_ids`` and
        ``notes`` (print each once, e.g. :data:`NO_DOCUMENT_ID_NOTE`).

    Raises
    ------
    CorpusFormatError
        A malformed file: bad language code, empty text, duplicate ``(language, item_id)``, an unknown column of a
        wide file, two document ids for one item... The message names the file, the line and the value.
    UnknownNameError
        An unknown corpus id or a language not in the corpus (both ``ValueError``\\ s).
    CorpusFileError
        No such file or folder (a ``FileNotFoundError``).
    ImportError
        ``hf:`` without the ``datasets`` library.

    Notes
    -----
    Validated against: the same 3 x 6 NTREX-128 sentences read with :func:`~qdmodels.corpora.ntrex.load_ntrex` and
    from a TSV give identical evaluation records except the corpus reference
    (``tests/qdmodels/corpora/test_corpora_user.py``); the hub route only against a mocked ``datasets``.

    Examples
    --------
    >>> corpus = load_corpus("pud.tsv", languages=["eng", "kor"], limit=100, sample="spread")  # doctest: +SKIP
    >>> corpus.parallel, corpus.notes  # doctest: +SKIP
    (True, ())
    """
    if not isinstance(path_or_id, (str, os.PathLike)):
        raise TypeError(f"`path_or_id` must be a corpus id, 'hf:<repo>' or a path; got {path_or_id!r}.")
    check_option(sample, "sample", ("first", "spread"))
    check_option(format, "format", ("auto", "long", "wide"))
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    if split is not None and (not isinstance(split, str) or not split):
        raise ValueError(f"`split` must be a non-empty string or None; got {split!r}.")
    if not isinstance(strip_diacritics, bool):
        raise TypeError(f"`strip_diacritics` must be True or False; got {strip_diacritics!r}.")
    spec = os.fspath(path_or_id)
    if isinstance(path_or_id, str):
        if spec == "ntrex128":
            from qdmodels.corpora.ntrex import load_ntrex

            _no_file_options(spec, columns=columns, revision=revision, hf_config=hf_config, corpus_id=corpus_id,
                             format=None if format == "auto" else format)
            kw: dict[str, Any] = {} if split is None else {"split": split}
            return load_ntrex(languages, limit=limit, sample=sample, data_dir=data_dir,  # type: ignore[arg-type]
                              strip_diacritics=strip_diacritics, **kw)
        if spec == "dataset_build":
            _no_file_options(spec, columns=columns, revision=revision, hf_config=hf_config, corpus_id=corpus_id,
                             format=None if format == "auto" else format)
            return _load_dataset_build(languages, split, limit, sample, strip_diacritics)
        hub = _hub_manifests()
        if spec in hub:
            m = hub[spec]
            assert m.hub is not None
            if split is None or split not in m.hub.splits:
                raise ValueError(f"`split` must be one of {', '.join(m.hub.splits)} for {spec}; got {split!r}.")
            if revision is not None and revision != m.hub.revision:
                raise ValueError(f"`revision`: {spec} is pinned to {m.hub.revision}; use hf:{m.hub.repo_id}@{revision} "
                                 "for another revision.")
            notes = ((f"{spec} is gated on the hub: accept its terms at {m.source.repository} and log in "
                      "(`hf auth login`) before the first download."),) if m.hub.gated else ()
            return _load_hf(m.hub.repo_id, corpus_id=corpus_id or spec, revision=m.hub.revision, hf_split=split,
                            config=hf_config or m.hub.config, columns={**m.hub.columns, **(columns or {})}, fmt=format,
                            languages=languages, limit=limit, sample=sample,
                            strip_diacritics=strip_diacritics, license_flags=m.license_flags, notes=notes)
        if spec.startswith("hf:"):
            repo, rev, hf_split = _parse_hf(spec)
            if rev is not None and revision is not None and rev != revision:
                raise ValueError(f"`revision` {revision!r} differs from the one in {spec!r}.")
            if hf_split is not None and split is not None and hf_split != split:
                raise ValueError(f"`split` {split!r} differs from the split in {spec!r}.")
            return _load_hf(repo, corpus_id=corpus_id or f"hf:{repo}", revision=rev or revision,
                            hf_split=hf_split or split, config=hf_config, columns=columns, fmt=format,
                            languages=languages,
                            limit=limit, sample=sample, strip_diacritics=strip_diacritics)
    path = Path(spec).expanduser()
    if path.is_dir():
        if format != "auto" or columns:
            raise ValueError("`format` and `columns` do not apply to a folder of <lang>.txt files.")
        rows, sha = _folder_rows(path, spec, _Languages())
        return _build(rows, label=spec, corpus_id=corpus_id or f"user:{path.resolve().name}", sha256=sha,
                      version=None, optional={"item_id"}, languages=languages, split=split, limit=limit,
                      sample=sample, strip_diacritics=strip_diacritics)
    if path.is_file():
        table = _read_file(path, spec)
        if not table.records:
            raise CorpusFormatError(f"{spec} has a header but no rows.")
        rows, optional, _wide = _rows(table, format, columns, _Languages())
        return _build(rows, label=spec, corpus_id=corpus_id or f"user:{path.name}", sha256=sha256_file(path),
                      version=None, optional=optional, languages=languages, split=split, limit=limit,
                      sample=sample, strip_diacritics=strip_diacritics)
    ids = corpus_ids()
    if isinstance(path_or_id, str) and "/" not in spec and os.sep not in spec and not Path(spec).suffix:
        raise UnknownNameError(
            f"`corpus` {spec!r} is not a corpus id, an 'hf:<repo>' dataset or an existing file or folder."
            + did_you_mean(spec, ids) + f" Corpus ids: {', '.join(ids)}.")
    raise CorpusFileError(f"`corpus` {spec!r}: no such file or folder (and not a corpus id: {', '.join(ids)}; "
                          "nor 'hf:<repo>').")
