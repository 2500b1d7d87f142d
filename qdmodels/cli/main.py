"""`qd`: the command-line face of qdstats and qdmodels.

Every command is thin: it parses options, calls one library function, writes records to ``--out`` and prints
its results to stdout (logs and progress to stderr). Exit codes: 0 ok, 1 failed run, 2 usage or validation error.
Shared options and mechanisms live in :mod:`qdmodels.cli._common`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from qdmodels.cli import _common as c

app = typer.Typer(
    name="qd",
    help="Measure how compressing a language model hurts some languages more than others, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, attribute, name, help or None for the group's own); a group's module is imported when `qd` starts (modules keep heavy imports lazy)
_GROUPS: tuple[tuple[str, str, str, str | None], ...] = (
    ("qdmodels.cli.data", "app", "data", "Corpora: list, fetch and verify data (manifests in corpora/)."),
    ("qdmodels.cli.models", "app", "models", "Embedded default models: list and fetch."),
    ("qdmodels.cli.tokenize", "app", "tokenize", "Tokenizer metrics (parity/premium, fertility) on parallel text."),
    ("qdmodels.cli.align", "app", "align", None),  # a one-command group: its help (with examples) is the callback's
    ("qdmodels.cli.claims", "app", "claims", "Claims tables: validate specs, build, check staleness."),
    ("qdmodels.cli.probe", "app", "probe",
     "Mechanism probes: representation damage (CKA, cosine) and attention-head ablation."),
    ("qdmodels.cli.calibrate", "app", "calibrate",
     "Calibrated (GPTQ-style) quantization with a calibration set, and per-layer sensitivity proxies."),
)
_COMMAND_MODULES: tuple[str, ...] = (
    "qdmodels.cli.measure", "qdmodels.cli.sweep", "qdmodels.cli.demo", "qdmodels.cli.report", "qdmodels.cli.card",
)


def version() -> str:
    """The installed package version."""
    import qdstats

    return str(qdstats.__version__)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"qd {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_version_callback, is_eager=True, help="Print the qd version and exit.")] = False,
) -> None:
    """Measure how compressing a language model hurts some languages more than others, and why."""
    ctx.call_on_close(c.warnings_as_notes())


def _mount(target: typer.Typer, groups: Sequence[tuple[str, str, str, str | None]] = _GROUPS,
           modules: Sequence[str] = _COMMAND_MODULES) -> None:
    """Mount every command group and command module on ``target``.

    A module that fails to import is an error (the exception propagates): a broken command must never turn into a
    silently missing one.
    """
    for module, attr, name, help_text in groups:
        mod = importlib.import_module(module)
        if help_text is None:
            target.add_typer(getattr(mod, attr), name=name)
        else:
            target.add_typer(getattr(mod, attr), name=name, help=help_text)
    for module in modules:
        importlib.import_module(module).register(target)


_mount(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
