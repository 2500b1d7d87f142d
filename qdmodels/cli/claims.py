"""`qd claims validate|build|check|tests`: claims tables from claim specs and saved records.

Imports only :mod:`qdstats` (never torch or transformers). Exit codes: 0 ok; 1 failed run (a claim errored
during ``build``) or stale table (``check``); 2 usage or validation error (bad spec, missing file).
Machine output goes to ``--out``; results (verdicts, staleness) go to stdout, errors and logs to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qdmodels.cli._common import ClaimSpecsArg, OutDirOpt, check_out_dir, echo, err

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Claims tables: validate specs, build a table from records, check staleness.")


@app.command("validate")
def validate_cmd(
    specs: ClaimSpecsArg,
) -> None:
    """Check claim specs without running anything (schema, registered test, params, roles, families).

    Examples:

      qd claims validate analyses/claims/
      qd claims validate analyses/claims/H2.yaml
    """
    from qdstats.claims.spec import SpecError, load_specs

    try:
        loaded = load_specs(specs)
    except SpecError as exc:
        err(f"invalid spec: {exc}")
        raise typer.Exit(2) from None
    for s in loaded:
        echo(f"ok  {s.id} (v{s.version}, family {s.family}, test {s.test}, evidence {s.evidence})")
    echo(f"{len(loaded)} claim(s) valid.")


@app.command("build")
def build_cmd(
    specs: ClaimSpecsArg,
    records: Annotated[list[Path], typer.Option("--records", "-r", help="Record files (JSONL or Parquet); repeat the option.")],
    out: OutDirOpt,
    digits: Annotated[int, typer.Option("--digits", min=1, max=12, help="Significant digits in Markdown/LaTeX.")] = 3,
) -> None:
    """Build the claims table; one failing claim never aborts it (its row says 'error'; exit code 1).

    --out is a directory: claims_table.json, .csv, .md and .tex in it are replaced.

    Examples:

      qd claims build analyses/claims/ --records analyses/records/eval.jsonl --out analyses/claims_table
      qd claims build analyses/claims/H1.yaml -r a.parquet -r b.jsonl --out table --digits 4
    """
    from qdstats.claims.engine import build_from_files
    from qdstats.claims.render import write_table
    from qdstats.claims.spec import SpecError
    from qdstats.records import RecordFormatError

    try:
        check_out_dir(out)
    except ValueError as exc:
        err(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        table = build_from_files(specs, records, table_dir=out)
    except SpecError as exc:
        err(f"invalid spec: {exc}")
        raise typer.Exit(2) from None
    except (FileNotFoundError, RecordFormatError) as exc:
        err(f"cannot read input: {exc}")
        raise typer.Exit(2) from None
    import shlex

    cmd = " ".join(["qd claims build", *(shlex.quote(str(p)) for p in specs),
                    *(f"--records {shlex.quote(str(r))}" for r in records), f"--out {shlex.quote(str(out))}"]
                   + ([f"--digits {digits}"] if digits != 3 else []))
    paths = write_table(table, out, digits=digits, commands=[cmd])
    counts: dict[str, int] = {}
    for r in table.rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
        echo(f"{r.verdict:>17}  {r.grade:>9}  {r.claim_id}" + (f"  ({r.message})" if r.message else ""))
    err(f"{len(table.rows)} claim(s): " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
         + f"; wrote {', '.join(str(p) for p in paths.values())}")
    if counts.get("error"):
        raise typer.Exit(1)


@app.command("check")
def check_cmd(
    table: Annotated[Path, typer.Argument(help="A claims-table directory or its claims_table.json.")],
    rebuild: Annotated[bool, typer.Option("--rebuild/--no-rebuild", help="Also rebuild and compare every number.")] = False,
) -> None:
    """Fail (exit 1) when a stored claims table is stale relative to its specs and records.

    Examples:

      qd claims check analyses/claims_table
      qd claims check analyses/claims_table/claims_table.json --rebuild
    """
    from qdstats.claims.engine import check_table

    try:
        report = check_table(table, rebuild=rebuild)
    except FileNotFoundError as exc:
        err(str(exc))
        raise typer.Exit(2) from None
    except ValueError as exc:  # not a claims table (pydantic ValidationError is a ValueError)
        err(f"not a valid claims table: {str(exc).splitlines()[0]}")
        raise typer.Exit(2) from None
    if report.fresh:
        echo("claims table is up to date.")
        return
    for prob in report.problems:
        echo(f"stale: {prob}")
    raise typer.Exit(1)


@app.command("tests")
def tests_cmd() -> None:
    """List the registered claim tests.

    Examples:

      qd claims tests
    """
    from qdstats.claims.registry import list_tests

    for name, desc in list_tests().items():
        echo(f"{name}\t{desc}")
