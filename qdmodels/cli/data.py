"""``qd data``: list corpora and fetch them (mounted by the main CLI as ``qd data``).

Exit codes: 0 ok, 1 failed (a file missing, refused or unverified), 2 usage error (unknown corpus, bad option).
Output is a rich table or summary on stdout; files are written only under the data directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qdmodels.corpora.fetch import FetchError, fetch_corpus
from qdmodels.corpora.manifest import (
    ManifestError,
    get_manifest,
    list_manifests,
    verify_corpus,
)
from qdstats._validation import UnknownNameError

app = typer.Typer(help="Corpora: list them with their license and status, fetch and verify them.", no_args_is_help=True)

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default: $QD_DATA_DIR, else ~/.cache/qd/data)."),
]


@app.command("list")
def list_cmd(
    data_dir: DataDirOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="Check presence and size only, not sha256.")] = False,
) -> None:
    """Show every corpus: languages, license, license flags, and whether its files are present and verified."""
    console = Console(width=160)
    try:
        manifests = list_manifests()
    except (ManifestError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(title="qd corpora")
    for col in ("corpus", "languages", "license", "flags", "files", "status"):
        table.add_column(col)
    for cid, m in manifests.items():
        status = verify_corpus(m, data_dir, check_hash=not quick)
        n_ok = sum(s.verified for s in status)
        n_present = sum(s.present for s in status)
        if n_ok == len(status):
            st = "present, size ok" if quick else "present, verified"
        elif n_present == 0:
            st = "missing"
        else:
            st = f"partial: {n_present} present, {len(status) - n_ok} not verified"
        flags = ", ".join(m.license_flags)
        table.add_row(cid, str(len(m.languages)), m.license.spdx,
                      f"[bold red]{flags}[/bold red]" if flags else "", str(len(m.files)), st)
    console.print(table)


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="Corpus id, e.g. ntrex128, ud_hebrew_iahltwiki (see `qd data list`).")],
    source: Annotated[
        Path | None, typer.Option("--from", help="Local mirror with the same layout (e.g. ../shared/data).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fetch a corpus into the data directory (from --from DIR, else from the pinned upstream URLs) and verify sha256."""
    console = Console(width=160)
    try:
        m = get_manifest(name)
    except UnknownNameError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        report = fetch_corpus(m, source_dir=source, data_dir=data_dir)
    except FetchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    except ValueError as exc:  # escaping manifest path
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"{m.corpus_id}: {len(report.fetched)} fetched, {len(report.already_present)} already present, "
        f"{len(report.failed)} failed -> {report.data_dir}"
    )
    if m.license_flags:
        console.print(f"[bold red]license flags:[/bold red] {', '.join(m.license_flags)} ({m.license.spdx})")
    for path, reason in report.failed:
        console.print(f"[red]failed[/red] {path}: {reason}")
    raise typer.Exit(0 if report.ok else 1)
