"""Records: validation, provenance, JSONL/DataFrame/Parquet round trips, atomic appends, JSON Schema."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from qdstats.validation import UnknownNameError
from qdstats.quantities import get_quantity, list_quantities, register_quantity
from qdstats.records import (
    CorpusRef,
    FailedMeasurement,
    Measurement,
    ModelRef,
    RecordFormatError,
    atomic_write_text,
    export_json_schemas,
    from_frame,
    read_parquet,
    read_records,
    to_frame,
    write_parquet,
    write_records,
)

SHA = "ab" * 32
MODEL = ModelRef(model_id="tiny:gpt2", source="config", sha256=SHA, n_params=1000, family="gpt2")
CORPUS = CorpusRef(corpus_id="ntrex128", split="test", sha256=SHA)


def make(value: float = 1.0, **kw) -> Measurement:
    base = dict(quantity="eval.bits_per_byte", value=value, model=MODEL, language="heb_Hebr", corpus=CORPUS,
                item_id="ntrex128:0001", condition={"scheme": "int4-g128-sym", "bits": 4}, routine="tests.make")
    base.update(kw)
    return Measurement(**base)


# ---------------------------------------------------------------- validation
def test_unit_is_filled_from_registry_and_checked():
    assert make().unit == "bit/byte"
    with pytest.raises(ValidationError, match="`unit` for quantity 'eval.bits_per_byte' must be 'bit/byte'"):
        make(unit="nat")


def test_unknown_quantity_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean (one of )?'eval.bits_per_byte'"):
        get_quantity("eval.bits_per_bite")
    with pytest.raises(ValidationError, match="unknown quantity"):
        make(quantity="eval.bits_per_bite")


def test_frozen_and_extra_forbidden():
    m = make()
    with pytest.raises(ValidationError):
        m.value = 2.0  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        make(colour="red")


@pytest.mark.parametrize("lang", ["heb", "he_Hebr", "heb_hebr", "HEB_Hebr"])
def test_language_pattern(lang):
    with pytest.raises(ValidationError, match="language"):
        make(language=lang)


def test_nan_requires_warning_and_inf_refused():
    with pytest.raises(ValidationError, match="NaN must carry a `warnings` entry"):
        make(value=math.nan)
    m = make(value=math.nan, warnings=("constant input",))
    assert math.isnan(m.value)
    with pytest.raises(ValidationError, match="infinite"):
        make(value=math.inf)


def test_model_ref_must_be_pinned():
    with pytest.raises(ValidationError, match="`revision` must pin a commit"):
        ModelRef(model_id="gpt2", source="hub", revision="main")
    with pytest.raises(ValidationError, match="needs `sha256`"):
        ModelRef(model_id="/tmp/x.gguf", source="gguf")
    with pytest.raises(ValidationError, match="64 lowercase hex"):
        ModelRef(model_id="/tmp/x.gguf", source="gguf", sha256="abc")
    assert ModelRef(model_id="gpt2", source="hub", revision="607a30d783dfa663caf39e06633721c8d4cfcd7e").revision


def test_condition_keys_sorted_and_content_key_ignores_provenance(monkeypatch):
    a = make(condition={"z": 1, "a": "x"})
    assert list(a.condition) == ["a", "z"]
    monkeypatch.setenv("QD_FIXED_TIMESTAMP", "2000-01-01T00:00:00+00:00")
    b = make(condition={"a": "x", "z": 1})
    assert a.provenance != b.provenance
    assert a.content_key() == b.content_key()
    assert make(value=2.0).content_key() != a.content_key()


def test_provenance_is_stamped():
    p = make().provenance
    assert p is not None
    assert p.routine == "tests.make"
    assert p.package == "qd"
    assert p.created_at
    assert "numpy" in p.libraries and "pydantic" in p.libraries


def test_failed_measurement_from_exception():
    try:
        raise RuntimeError("out of memory at layer 3")
    except RuntimeError as exc:
        f = FailedMeasurement.from_exception(exc, routine="tests.fail", language="eng_Latn", condition={"bits": 3},
                                             input={"layer": 3})
    assert f.success is False
    assert f.error.error_type == "RuntimeError"
    assert "layer 3" in f.error.message
    assert "Traceback" in (f.error.traceback or "")


def test_register_quantity_conflict():
    register_quantity("user.test_q", unit="s", description="test")
    register_quantity("user.test_q", unit="s", description="test")  # identical: no-op
    with pytest.raises(ValueError, match="already registered"):
        register_quantity("user.test_q", unit="ms", description="test")
    assert "user.test_q" in list_quantities()


def test_every_registered_quantity_has_unit_and_description():
    for q in list_quantities().values():
        assert q.unit and q.description, q


# ---------------------------------------------------------------- JSONL
def test_jsonl_roundtrip_and_append(tmp_path: Path):
    path = tmp_path / "sub" / "r.jsonl"
    recs = [make(value=float(i), item_id=f"i{i}") for i in range(5)]
    fail = FailedMeasurement.from_exception(ValueError("bad"), routine="t", quantity="eval.bits_per_byte")
    assert write_records(path, recs[:3]) == 3
    write_records(path, recs[3:] + [fail])
    back = read_records(path)
    assert back == recs + [fail]
    write_records(path, recs[:1], mode="w")
    assert read_records(path) == recs[:1]


def test_corrupted_line_reports_file_and_line(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    write_records(path, [make(), make(value=2.0)])
    with open(path, "a") as fh:
        fh.write('{"schema_name": "qd.measurement", "quantity": "eval.bits_per_byte", "val\n')
    with pytest.raises(RecordFormatError, match=r"r\.jsonl:3: not a valid record"):
        read_records(path)
    with pytest.warns(UserWarning, match=r"r\.jsonl:3"):
        assert len(read_records(path, on_error="warn")) == 2


def test_append_after_torn_line_starts_fresh_line(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    write_records(path, [make()])
    with open(path, "a") as fh:
        fh.write('{"torn')  # crash mid-write, no newline
    write_records(path, [make(value=3.0)])
    with pytest.warns(UserWarning, match=":2:"):
        back = read_records(path, on_error="warn")
    assert [r.value for r in back] == [1.0, 3.0]


def _append_worker(args):
    path, k = args
    for i in range(50):
        write_records(path, [make(value=float(k * 1000 + i), item_id=f"w{k}-{i}")])


def test_concurrent_appends_never_interleave(tmp_path: Path):
    path = str(tmp_path / "r.jsonl")
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        pool.map(_append_worker, [(path, k) for k in range(4)])
    back = read_records(path)
    assert len(back) == 200
    assert len({r.item_id for r in back}) == 200


def test_read_missing_file_names_it(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_records(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- frames, parquet
def test_frame_is_tidy_and_flat():
    df = to_frame([make(), make(value=2.0, condition={"scheme": "fp32"})])
    assert {"quantity", "value", "unit", "language", "model.model_id", "corpus.sha256", "condition.scheme",
            "condition.bits", "provenance.routine"} <= set(df.columns)
    assert df["value"].tolist() == [1.0, 2.0]
    assert df.loc[1, "condition.bits"] is None


def test_frame_and_parquet_roundtrip(tmp_path: Path):
    recs = [make(), make(value=math.nan, warnings=("degenerate",)), make(condition={"scheme": "fp32"}, attributes={"doc": "d1", "len": 7}),
            FailedMeasurement.from_exception(KeyError("x"), routine="t", with_traceback=False)]
    back = from_frame(to_frame(recs))
    assert back[0] == recs[0] and back[2] == recs[2] and back[3] == recs[3]
    assert math.isnan(back[1].value) and back[1].warnings == ("degenerate",)
    p = write_parquet(tmp_path / "r.parquet", recs)
    pq = read_parquet(p)
    assert pq[0] == recs[0] and pq[2] == recs[2] and pq[3] == recs[3]
    assert isinstance(pq[2].attributes["len"], int)


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path: Path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        paths = [write_parquet(tmp_path / "r.parquet", [make()]), atomic_write_text(tmp_path / "t.txt", "x")]
        write_records(tmp_path / "r.jsonl", [make()], mode="w")
        paths.append(tmp_path / "r.jsonl")
    finally:
        os.umask(old)
    for p in paths:  # a plain open() would give 0o644 under umask 022; others in a lab must be able to read records
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o644, p


scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
                    st.floats(allow_nan=False, allow_infinity=False, width=64))


@given(
    value=st.floats(allow_nan=False, allow_infinity=False),
    cond=st.dictionaries(st.text(min_size=1, max_size=6), scalars, max_size=4),
    lang=st.sampled_from(["eng_Latn", "heb_Hebr", "zho_Hans", None]),
    n=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_property_roundtrips(value, cond, lang, n):
    m = Measurement(quantity="eval.nll_sum", value=value, language=lang, condition=cond, n=n, routine="prop")
    assert Measurement.model_validate_json(m.model_dump_json()) == m
    assert from_frame(to_frame([m]))[0] == m


# ---------------------------------------------------------------- schema
def test_json_schema_export_validates_records(tmp_path: Path):
    paths = export_json_schemas(tmp_path)
    schemas = {p.name: json.loads(p.read_text()) for p in paths}
    m = json.loads(make().model_dump_json())
    jsonschema.validate(m, schemas["qd.measurement.v1.schema.json"])
    bad = dict(m, language="hebrew")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["qd.measurement.v1.schema.json"])


def test_committed_schemas_are_current(tmp_path: Path):
    repo = Path(__file__).resolve().parents[3]
    export_json_schemas(tmp_path)
    for p in tmp_path.iterdir():
        committed = repo / "docs" / "schema" / p.name
        assert committed.exists(), f"{committed} missing: run `python -m qdstats.records.io` or scripts/export_schemas.py"
        assert json.loads(committed.read_text()) == json.loads(p.read_text()), f"{committed} is stale"


def test_importing_qdstats_does_not_import_torch():
    code = ("import sys, qdstats, qdstats.records, qdstats.quantities, qdstats.results;"
            "import importlib, pkgutil;"
            "[importlib.import_module(m.name) for m in pkgutil.walk_packages(qdstats.__path__, 'qdstats.')];"
            "bad=[m for m in ('torch','transformers','qdmodels') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_nan_value_survives_jsonl(tmp_path: Path):
    m = make(value=math.nan, warnings=("constant input",))
    write_records(tmp_path / "n.jsonl", [m])
    back = read_records(tmp_path / "n.jsonl")[0]
    assert math.isnan(back.value) and back.warnings == ("constant input",)
    assert math.isnan(Measurement.model_validate_json(m.model_dump_json()).value)


def test_statresult_nan_and_inf_survive_json():
    from qdstats.results import ConfidenceInterval, StatResult

    r = StatResult(test="vif", estimate_name="VIF", estimate=math.inf, n=5,
                   ci=ConfidenceInterval(low=math.nan, high=math.nan, level=0.95, method="none"), warnings=("singular",))
    back = StatResult.model_validate_json(r.model_dump_json())
    assert math.isinf(back.estimate) and math.isnan(back.ci.low)


def test_undecodable_and_invalid_lines_name_file_line_and_field(tmp_path):
    """Regression: a non-UTF-8 line crashed reading (even with on_error='warn'), and a validation error kept only
    pydantic's first line, without the field or the allowed values."""
    import json
    import warnings

    from qdstats.records.io import RecordFormatError

    ok = Measurement(quantity="eval.bits_per_byte", value=1.0, language="eng_Latn", item_id="s1",
                     condition={"scheme": "fp32"})
    bad = json.loads(ok.model_dump_json())
    bad["model"] = {"model_id": "x", "source": "cloud"}
    f = tmp_path / "r.jsonl"
    f.write_bytes((ok.model_dump_json() + "\n").encode() + b"\xff\xfe{}\n" + (json.dumps(bad) + "\n").encode())
    with pytest.raises(RecordFormatError, match=r"r\.jsonl:2: not a valid record: not UTF-8 text"):
        read_records(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_records(f, on_error="warn")
    assert got == [ok] or [r.content_hash() for r in got] == [ok.content_hash()]
    msgs = [str(w.message) for w in caught]
    assert any("r.jsonl:2:" in m for m in msgs)
    assert any("r.jsonl:3:" in m and "`model.source`" in m and "'hub', 'local', 'gguf' or 'config'" in m
               and "'cloud'" in m for m in msgs)
