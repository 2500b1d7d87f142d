"""`qd claims validate|build|check|tests`: claims tables from claim specs and saved records.

Imports only :mod:`qdstats` (never torch or transformers). Exit codes: 0 ok; 1 failed run (a claim errored
during ``build``) or stale table (``check``); 2 usage or validation error (bad spec, missing file).
Machine output goes to ``--out``; results (verdicts, staleness) go to stdout, errors and logs to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
    doc: Annotated[list[Path] | None, typer.Option(
        "--doc", help="A document whose claims-summary block must equal the table's summary (repeatable).")] = None,
) -> None:
    """Fail (exit 1) when a stored claims table is stale relative to its specs and records, or a document's
    generated claims summary (README, docs/claims.md) disagrees with it.

    Examples:

      qd claims check analyses/claims_table
      qd claims check analyses/claims_table --doc README.md --doc docs/claims.md
      qd claims check analyses/claims_table/claims_table.json --rebuild
    """
    from qdstats.claims.engine import check_table
    from qdstats.claims.render import check_summary

    try:
        report = check_table(table, rebuild=rebuild)
        loaded = _load_table(table) if doc else None
    except FileNotFoundError as exc:
        err(str(exc))
        raise typer.Exit(2) from None
    except ValueError as exc:  # not a claims table (pydantic ValidationError is a ValueError)
        err(f"not a valid claims table: {str(exc).splitlines()[0]}")
        raise typer.Exit(2) from None
    problems = list(report.problems) + [q for d in (doc or []) for q in check_summary(d, loaded)]
    if not problems:
        echo("claims table is up to date." + (f" {len(doc or [])} document(s) agree with it." if doc else ""))
        return
    for prob in problems:
        echo(f"stale: {prob}")
    raise typer.Exit(1)


def _load_table(path: Path) -> Any:
    from qdstats.claims.engine import ClaimsTable

    p = path / "claims_table.json" if path.is_dir() else path
    if not p.exists():
        raise FileNotFoundError(f"claims table not found: {p}")
    return ClaimsTable.model_validate_json(p.read_text(encoding="utf-8"))


@app.command("summary")
def summary_cmd(
    table: Annotated[Path, typer.Argument(help="A claims-table directory or its claims_table.json.")],
    sync: Annotated[list[Path] | None, typer.Option(
        "--sync", help="Rewrite this document's claims-summary block from the table (repeatable).")] = None,
) -> None:
    """Print the one-line-per-family summary of a claims table, or write it into documents.

    Examples:

      qd claims summary analyses/claims_table
      qd claims summary analyses/claims_table --sync README.md --sync docs/claims.md
    """
    from qdstats.claims.render import summary_markdown, sync_summary

    try:
        t = _load_table(table)
    except FileNotFoundError as exc:
        err(str(exc))
        raise typer.Exit(2) from None
    if not sync:
        echo(summary_markdown(t).rstrip())
        return
    for d in sync:
        try:
            text = d.read_text(encoding="utf-8")
            new = sync_summary(text, t)
        except (OSError, ValueError) as exc:
            err(f"`--sync` {d}: {exc}")
            raise typer.Exit(2) from None
        if new != text:
            from qdstats.records import atomic_write_text

            atomic_write_text(d, new)
        err(f"{d}: claims summary {'updated' if new != text else 'already current'}")


@app.command("tests")
def tests_cmd() -> None:
    """List the registered claim tests.

    Examples:

      qd claims tests
    """
    from qdstats.claims.registry import list_tests

    for name, desc in list_tests().items():
        echo(f"{name}\t{desc}")
