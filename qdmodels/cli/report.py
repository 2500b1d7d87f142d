"""`qd report RECORDS... --out DIR`: an HTML + Markdown report with plots from saved records.

Imports only :mod:`qdstats` (never torch or transformers). Exit codes: 0 ok; 1 the report could not be
written; 2 usage error (missing or unreadable record file, bad option). Sections without records are
omitted with a note, which is not an error. The report goes to ``--out``; a summary goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "report_cmd"]


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _read(paths: list[Path]) -> list[Any]:
    from qdstats.records import read_parquet, read_records

    out: list[Any] = []
    for p in paths:
        if p.suffix.lower() in {".parquet", ".pq"}:
            out.extend(read_parquet(p))
        else:
            out.extend(read_records(p))
    return out


def report_cmd(
    records: Annotated[list[Path], typer.Argument(help="Record files (JSONL, or Parquet with a .parquet suffix).")],
    out: Annotated[Path, typer.Option("--out", help="Output directory: report.html, report.md, figures/*.png.")],
    claims: Annotated[Path | None, typer.Option("--claims", help="A claims table (claims_table.json or its directory) to include.")] = None,
    title: Annotated[str, typer.Option("--title", help="Report title.")] = "qd report",
    reference: Annotated[str, typer.Option("--reference", help="Reference language, e.g. eng_Latn.")] = "eng_Latn",
    seed: Annotated[int, typer.Option("--seed", help="Seed for bootstrap and permutation resampling.")] = 0,
    n_resamples: Annotated[int, typer.Option("--n-resamples", min=99, help="Bootstrap / permutation resamples.")] = 1999,
    confidence_level: Annotated[float, typer.Option("--confidence-level", min=0.5, max=0.999, help="CI coverage.")] = 0.95,
) -> None:
    """Write an HTML (self-contained) and a Markdown report of saved records, with plots and tables."""
    from qdstats.records import RecordFormatError
    from qdstats.report import build_report

    missing = [str(p) for p in records if not p.is_file()]
    if missing:
        _err(f"record file(s) not found: {', '.join(missing)}")
        raise typer.Exit(2)
    if claims is not None and not claims.exists():
        _err(f"claims table not found: {claims}")
        raise typer.Exit(2)
    try:
        recs = _read(records)
    except (RecordFormatError, ValueError, OSError) as exc:
        _err(f"cannot read records: {exc}")
        raise typer.Exit(2) from None
    try:
        res = build_report(recs, out_dir=out, claims_table=claims, title=title, reference=reference, rng=seed,
                           n_resamples=n_resamples, confidence_level=confidence_level)
    except Exception as exc:  # noqa: BLE001  (exit code 1: the run failed)
        _err(f"report failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
    _err(f"read {len(recs)} record(s) from {len(records)} file(s)")
    _err("sections: " + (", ".join(res.sections) or "none"))
    for name, why in res.omitted.items():
        _err(f"omitted {name}: {why}")
    for p in (res.html, res.markdown):
        if p is not None:
            _err(f"wrote {p}")


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app`` (the main ``qd`` app calls this)."""
    app.command("report", help="HTML + Markdown report with plots from saved records.")(report_cmd)
