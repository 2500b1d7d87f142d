"""Every ``provenance.routine`` in the committed records still names code that exists (after any moves)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pandas as pd
import pytest

from qdstats.records.provenance import current_routine

ROOT = Path(__file__).resolve().parents[2]


def _committed_routines() -> set[str]:
    found: set[str] = set()
    for path in sorted((ROOT / "analyses").rglob("*")):
        if path.suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    if '"routine"' in line:
                        found.add(json.loads(line).get("provenance", {}).get("routine"))
        elif path.suffix == ".parquet":
            df = pd.read_parquet(path, columns=["provenance.routine"])
            found.update(df["provenance.routine"].dropna().unique().tolist())
    return found - {None, "unknown"}


def _resolve(dotted: str) -> object:
    """The module, or the attribute of the longest importable module prefix."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_committed_routines_resolve_to_current_code():
    routines = _committed_routines()
    assert "qdmodels.evaluation.evaluate" in routines  # the records are really read
    for r in sorted(routines):
        obj = _resolve(current_routine(r))
        assert callable(obj) or hasattr(obj, "__file__"), r


def test_an_unknown_old_path_is_not_resolved():
    with pytest.raises((ModuleNotFoundError, AttributeError)):
        _resolve(current_routine("qdmodels.evaluation.no_such_function"))
    with pytest.raises(ModuleNotFoundError):
        _resolve("qdmodels_old.evaluation.evaluate")


def test_routine_constants_name_their_own_code():
    """``ROUTINE`` constants that new records carry resolve to a function or module that exists."""
    import ast

    names = []
    for path in sorted((ROOT / "qdmodels").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.keyword) and node.arg == "routine" and isinstance(node.value, ast.Constant):
                names.append(node.value.value)
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                    and any(isinstance(t, ast.Name) and t.id.lstrip("_").startswith("ROUTINE") for t in node.targets)):
                names.append(node.value.value)
    assert len(names) >= 10
    for name in names:
        assert current_routine(name) == name, f"{name} uses an old module path"
        _resolve(name)
