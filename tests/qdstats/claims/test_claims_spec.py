"""Claim specs: YAML loading, include variants, for_each expansion, and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from claims_synth import spec_dict

from qdstats.claims import ClaimSpec, SpecError, load_spec_file, load_specs

ROOT = Path(__file__).resolve().parents[3]


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_seed_specs_validate_and_cite_the_audit():
    specs = load_specs(ROOT / "analyses" / "claims")
    families = {s.family for s in specs}
    assert {"H1", "H2", "H3", "H4", "H5", "H6", "W2"} <= families
    for s in specs:
        assert s.seed_claim and s.audit and "seed-audit" in s.audit, s.id
        assert s.references, s.id
    h4 = [s for s in specs if s.family == "H4"]
    assert all(s.selection_split == "dev" and s.effective_test_split == "test" for s in h4)
    assert len({s.id for s in specs}) == len(specs)


def test_include_variant_overrides_nested_keys(tmp_path):
    base = spec_dict(id="V.int4")
    _write(tmp_path / "_base.yaml", {"version": 1, "family": "V", "n_resamples": 999})
    b = dict(base)
    b.pop("version"), b.pop("family")
    _write(tmp_path / "int4.yaml", {"include": "_base.yaml", **b})
    _write(tmp_path / "int3.yaml", {"include": "int4.yaml", "id": "V.int3", "params": {"treatment": {"scheme": "int3"}}})
    specs = load_specs(tmp_path)
    by = {s.id: s for s in specs}
    assert set(by) == {"V.int4", "V.int3"}  # _base.yaml is an include-only fragment
    assert by["V.int3"].params["treatment"] == {"scheme": "int3"}
    assert by["V.int3"].params["target"] == "heb_Hebr"  # inherited through the include
    assert by["V.int3"].family == "V" and by["V.int3"].n_resamples == 999


def test_include_cycle_and_missing_include(tmp_path):
    _write(tmp_path / "a.yaml", {"include": "b.yaml", **spec_dict(id="A")})
    _write(tmp_path / "b.yaml", {"include": "a.yaml"})
    with pytest.raises(SpecError, match="`include` cycle"):
        load_spec_file(tmp_path / "a.yaml")
    _write(tmp_path / "c.yaml", {"include": "nope.yaml", **spec_dict(id="C")})
    with pytest.raises(SpecError, match="`include` file not found: 'nope.yaml'"):
        load_spec_file(tmp_path / "c.yaml")


def test_for_each_product_ids_and_statement(tmp_path):
    d = spec_dict(id="F", statement="{model}: INT4 hurts {target} more")
    d["for_each"] = {"model": ["org/m-1", "m2"], "target": ["heb_Hebr", "arb_Arab"]}
    specs = load_spec_file(_write(tmp_path / "f.yaml", d))
    assert [s.id for s in specs] == ["F.org-m-1.heb_Hebr", "F.org-m-1.arb_Arab", "F.m2.heb_Hebr", "F.m2.arb_Arab"]
    assert specs[0].statement == "org/m-1: INT4 hurts heb_Hebr more"
    assert specs[3].params["model"] == "m2" and specs[3].params["target"] == "arb_Arab"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"statment": "x"}, r"`statment`: Extra inputs are not permitted \(unknown key 'statment'\. Did you mean 'statement'\?\)"),
        ({"select": {"y": {"quantity": "eval.bits_per_bite"}}}, r"unknown quantity 'eval\.bits_per_bite'\. Did you mean 'eval\.bits_per_byte'\?"),
        ({"test": "diff_in_dif"}, r"got 'diff_in_dif'\. Did you mean 'diff_in_diff'\?"),
        ({"params": {"baseline": {"scheme": "fp32"}, "treatment": {"scheme": "int4"}}}, r"`params` invalid for test 'diff_in_diff': `target`: Field required"),
        ({"decision": {"alpha": 1.5}}, r"`decision\.alpha`: Input should be less than 1"),
        ({"alternative": "greter"}, r"`alternative`: Input should be 'two-sided', 'less' or 'greater'"),
        ({"select": {"x": {"quantity": "eval.bits_per_byte"}}}, r"`select` must define role\(s\) \['y'\]"),
        ({"covariates": ["n_bytes"]}, r"`covariates` are not accepted by test 'diff_in_diff'"),
        ({"id": "bad id"}, r"`id`: String should match pattern"),
        ({"select": {"y": {"quantity": "eval.bits_per_byte", "site_regex": "("}}}, r"`site_regex` is not a valid regular expression"),
    ],
)
def test_validation_errors_name_the_key(tmp_path, change, match):
    d = spec_dict()
    d.update(change)
    with pytest.raises(SpecError, match=match) as info:
        load_spec_file(_write(tmp_path / "bad.yaml", d))
    assert str(info.value).startswith(str(tmp_path / "bad.yaml"))


def test_duplicate_ids_and_family_mismatch(tmp_path):
    _write(tmp_path / "a.yaml", spec_dict(id="D"))
    _write(tmp_path / "b.yaml", spec_dict(id="D"))
    with pytest.raises(SpecError, match="duplicate claim id 'D'"):
        load_specs(tmp_path)
    (tmp_path / "b.yaml").unlink()
    _write(tmp_path / "c.yaml", spec_dict(id="E", adjust="fdr_bh"))
    with pytest.raises(SpecError, match="family 'T'.*disagree on `adjust`"):
        load_specs(tmp_path)


def test_not_a_mapping_and_bad_yaml(tmp_path):
    (tmp_path / "l.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(SpecError, match="must be a YAML mapping; got list"):
        load_spec_file(tmp_path / "l.yaml")
    (tmp_path / "y.yaml").write_text("id: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec_file(tmp_path / "y.yaml")


def test_spec_hash_tracks_content():
    a = ClaimSpec.model_validate(spec_dict())
    b = ClaimSpec.model_validate(spec_dict())
    c = ClaimSpec.model_validate(spec_dict(seed=2))
    assert a.spec_hash() == b.spec_hash() != c.spec_hash()


def test_requires_levels_checks_inner_test():
    d = spec_dict(test="requires_levels", params={"column": "n_params", "k": 3, "then": "did_trnd"})
    with pytest.raises(ValueError, match="Did you mean 'did_trend'"):
        ClaimSpec.model_validate(d)
    d["params"] = {"column": "n_params", "k": 3, "then": "did_trend", "then_params": {"baseline": {"scheme": "fp32"}}}
    with pytest.raises(ValueError, match=r"`params.then_params` invalid for test 'did_trend'"):
        ClaimSpec.model_validate(d)


def test_non_utf8_spec_names_file_and_line(tmp_path):
    from qdstats.claims.spec import SpecError, load_specs

    f = tmp_path / "c.yaml"
    f.write_bytes(b"id: x\n\xff\xfe\n")
    with pytest.raises(SpecError, match=r"c\.yaml:2: not UTF-8 text"):
        load_specs([f])
