"""`qd`: the command-line face of qdstats and qdmodels.

Every command is thin: it parses options, calls one library function, writes records to ``--out`` and prints a
summary to the terminal. Exit codes: 0 ok, 1 failed run, 2 usage or validation error.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="qd",
    help="Measure how compressing a language model hurts some languages more than others, and why.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module, attribute, name, help); a group's module is imported when `qd` starts (modules keep heavy imports lazy)
_GROUPS: tuple[tuple[str, str, str, str], ...] = (
    ("qdmodels.cli.data", "app", "data", "Corpora: list, fetch and verify data (manifests in corpora/)."),
    ("qdmodels.cli.models", "app", "models", "Embedded default models: list and fetch."),
    ("qdmodels.cli.tokenize", "app", "tokenize", "Tokenizer metrics (parity/premium, fertility) on parallel text."),
    ("qdmodels.cli.align", "app", "align", "Morpheme-boundary alignment of a tokenizer against gold segmentations."),
    ("qdmodels.cli.claims", "app", "claims", "Claims tables: validate specs, build, check staleness."),
    ("qdmodels.cli.probe", "app", "probe",
     "Mechanism probes: representation damage (CKA, cosine), head/MLP ablation, sensitivity proxies."),
    ("qdmodels.cli.calibrate", "app", "calibrate", "Calibrated (GPTQ-style) quantization with a calibration set."),
)
_COMMAND_MODULES: tuple[str, ...] = (
    "qdmodels.cli.measure", "qdmodels.cli.sweep", "qdmodels.cli.demo", "qdmodels.cli.report",
)


def _mount() -> None:
    for module, attr, name, help_text in _GROUPS:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue  # group not built yet
            raise
        app.add_typer(getattr(mod, attr), name=name, help=help_text)
    for module in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                continue
            raise
        register = getattr(mod, "register", None)
        if register is not None:
            register(app)


_mount()


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
