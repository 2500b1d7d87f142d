"""A non-editable install works: the wheel ships the code, the corpus manifests and the quantity tables.

The slow tests build the wheel from a copy of the files a build needs (so the checkout is left untouched), install
it with ``pip install --no-deps --target SITE`` and run the CLI from another working directory with
``PYTHONPATH=SITE`` and this interpreter (torch and the other dependencies come from the venv); they assert that
``qdmodels``, ``qdstats`` and the manifests are imported from SITE, not from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what a build reads (pyproject's readme, packages and package-dir); everything else stays out of the build copy
BUILD_INPUTS = ("pyproject.toml", "README.md", "qdstats", "qdmodels", "corpora")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _checkout_manifests() -> list[str]:
    return sorted(p.parent.name for p in (REPO / "corpora").glob("*/manifest.yaml"))


def test_package_list_names_every_package_folder():
    """pyproject lists the packages (a renamed folder rules out `find`): none under qdstats/ or qdmodels/ is missing."""
    st = _pyproject()["tool"]["setuptools"]
    listed = set(st["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(REPO).parts)
        for top in ("qdstats", "qdmodels")
        for p in (REPO / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert on_disk - listed == set(), f"add these packages to [tool.setuptools] packages in pyproject.toml: {sorted(on_disk - listed)}"
    assert listed - on_disk == {"qd_corpora"}, f"packages listed in pyproject.toml but absent: {sorted(listed - on_disk - {'qd_corpora'})}"
    assert st["package-dir"] == {"qd_corpora": "corpora"}
    assert (REPO / "corpora" / "__init__.py").is_file()


# ---------------------------------------------------------------- slow: build, install, run


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, site): the wheel built from a copy of the build inputs, and the folder it was installed into."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in BUILD_INPUTS:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=ignore)
        else:
            shutil.copy2(p, src / name)
    dist = tmp / "dist"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=300, cwd=tmp,
    )
    assert run.returncode == 0, f"building the wheel failed:\n{run.stdout}\n{run.stderr}"
    wheels = list(dist.glob("qd-*.whl"))
    assert len(wheels) == 1, wheels
    site = tmp / "site"
    run = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheels[0])],
        capture_output=True, text=True, timeout=300, cwd=tmp,
    )
    assert run.returncode == 0, f"installing the wheel failed:\n{run.stdout}\n{run.stderr}"
    return wheels[0], site


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QD_MANIFEST_DIR", "QD_DATA_DIR")}
    env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def _run(site: Path, cwd: Path, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, cwd=cwd, env=_env(site, **env))
    assert res.returncode == 0, f"{' '.join(args)} exited {res.returncode}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture
def elsewhere(tmp_path) -> Path:
    """A working directory outside the checkout (so the checkout is not on sys.path)."""
    d = tmp_path / "cwd"
    d.mkdir()
    assert REPO not in d.parents
    return d


@pytest.mark.slow
def test_wheel_contains_manifests_and_package_data(built):
    wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    ids = _checkout_manifests()
    assert ids, "no corpora/<id>/manifest.yaml in the checkout"
    missing = [i for i in ids if f"qd_corpora/{i}/manifest.yaml" not in names]
    assert not missing, f"manifests missing from the wheel: {missing}"
    readmes = sorted(p.parent.name for p in (REPO / "corpora").glob("*/README.md"))
    assert [i for i in readmes if f"qd_corpora/{i}/README.md" not in names] == []
    assert "qd_corpora/__init__.py" in names
    tsvs = sorted(p.name for p in (REPO / "qdstats" / "quantities").glob("*.tsv"))
    assert tsvs and all(f"qdstats/quantities/{t}" in names for t in tsvs)
    assert not [n for n in names if n.startswith(("tests/", "corpora/", "analyses/", "benchmarks/"))]


@pytest.mark.slow
def test_installed_package_is_imported_from_the_install(built, elsewhere):
    _, site = built
    code = (
        "import qdmodels, qdstats, qd_corpora; "
        "from qdmodels.corpora.datadir import manifest_dir; "
        "from qdmodels.corpora.manifest import list_manifests; "
        "from qdstats.quantities import get_quantity; "
        "print(qdmodels.__file__); print(qdstats.__file__); print(manifest_dir()); "
        "print(','.join(list_manifests())); print(get_quantity('eval.bits_per_byte').unit)"
    )
    out = _run(site, elsewhere, sys.executable, "-c", code, timeout=120).stdout.splitlines()
    site_r = site.resolve()
    for line in out[:3]:
        assert site_r in Path(line).resolve().parents, f"{line} is not under {site_r}: the checkout was imported"
    assert Path(out[2]).resolve() == site_r / "qd_corpora"
    assert out[3].split(",") == _checkout_manifests()
    assert out[4]


@pytest.mark.slow
def test_cli_data_list_and_version_from_the_install(built, elsewhere):
    _, site = built
    res = _run(site, elsewhere, sys.executable, "-m", "qdmodels.cli.main", "data", "list", timeout=120, COLUMNS="250")
    for cid in _checkout_manifests():
        assert cid in res.stdout
    # the console script of the wheel (its shebang is this interpreter)
    res = _run(site, elsewhere, str(site / "bin" / "qd"), "--version", timeout=120)
    assert res.stdout.strip().startswith("qd ")


@pytest.mark.slow
@pytest.mark.integration
def test_cli_tokenize_parity_from_the_install(built, elsewhere, shared_data_dir):
    _, site = built
    out = elsewhere / "parity.jsonl"
    # QD_DATA_DIR too: the tokenizer files are found through it (`--data-dir` selects the corpus files)
    _run(site, elsewhere, sys.executable, "-m", "qdmodels.cli.main", "tokenize", "parity", "--tokenizer", "gpt2",
         "--langs", "eng_Latn,heb_Hebr", "--limit", "3", "--n-resamples", "0", "--data-dir", str(shared_data_dir),
         "--out", str(out), timeout=300, QD_DATA_DIR=str(shared_data_dir))
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.integration
def test_cli_eval_tiny_model_from_the_install(built, elsewhere, shared_data_dir):
    """`qd eval` reads NTREX-128 (no corpus without a data directory), so it runs on 2 items per language."""
    _, site = built
    out = elsewhere / "eval.jsonl"
    _run(site, elsewhere, sys.executable, "-m", "qdmodels.cli.main", "eval", "--model", "tiny:llama",
         "--langs", "eng_Latn,heb_Hebr", "--limit", "2", "--data-dir", str(shared_data_dir), "--no-progress",
         "--out", str(out), timeout=600)
    assert out.is_file() and out.stat().st_size > 0
