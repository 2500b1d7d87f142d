"""Integration: records made by the real producers (qdmodels evaluation, layer sweep, tokenizer parity) on a
tiny random model built from a config (no download, SYNTHETIC weights) go through build_report unchanged.

This guards the record shapes the report relies on (per-item pairing, ``condition['sites']`` of sweeps,
CIs in ``attributes``), not any number about a real model.
"""

from __future__ import annotations

import pytest
from numpy.testing import assert_allclose

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture(scope="module")
def producer_records():
    pytest.importorskip("torch")
    from qdmodels.eval.scoring import evaluate_conditions
    from qdstats.records import paired_frame
    from qdmodels.eval.encoding import text_items
    from qdmodels.compress.scheme import QuantScheme
    from qdmodels.eval.sensitivity import sweep_layers
    from qdmodels.models.tiny import tiny_model
    from qdmodels.tokenization.parity import parity_table

    lm = tiny_model("llama", n_layers=2)
    texts = {"eng_Latn": [f"The fox number {i} jumps over the lazy dog." for i in range(5)],
             "heb_Hebr": [f"השועל מספר {i} קופץ מעל הכלב." for i in range(5)],
             "deu_Latn": [f"Der Fuchs Nummer {i} springt über den Hund." for i in range(5)]}
    items = text_items(texts)
    res = evaluate_conditions(lm, items, ["fp32", QuantScheme.parse("int4-g16-sym")], progress=False)
    recs = [r for v in res.values() for r in v.records]
    sweep = sweep_layers(lm, items, "int4-g16-sym", n_resamples=99, progress=False, keep_item_records=True)
    parity = parity_table(lm.tokenizer, texts, n_resamples=99)
    return recs, list(sweep.records), parity, paired_frame(recs)


def test_report_on_producer_records(producer_records, tmp_path):
    from qdstats.report import build_report

    recs, sweep, parity, paired = producer_records
    rep = build_report(recs + sweep + parity, out_dir=tmp_path, n_resamples=199, strict=True)
    assert rep.sections == ("degradation", "sensitivity", "tokenizer")
    # degradation: same Δ as the mean of qdmodels' own paired frame (closed form, rtol 1e-12)
    means = paired.groupby("language")["delta"].mean()
    d = rep.data.degradation.set_index("language")
    assert_allclose(d["estimate"].to_numpy(), means[d.index].to_numpy(), rtol=1e-12)
    # the sweep's per-item records are not whole-model conditions: left out of degradation, with a note
    assert any("compress only some sites" in n for n in rep.data.notes["degradation"])
    assert set(rep.data.degradation["condition_short"]) == {"scheme=int4-g16-sym"}
    # sensitivity: one matrix, sites from condition['sites'], CIs from attributes
    s = rep.data.sensitivity
    assert sorted(set(s["site"])) == ["layers.0", "layers.1"] and s["condition"].nunique() == 1
    sens = {(r.condition["sites"], r.language): r for r in sweep if r.quantity == "sens.delta_bits_per_byte"}
    for _, row in s.iterrows():
        r = sens[(row["site"], row["language"])]
        assert row["value"] == r.value and row["ci_low"] == r.attributes["ci_low"] and row["n"] == r.n
    # tokenizer: premiums exactly as stored
    prem = {r.language: r.value for r in parity if r.quantity == "tok.premium_vs_reference"}
    t = rep.data.tokenizer.set_index("language")["value"]
    assert t.to_dict() == prem
    assert rep.html.exists() and len(rep.figures) == 4  # + the DiD forest
