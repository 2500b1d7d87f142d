"""`qd` is one consistent tool: one copy of each mechanism, one name per concept, examples in every help text,
`--version`, `--json` on the list commands, and no silently missing command."""

from __future__ import annotations

import importlib.metadata
import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import qdmodels.cli
from qdmodels.cli import _common, main

CLI_DIR = Path(qdmodels.cli.__file__).parent
runner = CliRunner()

LONG_RUNNING = {("eval",), ("activations",), ("demo",), ("sweep", "layers"), ("sweep", "run"), ("probe", "repr"),
                ("probe", "ablate"), ("calibrate", "gptq"), ("calibrate", "proxies")}
RECORD_FILE_COMMANDS = {("eval",), ("weights",), ("activations",), ("probe", "repr"), ("probe", "ablate"),
                        ("calibrate", "gptq"), ("calibrate", "proxies"), ("tokenize", "parity"), ("align",)}
QUANT_COMMANDS = {("eval",), ("sweep", "layers"), ("probe", "repr"), ("probe", "ablate"), ("calibrate", "gptq"),
                  ("calibrate", "proxies"), ("demo",)}
REFERENCE_COMMANDS = {("probe", "ablate"), ("tokenize", "parity"), ("demo",), ("report",)}


def _leaves(cmd, path=()):
    sub = getattr(cmd, "commands", None)
    if sub:
        for name, c in sub.items():
            yield from _leaves(c, (*path, name))
    else:
        yield path, cmd


LEAVES = dict(_leaves(typer.main.get_command(main.app)))


def _options(cmd) -> dict[str, object]:
    """Every option string of a command -> its click parameter."""
    out = {}
    for p in cmd.params:
        for o in (*p.opts, *getattr(p, "secondary_opts", ())):
            out[o] = p
    return out


def test_every_expected_command_is_mounted():
    assert LONG_RUNNING | RECORD_FILE_COMMANDS | QUANT_COMMANDS | REFERENCE_COMMANDS <= set(LEAVES)


def test_mechanisms_and_shared_options_live_only_in_common():
    common_src = (CLI_DIR / "_common.py").read_text(encoding="utf-8")
    shared = set(re.findall(r'typer\.(?:Option|Argument)\(\s*"(--[a-z-]+)', common_src))
    assert {"--model", "--revision", "--corpus", "--langs", "--split", "--limit", "--out", "--batch-size",
            "--n-resamples", "--seed", "--data-dir", "--quant", "--reference", "--append", "--overwrite"} <= shared
    for f in sorted(CLI_DIR.glob("*.py")):
        if f.name == "_common.py":
            continue
        src = f.read_text(encoding="utf-8")
        defs = re.findall(r"^def (_?err|_?guard|_?load|_?load_items|_?items|ntrex_items|_?langs|_ints|_floats)\(",
                          src, re.MULTILINE)
        assert not defs, f"{f.name} re-defines {defs}; use qdmodels.cli._common"
        declared = set(re.findall(r'typer\.(?:Option|Argument)\(\s*"(--[a-z-]+)', src))
        assert not declared & shared, f"{f.name} re-declares {sorted(declared & shared)}; import the _common alias"
        assert not re.search(r'typer\.Option\((?!\s*"-)', src), f"{f.name} declares an option without its name"


def test_one_name_per_concept():
    for path, cmd in LEAVES.items():
        opts = _options(cmd)
        name = " ".join(path)
        assert not {"--scheme", "--schemes", "--reference-language"} & set(opts), name
        if "--model" in opts:
            assert "-m" in opts["--model"].opts, f"qd {name}: --model without -m"
            assert "--revision" in opts, f"qd {name} reads a model but has no --revision"
            assert {"--device", "--dtype"} <= set(opts), f"qd {name} runs a model but has no --device/--dtype"
        if "--langs" in opts and path != ("calibrate", "gptq"):
            assert "--data-dir" in opts, f"qd {name} reads a corpus but has no --data-dir"
        if "--n-resamples" in opts:
            assert opts["--n-resamples"].default == _common.N_RESAMPLES == 2000, name
    for path in LONG_RUNNING:
        opts = _options(LEAVES[path])
        assert "--progress" in opts and "--no-progress" in opts, f"qd {' '.join(path)} has no --progress/--no-progress"
    for path in RECORD_FILE_COMMANDS:
        assert {"--out", "--append", "--overwrite"} <= set(_options(LEAVES[path])), path
    for path in QUANT_COMMANDS:
        assert "--quant" in _options(LEAVES[path]), path
    for path in REFERENCE_COMMANDS:
        assert "--reference" in _options(LEAVES[path]), path


def test_gptq_data_dir_and_quant():
    opts = _options(LEAVES[("calibrate", "gptq")])
    assert {"--quant", "--data-dir", "--revision", "-m"} <= set(opts)


@pytest.mark.parametrize("path", sorted(LEAVES), ids=lambda p: "-".join(p) or "root")
def test_every_command_help_has_examples(path):
    r = runner.invoke(main.app, [*path, "--help"])
    assert r.exit_code == 0, r.output
    assert "Examples:" in r.output and f"qd {' '.join(path)}" in r.output


def test_probe_help_does_not_mention_proxies():
    for args in (["probe", "--help"], ["probe", "repr", "--help"], ["probe", "ablate", "--help"]):
        r = runner.invoke(main.app, args)
        assert r.exit_code == 0 and "prox" not in r.output.lower(), args
    assert "prox" in runner.invoke(main.app, ["calibrate", "--help"]).output.lower()


def test_version():
    r = runner.invoke(main.app, ["--version"])
    assert r.exit_code == 0
    assert r.stdout.strip() == f"qd {importlib.metadata.version('qd')}"


def test_a_command_module_that_fails_to_import_is_an_error():
    with pytest.raises(ModuleNotFoundError):
        main._mount(typer.Typer(), groups=[("qdmodels.cli.no_such_module", "app", "nope", None)], modules=[])
    with pytest.raises(ModuleNotFoundError):
        main._mount(typer.Typer(), groups=[], modules=["qdmodels.cli.no_such_module"])


def test_data_list_json(tmp_path):
    r = runner.invoke(main.app, ["data", "list", "--json", "--quick", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    ntrex = next(x for x in rows if x["corpus"] == "ntrex128")
    assert ntrex["status"] == "missing" and "eng_Latn" in ntrex["languages"] and ntrex["files"] > 0
    assert {"license", "license_flags", "files_present", "files_verified"} <= set(ntrex)
