"""Sweeps on the user's corpus file, on a chosen device and compute dtype (issue 13 leftovers, issue 18 bf16 gate).

Oracles: the file's sha256 from ``hashlib``; the same items scored directly with ``evaluate`` on
``load_corpus`` items (bits per byte equal to rtol 1e-6: the same code path, but float32 reductions may be
split differently by the worker's kernels, which moved one value by 1.3e-8 relative in a clean-clone CI run; a wrong
item, condition or corpus moves bits per byte by orders of magnitude more); the bf16 verdicts
recomputed from the saved screening run (analyses/bf16_screening/result.json).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from qdmodels.cli.sweep import app
from qdmodels.corpora.user import load_corpus
from qdmodels.eval.scoring import evaluate
from qdmodels.jobs import SweepInputsError, SweepSpec, expand, run_sweep
from qdmodels.jobs.bf16 import Bf16NotValidatedError, bf16_verdicts, check_bf16
from qdmodels.jobs.worker import get_model
from qdstats.records import Measurement, read_records

ROOT = Path(__file__).resolve().parents[3]
ROWS = [("eng", "The fox ran.", "1", "d1"), ("eng", "A dog slept under a tree.", "2", "d1"),
        ("eng", "Rain fell all day.", "3", "d2"), ("he", "השועל רץ.", "1", "d1"),
        ("he", "כלב ישן מתחת לעץ.", "2", "d1"), ("he", "גשם ירד כל היום.", "3", "d2")]


def _tsv(path: Path, rows=ROWS) -> Path:
    path.write_text("language\ttext\titem_id\tdocument_id\n" + "".join("\t".join(r) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _spec(corpus: Path, **kw) -> SweepSpec:
    base = {"name": "mine", "models": ["tiny:llama"], "corpus": str(corpus), "languages": ["eng", "heb"],
            "schemes": ["int4-g16-sym"], "batch_size": 2}
    return SweepSpec(**{**base, **kw})


def test_spec_takes_a_corpus_file_with_its_sha256(tmp_path):
    f = _tsv(tmp_path / "mine.tsv")
    spec = _spec(f)
    assert spec.languages == ("eng_Latn", "heb_Hebr") and spec.device == "cpu" and spec.compute_dtype == "float32"
    jobs = expand(spec)
    assert {j.corpus_sha256 for j in jobs} == {hashlib.sha256(f.read_bytes()).hexdigest()}
    assert {j.params["device"] for j in jobs} == {"cpu"} and {j.params["max_batch_tokens"] for j in jobs} == {1024}
    with pytest.raises(ValueError, match="`corpus` must be 'ntrex128', 'inline' or an existing"):
        _spec(tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="`device` must be one of"):
        _spec(f, device="tpu")


def test_sweep_records_equal_direct_evaluation(tmp_path):
    f = _tsv(tmp_path / "mine.tsv")
    spec = _spec(f)
    run = run_sweep(spec, tmp_path / "out", progress=False)
    assert not run.failed
    recs = [r for r in read_records(tmp_path / "out" / "records.jsonl") if isinstance(r, Measurement)]
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert {r.corpus.sha256 for r in recs} == {sha} and {r.corpus.corpus_id for r in recs} == {"user:mine.tsv"}
    assert {r.attributes["compute_dtype"] for r in recs} == {"float32"}
    assert {r.model.device for r in recs} == {"cpu"}
    # oracle: the same items through load_corpus + evaluate, fp32 condition
    pc = load_corpus(f, languages=["eng_Latn", "heb_Hebr"])
    lm = get_model(spec.models[0], "cpu")
    prev = torch.get_num_threads()
    torch.set_num_threads(spec.threads)  # the sweep pins its threads; kernels split reductions by thread count
    try:
        direct = evaluate(lm, None, [it for v in pc.items.values() for it in v], batch_size=2, progress=False)
    finally:
        torch.set_num_threads(prev)
    want = {(r.language, r.item_id): r.value for r in direct.records if r.quantity == "eval.bits_per_byte"}
    got = {(r.language, r.item_id): r.value for r in recs
           if r.quantity == "eval.bits_per_byte" and r.condition["scheme"] == "fp32"}
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-6, atol=0)


def test_sweep_takes_backend_format_keys_and_equals_direct_evaluation(tmp_path):
    """A GGUF block format in a sweep gives the records `evaluate_conditions` gives with the same condition."""
    from qdmodels.compress.conditions import quant_condition
    from qdmodels.eval.scoring import evaluate_conditions

    f = _tsv(tmp_path / "mine.tsv")
    spec = _spec(f, schemes=["GGUF-Q4_0"])
    assert spec.schemes == ("gguf-q4_0",)  # canonical form
    run = run_sweep(spec, tmp_path / "out", progress=False)
    assert not run.failed
    got = {(r.language, r.item_id): r.value for r in read_records(tmp_path / "out" / "records.jsonl")
           if isinstance(r, Measurement) and r.quantity == "eval.bits_per_byte" and r.condition["scheme"] == "gguf-q4_0"}
    pc = load_corpus(f, languages=["eng_Latn", "heb_Hebr"])
    lm = get_model(spec.models[0], "cpu")
    prev = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        res = evaluate_conditions(lm, pc.items, [quant_condition("gguf-q4_0")], batch_size=2, progress=False)
    finally:
        torch.set_num_threads(prev)
    want = {(r.language, r.item_id): r.value for x in res.values() for r in x.records if r.quantity == "eval.bits_per_byte"}
    assert got.keys() == want.keys() and len(got) == 6
    np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="`prune` combines only with round-to-nearest"):
        _spec(f, schemes=["gguf-q4_0"], prune=["unstructured-0.5"])
    with pytest.raises(ValueError, match="layer_sweep"):
        _spec(f, kind="layer_sweep", schemes=["gguf-q8_0"])
    with pytest.raises(ValueError, match="gguf-q9_9"):
        _spec(f, schemes=["gguf-q9_9"])


def test_resume_refuses_another_corpus_file_or_device(tmp_path):
    f = _tsv(tmp_path / "mine.tsv")
    out = tmp_path / "out"
    run_sweep(_spec(f), out, progress=False)
    assert run_sweep(_spec(f), out, progress=False).computed == []  # same inputs: resumes, nothing to do
    _tsv(f, ROWS[:-1] + [("he", "גשם ירד כל הלילה.", "3", "d2")])  # the file changes
    with pytest.raises(SweepInputsError, match="corpus_sha256"):
        run_sweep(_spec(f), out, progress=False)
    _tsv(f)  # restored: accepted again
    inputs = json.loads((out / "inputs.json").read_text())
    (out / "inputs.json").write_text(json.dumps({**inputs, "device": "cuda:0 (NVIDIA H100)"}))
    with pytest.raises(SweepInputsError, match="device"):
        run_sweep(_spec(f), out, progress=False)


def test_worker_refuses_a_file_changed_after_planning(tmp_path):
    from qdmodels.jobs.worker import run_job

    f = _tsv(tmp_path / "mine.tsv")
    job = expand(_spec(f))[0]
    _tsv(f, ROWS[::-1])
    out = run_job(job)
    assert not out.ok and "the file changed since the sweep was planned" in out.records[0].error.message


def test_bf16_gate_in_specs(tmp_path):
    f = _tsv(tmp_path / "mine.tsv")
    with pytest.raises(ValueError, match="'tiny:llama'.*never measured"):  # pydantic wraps Bf16NotValidatedError
        _spec(f, compute_dtype="bfloat16")
    with pytest.raises(Bf16NotValidatedError, match="'tiny:llama'.*never measured"):
        check_bf16("tiny:llama", ["int4-g16-sym"])
    kw = {"models": ["smollm2-135m"], "corpus": "ntrex128", "languages": ["eng", "heb"], "compute_dtype": "bfloat16"}
    with pytest.raises(ValueError, match="'int8-g64-sym' is not validated.*fp32 CI half-width"):
        SweepSpec(name="b", schemes=["int8-g64-sym"], **kw)
    assert SweepSpec(name="b", schemes=["int4-g64-sym", "int3-g64-sym"], **kw).compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match="`compute_dtype` must be 'float32' for kind='layer_sweep'"):
        SweepSpec(name="b", kind="layer_sweep", schemes=["int4-g64-sym"], **kw)
    with pytest.warns(UserWarning, match="not validated"):
        assert len(check_bf16("smollm2-135m", ["int8-g64-sym"], on_fail="warn")) == 1


def test_bf16_verdicts_follow_the_saved_run():
    """Oracle: the ratios recomputed from the per-language rows of the saved screening run."""
    result = json.loads((ROOT / "analyses" / "bf16_screening" / "result.json").read_text())
    frac = result["fraction_of_ci_half_width"]
    verdicts = bf16_verdicts()
    for run in result["runs"]:
        for scheme in run["schemes"]:
            rows = [r for r in run["rows"] if r["scheme"] == scheme]
            ratios = [abs(r["estimate_bf16"] - r["estimate_fp32"]) / r["ci_half_width_fp32"] for r in rows]
            v = verdicts[(run["model"], scheme)]
            np.testing.assert_allclose(max(v["max_ratio_delta"], v["max_ratio_did"]), max(ratios), rtol=1e-12)
            assert v["validated"] is (max(ratios) < frac)


def test_cli_sweep_run_with_corpus_device_and_dtype(tmp_path):
    f = _tsv(tmp_path / "mine.tsv")
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"name": "cli", "models": ["tiny:llama"], "corpus": "inline",
                                    "texts": {"eng_Latn": ["x y."], "heb_Hebr": ["א ב."]}, "schemes": ["int4-g16-sym"]}),
                    encoding="utf-8")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(spec), "--corpus", str(f), "--device", "cpu", "--out", str(out),
                                 "--no-progress"])
    assert r.exit_code == 0, r.output
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    assert {x.corpus.sha256 for x in read_records(out / "records.jsonl")} == {sha}
    r = CliRunner().invoke(app, ["run", str(spec), "--corpus", str(f), "--dtype", "bfloat16", "--out", str(out)])
    assert r.exit_code == 2 and "never measured" in r.output
    r = CliRunner().invoke(app, ["run", str(spec), "--corpus", str(f), "--dtype", "float16", "--out", str(out)])
    assert r.exit_code == 2 and "--dtype" in r.output
