"""What the `qd` command modules share: output streams, error handling, model and item loading, record files,
and every option that more than one command takes.

One copy of each mechanism lives here; the command modules import it (``from qdmodels.cli import _common as c``)
and never re-declare an option. Conventions:

* Exit codes: 0 ok, 1 failed run, 2 usage or validation error (bad values, missing files, an existing ``--out``
  file, a missing optional dependency). :func:`guard` maps exceptions to them.
* Results (tables, summaries) go to stdout (:func:`echo`); logs and progress go to stderr (:func:`err`).
* A records file given with ``--out`` is checked before any compute (:func:`check_out`): an existing file is
  refused unless ``--append`` or ``--overwrite`` is given, a directory or an unwritable location is refused.
  Records are collected in memory and written atomically (:func:`write_out`), so a killed run leaves the old
  file or none, never a partial one.
* Languages are normalized codes (``eng`` and ``eng_Latn`` are the same language): :func:`language`,
  :func:`languages`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

__all__ = [
    "CORPORA", "N_RESAMPLES", "check_out", "check_out_dir", "check_resume_out", "corpus_languages", "corpus_split",
    "echo", "err", "floats", "guard", "ints", "language", "language_keys", "languages", "load", "load_corpus",
    "load_items", "note_once", "schemes", "split_list", "stage_logger", "write_out",
]

#: corpus ids read from the data directory by name (any other --corpus is an id, a path or hf:<repo> that
#: :func:`qdmodels.corpora.load_corpus` reads)
CORPORA = ("ntrex128",)
#: the one default number of bootstrap / permutation resamples of every command
N_RESAMPLES = 2000

# ---------------------------------------------------------------------------------------------------------------
# output streams and errors
# ---------------------------------------------------------------------------------------------------------------


def echo(msg: str) -> None:
    """Print a result line (a table row, a summary) to stdout."""
    typer.echo(msg)


def err(msg: str) -> None:
    """Print a log, progress or error line to stderr."""
    typer.echo(msg, err=True)


def stage_logger(progress: bool) -> Callable[[str], None]:
    """A logger of coarse progress ("loading model ...") to stderr; silent with ``--no-progress``."""
    return err if progress else (lambda msg: None)


def warnings_as_notes() -> Callable[[], None]:
    """Show Python warnings as ``note: <message>`` on stderr, each text once, without source paths; return the undo.

    Library warnings (``SmallSampleWarning`` and friends) also travel in the records and result tables; on the
    terminal a researcher needs each one once, not ``qdstats/disparity.py:526: SmallSampleWarning: ...`` per row.
    """
    import warnings

    seen: set[str] = set()
    previous = warnings.showwarning

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        text = str(message)
        if text not in seen:
            seen.add(text)
            err(f"note: {text}")

    warnings.showwarning = show

    def restore() -> None:
        warnings.showwarning = previous

    return restore


def record_notes(records: Iterable[Any]) -> None:
    """Print every distinct warning carried by ``records`` once, as ``note: ...`` on stderr (the table footer)."""
    seen: dict[str, None] = {}
    for r in records:
        for w in getattr(r, "warnings", ()) or ():
            seen.setdefault(str(w), None)
    for text in seen:
        err(f"note: {text}")


_NOTES_SHOWN: set[str] = set()


def note_once(notes: Iterable[str]) -> None:
    """Print each note as ``note: ...`` on stderr, once per command run (a corpus loaded twice says it once)."""
    for text in notes:
        if text not in _NOTES_SHOWN:
            _NOTES_SHOWN.add(text)
            err(f"note: {text}")


def guard(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; validation errors exit 2 with their message, other failures exit 1."""
    _NOTES_SHOWN.clear()
    try:
        return fn()
    except typer.Exit:
        raise
    except (ValueError, TypeError, KeyError, FileNotFoundError, ImportError) as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 - any other error is a failed run (exit 1)
        err(f"failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


# ---------------------------------------------------------------------------------------------------------------
# parsing comma-separated values and languages
# ---------------------------------------------------------------------------------------------------------------


def split_list(text: str | None, name: str) -> list[str]:
    """Non-empty, stripped entries of a comma-separated option value (``name`` only for the error message)."""
    out = [s.strip() for s in (text or "").split(",") if s.strip()]
    if not out:
        raise ValueError(f"`{name}` must list at least one value separated by commas; got {text!r}.")
    return out


def ints(text: str | None, name: str) -> list[int] | None:
    """Comma-separated integers, or None for an empty value."""
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"`{name}` must be comma-separated integers; got {text!r}.") from None


def floats(text: str, name: str) -> list[float]:
    """Comma-separated numbers."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"`{name}` must be comma-separated numbers; got {text!r}.") from None


def schemes(values: Sequence[str] | None) -> list[str]:
    """Quantization scheme keys from a repeatable, comma-separated ``--quant`` (order kept, duplicates dropped)."""
    out: list[str] = []
    for v in values or ():
        for s in v.split(","):
            if s.strip() and s.strip() not in out:
                out.append(s.strip())
    return out


def language(code: str) -> str:
    """The normalized ``<ISO 639-3>_<Script>`` code of ``code`` (``eng`` -> ``eng_Latn``; ``he`` -> ``heb_Hebr``).

    NTREX-128 codes first, then UD and dataset_build codes; an unknown code raises (exit 2) with the NTREX list.
    """
    from qdmodels.corpora import normalize_language
    from qdstats.validation import UnknownNameError

    code = code.strip()
    first: Exception | None = None
    for scheme in ("ntrex128", "ud", "dataset_build"):
        try:
            return normalize_language(code, scheme=scheme)
        except UnknownNameError as exc:
            first = first or exc
    assert first is not None
    raise first


def languages(text: str, name: str = "--langs") -> list[str]:
    """Normalized codes of a comma-separated list, duplicates (``eng,eng_Latn``) dropped, order kept."""
    out: list[str] = []
    for c in split_list(text, name):
        n = language(c)
        if n not in out:
            out.append(n)
    return out


def language_keys(codes: Sequence[str], reference: str) -> tuple[list[str], str]:
    """Keep the given codes as labels, one per language, with the reference language among them.

    Returns ``(keys, reference_key)``: the codes with later duplicates of a language dropped (``eng`` and
    ``eng_Latn`` are one language), and the key that names the reference language (``reference`` itself,
    put first, when no code names it).
    """
    seen: dict[str, str] = {}
    keys: list[str] = []
    for c in codes:
        n = language(c)
        if n not in seen:
            seen[n] = c
            keys.append(c)
    ref = seen.get(language(reference))
    if ref is None:
        keys.insert(0, reference)
        ref = reference
    return keys, ref


# ---------------------------------------------------------------------------------------------------------------
# models and items
# ---------------------------------------------------------------------------------------------------------------


def load(model: str, revision: str | None = None, *, device: str = "auto", dtype: str = "float32") -> Any:
    """An embedded name, GGUF file, directory or HF id (:func:`qdmodels.models.loading.load_model`), or ``tiny:<family>``,
    on ``device`` in ``dtype`` (both recorded in every record's ``model``)."""
    if model.startswith("tiny:"):
        from qdmodels.models.tiny import tiny_model

        if dtype != "float32":
            raise ValueError(f"`--dtype` {dtype!r}: tiny test models are float32 only.")
        return tiny_model(model.split(":", 1)[1], device=device)  # type: ignore[arg-type]
    from qdmodels.models.loading import load_model

    return load_model(model, revision=revision, device=device, dtype=dtype)  # type: ignore[arg-type]


def corpus_split(corpus: str, split: str | None, default: str) -> str | None:
    """The split to load: ``--split`` when given; else the command's NTREX default for ``ntrex128``, and None
    (every row; a hub corpus then asks for one) for any other corpus."""
    if split is not None:
        return split
    return default if corpus in CORPORA else None


def corpus_languages(text: str, name: str = "--langs") -> list[str] | None:
    """Normalized codes of a comma-separated list for :func:`load_corpus` (``all``: None, every language of the
    corpus). Any well-formed ``xxx_Yyyy`` code is accepted, so a file may hold languages NTREX-128 lacks."""
    if text.strip() == "all":
        return None
    from qdmodels.corpora import resolve_language

    return list(dict.fromkeys(resolve_language(c) for c in split_list(text, name)))


def load_corpus(corpus: str, codes: Sequence[str] | None, split: str | None, limit: int | None,
                data_dir: Path | None, *, sample: str = "first") -> Any:
    """A corpus other than NTREX-128 by id, path or ``hf:<repo>`` (:func:`qdmodels.corpora.load_corpus`); its notes
    (e.g. "no document_id: CIs cluster by item") are printed once."""
    from qdmodels.corpora import load_corpus as _load_corpus

    pc = _load_corpus(corpus, languages=codes, split=split, limit=limit, sample=sample,  # type: ignore[arg-type]
                      data_dir=data_dir)
    note_once(pc.notes)
    return pc


def load_items(corpus: str, langs: str, split: str | None, limit: int | None, data_dir: Path | None, *,
               sample: str = "first") -> dict[str, Any]:
    """Items per normalized language from a comma-separated ``langs`` string (``sample``: see ``load_ntrex``).

    ``corpus``: ``ntrex128`` (the data directory), another corpus id (``flores_plus``, ``dataset_build``), a file
    (TSV, CSV, JSONL, Parquet), a folder of ``<lang>.txt`` files, or ``hf:<repo>[:<split>]``
    (:func:`qdmodels.corpora.load_corpus`); ``--langs all`` takes every language of such a corpus. The one item
    loader of the commands (tests replace it with ``monkeypatch.setattr(_common, "load_items", ...)``).
    """
    from qdstats.validation import check_option

    check_option(sample, "--sample", ("first", "spread"))
    if corpus in CORPORA:
        codes = languages(langs)
        from qdmodels.corpora.ntrex import load_ntrex

        kw = {} if split is None else {"split": split}
        pc = load_ntrex(codes, limit=limit, sample=sample, data_dir=data_dir, **kw)  # type: ignore[arg-type]
    else:
        pc = load_corpus(corpus, corpus_languages(langs), split, limit, data_dir, sample=sample)
    return {k: list(v) for k, v in pc.items.items()}


# ---------------------------------------------------------------------------------------------------------------
# output files
# ---------------------------------------------------------------------------------------------------------------

WriteMode = Literal["w", "a"]


def _writable_parent(path: Path) -> None:
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"`--out` {path}: cannot create its directory {parent} ({exc.strerror or exc}).") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"`--out` {path}: the directory {parent} is not writable.")


def check_out(path: Path, *, append: bool = False, overwrite: bool = False) -> WriteMode:
    """Validate a records ``--out`` file before any compute; return the write mode (``'a'`` or ``'w'``).

    Refuses (exit 2) a directory, an unwritable location, ``--append`` with ``--overwrite``, and an existing
    file unless ``--append`` or ``--overwrite`` is given. Missing parent directories are created.
    """
    if append and overwrite:
        raise ValueError("`--append` and `--overwrite` exclude each other; give at most one.")
    if path.is_dir():
        raise ValueError(f"`--out` {path} is a directory; give a records file (JSONL) path.")
    if path.exists() and not (append or overwrite):
        raise ValueError(f"`--out` {path} already exists; pass --append to add the new records to it or "
                         f"--overwrite to replace it.")
    _writable_parent(path)
    return "a" if append else "w"


def check_resume_out(path: Path) -> Path:
    """Validate a resumable records ``--out`` file (its existing records are the resume state): not a directory,
    writable location."""
    if path.is_dir():
        raise ValueError(f"`--out` {path} is a directory; give a records file (JSONL) path.")
    _writable_parent(path)
    return path


def check_out_dir(path: Path) -> Path:
    """Validate an output directory before any compute: not an existing file, creatable and writable."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"`--out` {path} is a file; give a directory.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"`--out` {path}: cannot create the directory ({exc.strerror or exc}).") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"`--out` {path}: the directory is not writable.")
    return path


def write_out(path: Path, records: Iterable[Any], mode: WriteMode = "w") -> int:
    """Write all ``records`` to ``path`` atomically (``'a'``: after the old content); return how many.

    The whole new file is written next to ``path`` and renamed onto it (:func:`qdstats.records.atomic_write_text`),
    so an interrupted run leaves the old file (or none), never a partial one.
    """
    from qdstats.records import FailedMeasurement, Measurement, atomic_write_text

    lines: list[bytes] = []
    for r in records:
        if not isinstance(r, (Measurement, FailedMeasurement)):
            raise TypeError(f"records must be Measurement or FailedMeasurement; got {type(r).__name__}.")
        lines.append((r.model_dump_json() + "\n").encode("utf-8"))
    old = b""
    if mode == "a" and path.exists():
        old = path.read_bytes()
        if old and not old.endswith(b"\n"):
            old += b"\n"
    atomic_write_text(path, old + b"".join(lines))
    return len(lines)


# ---------------------------------------------------------------------------------------------------------------
# options (each declared once; a command gives the default as its parameter default)
# ---------------------------------------------------------------------------------------------------------------

ModelOpt = Annotated[str, typer.Option(
    "--model", "-m", help="Embedded name (smollm2-135m), .gguf file, directory, HF id, or tiny:<family>.")]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision of the model (HF ids only).")]
CompareOpt = Annotated[list[str] | None, typer.Option(
    "--compare", help="Another model to score on the same items and pair with --model by item (e.g. a released "
    "quantized checkpoint of it); repeat for several.")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps; recorded in the records.")]
DTypeOpt = Annotated[str, typer.Option(
    "--dtype", help="Weights dtype: float32 (the reference for deltas), bfloat16 or float16 (for GPUs).")]
CorpusOpt = Annotated[str, typer.Option(
    "--corpus", help="ntrex128 (NTREX-128 from the data directory), flores_plus, dataset_build, your own file "
                     "(.tsv/.csv/.jsonl/.parquet: long `language,text[,item_id,document_id,split]` or wide, one column "
                     "per language), a folder of <lang>.txt files, or hf:<repo>[:<split>] (see docs/corpora.md).")]
#: ``--corpus/--device/--dtype`` that override a sweep spec's own (``qd sweep plan|run|status``); None keeps the spec's
SpecCorpusOpt = Annotated[str | None, typer.Option(
    "--corpus", help="Override the spec's corpus: ntrex128 or your own file/folder (see qd eval --corpus); its sha256 "
                     "goes into every job and record.")]
SpecDeviceOpt = Annotated[str | None, typer.Option(
    "--device", help="Override the spec's device: cpu, auto, cuda, cuda:N or mps (a resumed sweep refuses a change).")]
SpecDTypeOpt = Annotated[str | None, typer.Option(
    "--dtype", help="Override the spec's compute dtype: float32, or bfloat16 (screening; only for validated model and "
                    "scheme pairs, see analyses/bf16_screening/).")]
#: ``--corpus`` where records are read (``qd report``): which of the records' corpora (``corpus_id:split``) to use.
RecordsCorpusOpt = Annotated[str | None, typer.Option(
    "--corpus", help="With records of several corpora or splits: the one to use, as 'corpus_id:split' (e.g. ntrex128:test).")]
LangsOpt = Annotated[str, typer.Option(
    "--langs", help="Comma-separated languages: NTREX codes (eng, heb, zho-CN), ISO 639-1 (he) or normalized codes "
                    "(eng_Latn); with a corpus other than ntrex128, `all` takes every language in it.")]
ReferenceOpt = Annotated[str, typer.Option(
    "--reference", help="Reference language of the comparisons (eng or eng_Latn: normalized).")]
_SPLIT_HELP = ("ntrex128: document-level split dev, test or all. A corpus file: the rows whose `split` column has this "
               "value (default: every row). flores_plus and hf: datasets: the dataset's split (dev, devtest).")
SplitOpt = Annotated[str, typer.Option("--split", help="NTREX document-level split: dev, test or all.")]
#: --split of the commands that take --corpus; None: the command's NTREX default (:func:`corpus_split`)
DevSplitOpt = Annotated[str | None, typer.Option("--split", help=_SPLIT_HELP, show_default="dev for ntrex128")]
TestSplitOpt = Annotated[str | None, typer.Option("--split", help=_SPLIT_HELP, show_default="test for ntrex128")]
AllSplitOpt = Annotated[str | None, typer.Option("--split", help=_SPLIT_HELP, show_default="all for ntrex128")]
GoldSplitOpt = Annotated[str | None, typer.Option(
    "--split", help="Treebank split (dev/test, default test); word lists: MC2010 train/dev/combined (default "
                    "combined), SIGMORPHON dev/test (default dev).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", min=1, help="N items per language (see --sample).")]
SampleOpt = Annotated[str, typer.Option(
    "--sample", help="With --limit: 'first' items of the split, or 'spread' evenly over it (many documents).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Items per forward pass.")]
MaxBatchTokensOpt = Annotated[int, typer.Option(
    "--max-batch-tokens", min=0, help="Also cap each batch at this many padded positions (0: fixed-size batches).")]
NResamplesOpt = Annotated[int, typer.Option(
    "--n-resamples", min=0, help="Bootstrap / permutation resamples per interval (0: no interval).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, help="Random seed (bootstrap, permutations, sampling).")]
DataDirOpt = Annotated[Path | None, typer.Option(
    "--data-dir", help="Data directory (default $QD_DATA_DIR, else ~/.cache/qd/data).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress on stderr.")]
QuantOpt = Annotated[str | None, typer.Option("--quant", help="Quantization scheme key, e.g. int4-g64-sym.")]
QuantsOpt = Annotated[list[str] | None, typer.Option(
    "--quant", help="Quantization scheme keys, comma-separated (or repeat the option), e.g. int4-g64-sym,int3-g64-sym.")]
LayersOpt = Annotated[str | None, typer.Option("--layers", help="Comma-separated block indices (default all).")]
GranularityOpt = Annotated[str, typer.Option("--granularity", help="Site groups: layer or component.")]
TokenizerOpt = Annotated[str, typer.Option(
    "--tokenizer", "-t", help="Short name (gpt2, llama2, llama3, qwen3, gemma3), tokenizer.json, encoder.json or a directory.")]
TokenizerNameOpt = Annotated[str | None, typer.Option(
    "--name", help="Tokenizer name in the records (default: short or directory name).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]

# --out: a records file (refused when it exists, unless --append / --overwrite), a resumable records file, or a
# directory
OutOpt = Annotated[Path, typer.Option(
    "--out", help="Records file (JSONL). An existing file is refused unless --append or --overwrite is given.")]
AppendOpt = Annotated[bool, typer.Option("--append", help="Add the records to an existing --out file.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")]
ResumeOutOpt = Annotated[Path, typer.Option(
    "--out", help="Records file (JSONL), written as units finish; rerun with the same file to resume.")]
OutDirOpt = Annotated[Path, typer.Option("--out", help="Output directory (created; files in it are replaced).")]
SweepOutOpt = Annotated[Path | None, typer.Option(
    "--out", help="Sweep output directory (default runs/<spec name>).")]

# sweeps and claims
SpecArg = Annotated[Path, typer.Argument(help="Sweep spec (YAML).")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Worker processes (pool) or actors (ray).")]
ClaimSpecsArg = Annotated[list[Path], typer.Argument(
    help="Claim spec files or directories (directories: *.yaml, skipping _*.yaml).")]
