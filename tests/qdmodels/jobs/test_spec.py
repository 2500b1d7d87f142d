"""Sweep spec validation and expansion into content-addressed jobs."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from qdmodels.jobs import SweepSpec, canonical_json, expand, job_id, load_spec

from .conftest import TEXTS, make_spec


def test_expansion_counts_and_order(spec):
    """2 languages x (fp32 baseline + 2 schemes x 2 plans): baseline first per language."""
    jobs = expand(spec)
    assert len(jobs) == 2 * (1 + 4)
    assert [j.language for j in jobs] == ["eng_Latn"] * 5 + ["heb_Hebr"] * 5
    assert jobs[0].is_baseline and jobs[5].is_baseline
    assert {j.baseline_id for j in jobs[1:5]} == {jobs[0].id}
    assert jobs[0].baseline_id is None
    conds = [(j.condition["scheme"], j.condition["protect"]) for j in jobs[1:5]]
    assert conds == [("int4-g16-sym", "none"), ("int4-g16-sym", "layers=0"), ("int3-ch-sym", "none"), ("int3-ch-sym", "layers=0")]


def test_job_id_is_sha256_of_canonical_content(spec):
    """Oracle: hashlib over json.dumps(sort_keys, compact) of the job without its id."""
    for j in expand(spec):
        payload = json.dumps(j.model_dump(mode="json", exclude={"id"}), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert j.id == hashlib.sha256(payload.encode()).hexdigest()


def test_ids_deterministic_and_sensitive(spec):
    a = [j.id for j in expand(spec)]
    assert a == [j.id for j in expand(make_spec())]
    # a different name or data_dir does not change the work; batch size and texts do
    assert a == [j.id for j in expand(make_spec(name="other", data_dir="/nowhere"))]
    assert set(a).isdisjoint(j.id for j in expand(make_spec(batch_size=3)))
    assert set(a).isdisjoint(j.id for j in expand(make_spec(threads=2)))
    other = {**TEXTS, "eng_Latn": TEXTS["eng_Latn"][:2]}
    b = [j.id for j in expand(make_spec(texts=other))]
    assert a[5:] == b[5:] and set(a[:5]).isdisjoint(b[:5])


def test_scheme_keys_are_normalized():
    """'INT4-G16-SYM' and 'int4-g16-sym' are the same scheme, hence the same jobs."""
    a = expand(make_spec(schemes=["INT4-G16-SYM"]))
    b = expand(make_spec(schemes=["int4-g16-sym"]))
    assert [j.id for j in a] == [j.id for j in b]


def test_prune_only_and_noop_conditions():
    s = make_spec(schemes=["fp32"], protect=["none", "layers=0"], prune=["none", "2:4"])
    conds = s.conditions()
    assert conds == [{"scheme": "fp32", "protect": "none", "prune": "2:4"}, {"scheme": "fp32", "protect": "layers=0", "prune": "2:4"}]


def test_calibrated_pruning_is_refused_with_the_allowed_keys():
    with pytest.raises(ValidationError, match=r"`prune` \['wanda-0.2'\] needs calibration text.*allowed"):
        make_spec(schemes=["fp32"], prune=["none", "wanda-0.2"])


def test_baselines_only():
    assert all(j.is_baseline for j in expand(make_spec(schemes=[], protect=["none"])))


def test_layer_sweep_jobs_per_seed():
    s = make_spec(kind="layer_sweep", protect=["none"], seeds=[0, 1], n_resamples=10)
    jobs = expand(s)
    assert len(jobs) == 2 * 2 * 2
    assert {j.seed for j in jobs} == {0, 1}
    assert all(j.params["n_resamples"] == 10 for j in jobs)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"schemes": ["int4-g16-sim"]}, "key"),
        ({"protect": ["layrs=0"]}, "layrs|key|plan"),
        ({"prune": ["3:3"]}, "n"),
        ({"calibration": ["dataset_build"]}, "calibration"),
        ({"seeds": [0, 1]}, "seeds"),
        ({"kind": "layer_sweep", "protect": ["none", "layers=0"]}, "protect"),
        ({"kind": "layer_sweep", "schemes": ["fp32"]}, "schemes"),
        ({"languages": ["deu_Latn"]}, "languages"),
        ({"models": ["tiny:gtp2"]}, "gpt2"),
        ({"texts": None}, "texts"),
        ({"schemes": ["int4-g16-sym", "int4-g16-sym"]}, "duplicates"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_validation_errors_name_the_field(kw, match):
    with pytest.raises(ValidationError, match=match):
        make_spec(**kw)


def test_ntrex_languages_are_normalized():
    """'heb' and 'heb_Hebr' are the same NTREX language, hence the same jobs (manifest only, no data)."""
    a = SweepSpec(name="n", models=["tiny:gpt2"], languages=["heb", "eng"], limit=2)
    b = SweepSpec(name="n", models=["tiny:gpt2"], languages=["heb_Hebr", "eng_Latn"], limit=2)
    assert a.languages == ("heb_Hebr", "eng_Latn")
    assert [j.id for j in expand(a)] == [j.id for j in expand(b)]


def test_load_spec_yaml(tmp_path, spec):
    import yaml

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(json.loads(spec.model_dump_json())), encoding="utf-8")
    assert load_spec(p) == spec
    p.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mapping"):
        load_spec(p)
    p.write_text("name: x\nmodels: []\n", encoding="utf-8")
    with pytest.raises(ValueError, match="models"):
        load_spec(p)
    with pytest.raises(FileNotFoundError, match="spec"):
        load_spec(tmp_path / "nope.yaml")


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_job_id_ignores_key_order(d):
    """Property: the id depends on the content, not on the insertion order of keys."""
    rev = dict(reversed(list(d.items())))
    assert job_id(d) == job_id(rev)
    assert canonical_json(d) == canonical_json(rev)


def test_job_round_trip_and_tamper_check(spec):
    from qdmodels.jobs import Job

    for j in expand(spec):
        assert Job.model_validate(j.model_dump(mode="json")) == j
    d = expand(spec)[1].model_dump(mode="json")
    d["condition"]["scheme"] = "int2-g16-sym"
    with pytest.raises(ValidationError, match="does not match the job's content"):
        Job.model_validate(d)


_SCHEMES = ["int4-g16-sym", "int3-ch-sym", "int8-t-asym", "fp32"]
_PLANS = ["none", "layers=0", "comp=mlp"]
_PRUNES = ["none", "2:4", "unstructured-0.5"]


@given(st.sets(st.sampled_from(_SCHEMES)), st.sets(st.sampled_from(_PLANS), min_size=1),
       st.sets(st.sampled_from(_PRUNES), min_size=1), st.integers(1, 2))
def test_grid_size_property(schemes, plans, prunes, n_langs):
    """Property: jobs = languages x (1 baseline + grid minus no-op combinations); ids unique."""
    texts = dict(list(TEXTS.items())[:n_langs])
    s = make_spec(texts=texts, schemes=sorted(schemes), protect=sorted(plans), prune=sorted(prunes))
    quant = [x for x in schemes if x != "fp32"]
    n_grid = len(quant) * len(plans) * len(prunes) + ("fp32" in schemes or not schemes) * len(plans) * len(prunes - {"none"})
    jobs = expand(s)
    assert len(jobs) == n_langs * (1 + n_grid)
    assert len({j.id for j in jobs}) == len(jobs)
    assert sum(j.is_baseline for j in jobs) == n_langs


@pytest.mark.parametrize(("content", "match"), [
    ("name: x\nmodels: [tiny:llama\n", r"bad\.yaml:3:1: not a valid sweep spec YAML"),
    ("name: !!python/object:os.system x\n", r"bad\.yaml:1:7: not a valid sweep spec YAML: could not determine a constructor"),
    (b"\xff\xfe name", r"bad\.yaml is not UTF-8 text"),
])
def test_malformed_yaml_names_the_file_and_exits_2(tmp_path, content, match):
    """Regression: malformed YAML and python tags failed with exit 1 and a traceback-like message."""
    from typer.testing import CliRunner

    from qdmodels.cli.main import app
    from qdmodels.jobs import load_spec

    f = tmp_path / "bad.yaml"
    f.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=match):
        load_spec(f)
    res = CliRunner().invoke(app, ["sweep", "plan", str(f)])
    assert res.exit_code == 2 and "bad.yaml" in res.output, res.output
