"""The dependency rule of the code base (docs/architecture.md), enforced on the source.

Layers, lowest first: qdstats (never imports torch, transformers or qdmodels) < qdmodels.corpora <
qdmodels.runtime, qdmodels.tokenization < qdmodels.models < qdmodels.compress < qdmodels.eval < qdmodels.probes <
qdmodels.jobs, qdmodels.workflows < qdmodels.cli. A module may import its own layer and the layers below it, never
one above (lazy imports inside functions included). Across packages only public names are imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: rank of each qdmodels subpackage (or top-level module); imports may only go to an equal or lower rank
QDMODELS_RANK = {
    "corpora": 0, "runtime": 1, "tokenization": 1, "models": 2, "compress": 3, "eval": 4, "probes": 5,
    "jobs": 6, "workflows": 6, "cli": 7,
}
#: what qdstats must never import (it runs where torch is not installed)
QDSTATS_FORBIDDEN = ("torch", "transformers", "tokenizers", "safetensors", "gguf", "accelerate", "qdmodels")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) of every import statement in ``path``, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name, []) for a in node.names)
    return out


def _unit(package: str, path: Path, root: Path = ROOT) -> str:
    """The subpackage or top-level module of ``path`` inside ``package`` (``'runtime'``, ``'eval'``...)."""
    rel = path.relative_to(root / package).with_suffix("")
    return rel.parts[0]


def _sources(package: str, root: Path = ROOT) -> list[Path]:
    return sorted((root / package).rglob("*.py"))


def upward_imports(root: Path = ROOT) -> list[str]:
    """Every import in ``root/qdmodels`` of a subpackage with a higher rank than the importing one."""
    upward = []
    for path in _sources("qdmodels", root):
        src = _unit("qdmodels", path, root)
        if src == "__init__":
            continue
        for line, module, _ in _imports(path):
            parts = module.split(".")
            if parts[0] != "qdmodels" or len(parts) < 2 or parts[1] == src:
                continue
            if QDMODELS_RANK[parts[1]] > QDMODELS_RANK[src]:
                upward.append(f"{path.relative_to(root)}:{line} ({src}) imports {module}")
    return upward


def test_every_qdmodels_unit_has_a_rank():
    units = {_unit("qdmodels", p) for p in _sources("qdmodels")} - {"__init__"}
    assert units == set(QDMODELS_RANK), "a new qdmodels subpackage needs a layer in QDMODELS_RANK and docs/architecture.md"


def test_qdmodels_imports_go_down_the_layers_only():
    upward = upward_imports()
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_qdstats_never_imports_torch_or_qdmodels():
    bad = [f"{p.relative_to(ROOT)}:{line} imports {m}" for p in _sources("qdstats") for line, m, _ in _imports(p)
           if m.split(".")[0] in QDSTATS_FORBIDDEN]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", ["qdmodels", "qdstats"])
def test_no_private_names_across_units(package):
    """``from qdstats.resampling import _x`` from another unit (or ``qdstats._private`` modules) is forbidden."""
    bad = []
    for path in _sources(package):
        src = (package, _unit(package, path))
        for line, module, names in _imports(path):
            parts = module.split(".")
            if parts[0] not in ("qdmodels", "qdstats"):
                continue
            dst = (parts[0], parts[1] if len(parts) > 1 else "__init__")
            private_module = any(p.startswith("_") for p in parts[1:])
            private_names = [n for n in names if n.startswith("_")]
            if dst != src and (private_module or private_names):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {module} {private_names}")
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_violation(tmp_path):
    """The checker itself: a lazy upward import planted in a copy of qdmodels/runtime.py is reported."""
    text = (ROOT / "qdmodels" / "runtime.py").read_text(encoding="utf-8")
    fake = tmp_path / "qdmodels" / "runtime.py"
    fake.parent.mkdir()
    fake.write_text(text, encoding="utf-8")
    assert upward_imports(tmp_path) == []
    fake.write_text(text + "\n\ndef _planted():\n    from qdmodels.eval.scoring import evaluate\n", encoding="utf-8")
    assert upward_imports(tmp_path) == [f"qdmodels/runtime.py:{len(text.splitlines()) + 4} (runtime) imports qdmodels.eval.scoring"]
