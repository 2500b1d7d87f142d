"""``qd data``: list corpora and fetch them (mounted by the main CLI as ``qd data``).

Exit codes: 0 ok, 1 failed (a file missing, refused or unverified), 2 usage error (unknown corpus, bad option).
Output is a rich table (or JSON with ``--json``) or summary on stdout, errors on stderr; files are written only under
the data directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from qdmodels.cli._common import DataDirOpt, JsonOpt, err
from qdmodels.corpora.fetch import FetchError, fetch_corpus
from qdmodels.corpora.manifest import (
    ManifestError,
    get_manifest,
    list_manifests,
    verify_corpus,
)
from qdstats.validation import UnknownNameError

app = typer.Typer(help="Corpora: list them with their license and status, fetch and verify them.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)


@app.command("list")
def list_cmd(
    data_dir: DataDirOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="Check presence and size only, not sha256.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show every corpus: languages, license, license flags, and whether its files are present and verified.

    Examples:

      qd data list
      qd data list --quick --data-dir ../shared/data
      qd data list --json
    """
    try:
        manifests = list_manifests()
    except (ManifestError, FileNotFoundError) as exc:
        err(f"error: {exc}")
        raise typer.Exit(1) from None
    rows = []
    for cid, m in manifests.items():
        status = verify_corpus(m, data_dir, check_hash=not quick)
        n_ok = sum(s.verified for s in status)
        n_present = sum(s.present for s in status)
        if m.location == "hub" and m.hub is not None:
            st = f"hub: {m.hub.repo_id}@{m.hub.revision[:7]} (read with `datasets`)"
        elif n_ok == len(status):
            st = "present, size ok" if quick else "present, verified"
        elif n_present == 0:
            st = "missing"
        else:
            st = f"partial: {n_present} present, {len(status) - n_ok} not verified"
        rows.append({"corpus": cid, "languages": [le.code for le in m.languages], "license": m.license.spdx,
                     "license_flags": list(m.license_flags), "files": len(m.files), "files_present": n_present,
                     "files_verified": n_ok, "checked": "size" if quick else "sha256", "status": st})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="qd corpora")
    for col in ("corpus", "languages", "license", "flags", "files", "status"):
        table.add_column(col)
    for r in rows:
        flags = ", ".join(r["license_flags"])
        table.add_row(r["corpus"], str(len(r["languages"])), r["license"],
                      f"[bold red]{flags}[/bold red]" if flags else "", str(r["files"]), r["status"])
    Console(width=160).print(table)


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="Corpus id, e.g. ntrex128, ud_hebrew_iahltwiki (see `qd data list`).")],
    source: Annotated[
        Path | None, typer.Option("--from", help="Local mirror with the same layout (e.g. ../shared/data).")
    ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Fetch a corpus into the data directory (from --from DIR, else from the pinned upstream URLs) and verify sha256.

    Examples:

      qd data fetch ntrex128 --from ../shared/data
      qd data fetch ud_hebrew_iahltwiki --data-dir ~/qd-data
    """
    console = Console(width=160)
    try:
        m = get_manifest(name)
    except UnknownNameError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    if source is not None and not source.is_dir():
        err(f"error: `--from` {str(source)!r} is not a directory; expected a local mirror with the data layout "
            "(e.g. ../shared/data).")
        raise typer.Exit(2)
    try:
        report = fetch_corpus(m, source_dir=source, data_dir=data_dir)
    except FetchError as exc:
        err(f"error: {exc}")
        raise typer.Exit(1) from None
    except ValueError as exc:  # escaping manifest path
        err(f"error: {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"{m.corpus_id}: {len(report.fetched)} fetched, {len(report.already_present)} already present, "
        f"{len(report.failed)} failed -> {report.data_dir}"
    )
    if m.license_flags:
        console.print(f"[bold red]license flags:[/bold red] {', '.join(m.license_flags)} ({m.license.spdx})")
    for path, reason in report.failed:
        err(f"failed {path}: {reason}")
    raise typer.Exit(0 if report.ok else 1)
