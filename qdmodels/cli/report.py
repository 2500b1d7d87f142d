"""`qd report RECORDS... --out DIR`: an HTML + Markdown report with plots from saved records.

Imports only :mod:`qdstats` (never torch or transformers). Exit codes: 0 ok; 1 the report could not be
written; 2 usage error (missing or unreadable record file, bad option). Sections without records are
omitted with a note, which is not an error. The report goes to ``--out``; a summary goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import NResamplesOpt, OutDirOpt, ReferenceOpt, SeedOpt

__all__ = ["register", "report_cmd"]


def _read(paths: list[Path]) -> dict[Path, list[Any]]:
    from qdstats.records import read_parquet, read_records

    out: dict[Path, list[Any]] = {}
    for p in paths:
        out[p] = read_parquet(p) if p.suffix.lower() in {".parquet", ".pq"} else read_records(p)
    return out


def _checked(by_file: dict[Path, list[Any]], *, dedupe: bool, corpus: str | None) -> list[Any]:
    """All records, after refusing empty files, duplicated measurements and mixed corpora (ValueError)."""
    from qdstats.records.checks import (
        corpora, corpus_label, drop_duplicates, duplicate_keys, measurement_key, mixed_corpora,
    )

    empty = [str(p) for p, recs in by_file.items() if not recs]
    if empty:
        raise ValueError(f"record file(s) with no records: {', '.join(empty)}.")
    recs = [r for rs in by_file.values() for r in rs]
    dups = duplicate_keys(recs)
    if dups and not dedupe:
        files = sorted({str(p) for p, rs in by_file.items() for r in rs
                        if getattr(r, "item_id", None) is not None and measurement_key(r) in dups})
        shown = "; ".join(f"{k[0]} {k[3]} {k[4]} {dict(k[2])} x{n}" for k, n in list(dups.items())[:3])
        raise ValueError(
            f"{sum(dups.values()) - len(dups)} duplicated measurement(s) in {', '.join(files)} (e.g. {shown}): the same "
            "item measured twice (a file written twice, or runs concatenated). Pass --dedupe to keep the first "
            "measurement of each item, or fix the files."
        )
    if dups:
        recs, n = drop_duplicates(recs)
        c.err(f"note: --dedupe dropped {n} duplicated measurement(s), keeping the first of each.")
    if corpus is not None:
        found = corpora(recs)
        if corpus not in found:
            raise ValueError(f"`--corpus` {corpus!r} is not among the records' corpora {sorted(found)}.")
        recs = [r for r in recs if getattr(r, "corpus", None) is None or corpus_label(r) == corpus]
    mixed = mixed_corpora(recs)
    if mixed:
        (quantity, language), labels = next(iter(mixed.items()))
        raise ValueError(
            f"{quantity} of {language} comes from {len(labels)} corpora or splits "
            f"({', '.join(f'{k}: {v} records' for k, v in sorted(labels.items()))}; {len(mixed)} quantity/language "
            "pair(s) in all): pooling them would mix populations. Report one with --corpus LABEL (one report per corpus)."
        )
    return recs


def report_cmd(
    records: Annotated[list[Path], typer.Argument(help="Record files (JSONL, or Parquet with a .parquet suffix).")],
    out: OutDirOpt,
    claims: Annotated[Path | None, typer.Option("--claims", help="A claims table (claims_table.json or its directory) to include.")] = None,
    title: Annotated[str, typer.Option("--title", help="Report title.")] = "qd report",
    reference: ReferenceOpt = "eng_Latn",
    seed: SeedOpt = 0,
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    confidence_level: Annotated[float, typer.Option("--confidence-level", min=0.5, max=0.999, help="CI coverage.")] = 0.95,
    dedupe: Annotated[bool, typer.Option("--dedupe", help="Keep the first of duplicated measurements instead of refusing.")] = False,
    corpus: c.RecordsCorpusOpt = None,
) -> None:
    """Write an HTML (self-contained) and a Markdown report of saved records, with plots and tables.

    --out is a directory: report.html, report.md and figures/*.png in it are replaced.
    --n-resamples must be at least 99 here. An empty record file, an item measured twice (unless --dedupe) and
    records of several corpora or splits (unless --corpus selects one) are usage errors (exit 2).

    Examples:

      qd report runs/eval.jsonl runs/sweep.jsonl --out reports/smollm2
      qd report runs/eval.jsonl --claims analyses/claims_table --reference eng --title "SmolLM2, INT4" --out reports/x
    """
    from qdstats.records import RecordFormatError
    from qdstats.report import build_report

    missing = [str(p) for p in records if not p.is_file()]
    if missing:
        c.err(f"record file(s) not found: {', '.join(missing)}")
        raise typer.Exit(2)
    if claims is not None and not claims.exists():
        c.err(f"claims table not found: {claims}")
        raise typer.Exit(2)
    if n_resamples < 99:
        c.err(f"error: `--n-resamples` must be at least 99 for a report; got {n_resamples}.")
        raise typer.Exit(2)
    try:
        ref = c.language(reference)
        c.check_out_dir(out)
    except ValueError as exc:
        c.err(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        by_file = _read(records)
    except (RecordFormatError, ValueError, OSError) as exc:
        c.err(f"cannot read records: {exc}")
        raise typer.Exit(2) from None
    try:
        recs = _checked(by_file, dedupe=dedupe, corpus=corpus)
    except ValueError as exc:
        c.err(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        res = build_report(recs, out_dir=out, claims_table=claims, title=title, reference=ref, rng=seed,
                           n_resamples=n_resamples, confidence_level=confidence_level)
    except Exception as exc:  # noqa: BLE001  (exit code 1: the run failed)
        c.err(f"report failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    c.err(f"read {len(recs)} record(s) from {len(records)} file(s)")
    c.err("sections: " + (", ".join(res.sections) or "none"))
    for name, why in res.omitted.items():
        c.err(f"omitted {name}: {why}")
    for p in (res.html, res.markdown):
        if p is not None:
            c.err(f"wrote {p}")


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app`` (the main ``qd`` app calls this)."""
    app.command("report")(report_cmd)
