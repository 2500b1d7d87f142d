"""The seed-claim specs in analyses/claims run end to end on synthetic records shaped like qdmodels output
(condition keys scheme/protect/prune, NTREX test split, model families llama/gemma3). Records are generated
here with planted effects; they are not measurements."""

from __future__ import annotations

from pathlib import Path

import pytest
from claims_synth import LANGS, bpb_records, model_ref

from qdstats.claims import build_claims_table, load_specs
from qdstats.records import CorpusRef

ROOT = Path(__file__).resolve().parents[3]
NTREX_TEST = CorpusRef(corpus_id="ntrex128", split="test", sha256="2" * 64)


def _fast(specs, **extra):
    return [s.model_copy(update={"n_resamples": 999, **extra}) for s in specs]


@pytest.mark.slow
def test_h1_seed_spec_on_synthetic_sweep():
    specs = [s for s in load_specs(ROOT / "analyses" / "claims" / "H1_int4.yaml") if s.params["model"] == "llama"]
    effects = {lang: (0.08 if lang == "heb_Hebr" else 0.0) for lang in LANGS}
    scheme = specs[0].params["treatment"]["scheme"]  # follow the committed spec (it names the quantization scheme)
    recs = bpb_records(effects=effects, n_items=200, seed=0, corpus=NTREX_TEST,
                       model=model_ref("SmolLM2-135M-Instruct.Q4_1.gguf", n_params=134_515_008, family="llama"),
                       baseline={"scheme": "fp32", "protect": "none", "prune": "none"},
                       treatment={"scheme": scheme, "protect": "none", "prune": "none"})
    assert {s.specifications for s in specs} == {"units"}  # the committed spec runs the specification curve
    # the synthetic sweep has bits per byte only (the curve needs eval.nll_sum & co.: tests/qdstats/claims/test_speccurve.py)
    t = build_claims_table(_fast(specs, specifications="none"), recs)
    v = t.verdicts()
    assert v["H1.int4.llama.heb_Hebr"] == "supported"
    assert all(v[f"H1.int4.llama.{lang}"] in ("not_supported", "inconclusive") for lang in LANGS[2:])
    assert {r.family_size for r in t.rows} == {7}
    heb = t.row("H1.int4.llama.heb_Hebr")
    # 8 languages (< 10) and one model per claim: two letters off; the "< 10 languages" warning is not counted twice
    assert (heb.grade, heb.grade_reasons) == ("C", ("few_languages", "single_model"))


def test_h5_seed_spec_is_insufficient_with_the_embedded_models():
    specs = load_specs(ROOT / "analyses" / "claims" / "H5.yaml")
    scheme = specs[0].params["then_params"]["treatment"]["scheme"]
    recs = []
    for i, (name, size, fam) in enumerate((("SmolLM2-135M-Instruct.Q4_1.gguf", 134_515_008, "llama"),
                                           ("gemma-3-270m-q4_k_m.gguf", 268_098_176, "gemma3"))):
        recs += bpb_records(effects={"eng_Latn": 0.0, "heb_Hebr": 0.1}, n_items=5, seed=i, corpus=NTREX_TEST,
                            model=model_ref(name, n_params=size, family=fam),
                            baseline={"scheme": "fp32", "protect": "none", "prune": "none"},
                            treatment={"scheme": scheme, "protect": "none", "prune": "none"})
    row = build_claims_table(specs, recs).rows[0]
    assert row.verdict == "insufficient_data"
    assert "within one 'family'" in row.message and "gemma3: 1" in row.message and "llama: 1" in row.message
