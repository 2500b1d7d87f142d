"""Helpers shared by the `qd` command modules: error reporting, exit codes, model and item loading.

Exit codes: 0 ok, 1 failed run, 2 usage or validation error (bad values, missing files, a missing optional
dependency).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

CORPORA = ("ntrex128",)


def err(msg: str) -> None:
    """Print ``msg`` to stderr (machine output goes to files, summaries to the terminal)."""
    typer.echo(msg, err=True)


def guard(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; validation errors exit 2 with their message, other failures exit 1."""
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


def load(model: str, revision: str | None) -> Any:
    """An embedded name, GGUF file, directory or HF id (:func:`qdmodels.loading.load_model`), or ``tiny:<family>``."""
    if model.startswith("tiny:"):
        from qdmodels.testing import tiny_model

        return tiny_model(model.split(":", 1)[1])  # type: ignore[arg-type]
    from qdmodels.loading import load_model

    return load_model(model, revision=revision)


SampleOpt = Annotated[str, typer.Option(
    "--sample", help="With --limit: 'first' items of the split, or 'spread' evenly over it (many documents).")]


def ntrex_items(corpus: str, langs: str, split: str, limit: int | None, data_dir: Path | None, *,
                sample: str = "first") -> dict[str, Any]:
    """NTREX-128 items per language from a comma-separated ``langs`` string (``sample``: see ``load_ntrex``)."""
    from qdstats._validation import check_option

    check_option(corpus, "corpus", CORPORA)
    codes = [c.strip() for c in langs.split(",") if c.strip()]
    if not codes:
        raise ValueError(f"`--langs` must name at least one language; got {langs!r}.")
    from qdmodels.corpora.ntrex import load_ntrex

    check_option(sample, "--sample", ("first", "spread"))
    pc = load_ntrex(codes, split=split, limit=limit, sample=sample, data_dir=data_dir)  # type: ignore[arg-type]
    return {k: list(v) for k, v in pc.items.items()}
