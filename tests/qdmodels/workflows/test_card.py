"""`qd card` on a tiny model and a tiny corpus file; the adaptive rule and the headline rule on planted data."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from qdmodels.workflows.card import make_card, next_sizes, spread_order
from qdstats.report.headlines import DecisionRule, classify, headline_sentences


@pytest.fixture()
def tiny_corpus(tmp_path):
    rows = ["language\titem_id\tdocument_id\ttext"]
    words = {"eng_Latn": "the cat sat on a mat", "heb_Hebr": "החתול ישב על השטיח", "kor_Hang": "고양이가 매트 위에 앉았다"}
    for d in range(6):
        for k in range(4):
            for lang, w in words.items():
                rows.append(f"{lang}\td{d}s{k}\td{d}\t{w} {d} {k} and more {k * d}")
    p = tmp_path / "tiny.tsv"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return p


def test_card_on_tiny_model_writes_the_three_files(tmp_path, tiny_corpus):
    from qdmodels.models.tiny import tiny_model

    lm = tiny_model("llama")
    run = make_card(loaded=lm, corpus=str(tiny_corpus), languages=["eng_Latn", "heb_Hebr", "kor_Hang"], split=None,
                    quants=["int4-g16-sym", "int3-g16-sym"], initial_items=4, max_items=None, budget_minutes=5,
                    n_resamples=199, sensitivity="proxy", sensitivity_items=2, claims_table=None,
                    out_dir=tmp_path / "card", log=lambda s: None)
    for p in (run.html, run.markdown, run.json, run.records_path):
        assert p.is_file() and p.stat().st_size > 0
    md = run.markdown.read_text(encoding="utf-8")
    order = [md.index(h) for h in ("## Headlines", "## Difference in differences", "## Bit-width ladder",
                                   "## Tokenizer premium", "## Layer × language", "## Achieved precision",
                                   "## Claims", "## Provenance", "## Caveats")]
    assert order == sorted(order)
    card = json.loads(run.json.read_text(encoding="utf-8"))
    assert [h["condition"] for h in card["headlines"]] == ["int4-g16-sym", "int3-g16-sym"]
    assert "Decision rule" in card["decision_rule"]["text"]
    assert {r["language"] for r in card["precision"]} == {"eng_Latn", "heb_Hebr", "kor_Hang"}
    assert card["meta"]["rounds"] and set(card["meta"]["stages_seconds"]) >= {"load", "quantize", "score", "statistics"}
    assert "{'scheme'" not in md and "{'scheme'" not in run.html.read_text(encoding="utf-8")
    # the same seed gives the same numbers
    run2 = make_card(loaded=lm, corpus=str(tiny_corpus), languages=["eng_Latn", "heb_Hebr", "kor_Hang"], split=None,
                     quants=["int4-g16-sym", "int3-g16-sym"], initial_items=4, budget_minutes=5, n_resamples=199,
                     sensitivity="none", claims_table=None, out_dir=tmp_path / "card2", log=lambda s: None)
    c2 = json.loads(run2.json.read_text(encoding="utf-8"))
    assert c2["did"] == card["did"]


def test_next_sizes_stops_at_the_target_on_planted_half_widths():
    """1/sqrt(n) law: a language planted at hw = 0.06 with n = 16 needs 16 * 4 * 1.1 = 71 items; growth caps at 2n."""
    pool = {"eng": 1000, "kor": 1000, "heb": 1000}
    n = {"eng": 16, "kor": 16, "heb": 16}
    sizes = next_sizes(n, {"kor": 0.06, "heb": 0.029}, target=0.03, pool=pool, reference="eng", growth=10)
    assert sizes["kor"] == math.ceil(16 * (0.06 / 0.03) ** 2 * 1.1)
    assert sizes["heb"] == 16 and sizes["eng"] == sizes["kor"]
    # simulate the loop with hw = c / sqrt(n): it stops exactly when c / sqrt(n) <= target
    c = 0.5
    n = {"eng": 8, "kor": 8}
    for _ in range(20):
        hw = {"kor": c / math.sqrt(n["kor"])}
        new = next_sizes(n, hw, target=0.03, pool={"eng": 10**6, "kor": 10**6}, reference="eng")
        if new == n:
            break
        n = new
    assert c / math.sqrt(n["kor"]) <= 0.03 < c / math.sqrt(n["kor"] / 2.0)


def test_spread_order_is_deterministic_and_spreads_over_documents():
    from types import SimpleNamespace as S

    its = [S(item_id=f"d{d}.{k}", document_id=f"d{d}") for d in range(5) for k in range(3)]
    a, b = spread_order(its, seed=3), spread_order(its, seed=3)
    assert [x.item_id for x in a] == [x.item_id for x in b]
    assert len({x.document_id for x in a[:5]}) == 5 and sorted(x.item_id for x in a) == sorted(x.item_id for x in its)


@pytest.mark.parametrize(("did", "lo", "hi", "expected"), [
    (0.35, 0.30, 0.41, "more"), (0.005, 0.001, 0.009, "same"), (-0.2, -0.3, -0.1, "less"),
    (0.02, -0.01, 0.05, "unclear"), (0.0, -0.029, 0.029, "same"), (float("nan"), 0, 1, "unclear"),
])
def test_decision_rule(did, lo, hi, expected):
    assert classify(did, lo, hi, DecisionRule(min_effect=0.01, margin=0.03)) == expected


def test_headline_sentences_follow_the_rule_on_planted_data():
    t = pd.DataFrame({
        "condition_short": ["int4-g64-sym"] * 4,
        "language": ["eng_Latn", "kor_Hang", "zho_Hans", "heb_Hebr"],
        "did": [0.0, 0.35, 0.20, 0.004], "did_ci_low": [0.0, 0.30, 0.15, -0.02], "did_ci_high": [0.0, 0.41, 0.26, 0.025]})
    names = {"eng_Latn": "English", "kor_Hang": "Korean", "zho_Hans": "Chinese", "heb_Hebr": "Hebrew"}
    (h,) = headline_sentences(t, names=names)
    assert h.sentence.startswith("INT4 (int4-g64-sym): Korean (+0.350 [0.300, 0.410]) and Chinese (+0.200")
    assert "lose more bit/byte than English; Hebrew (+0.004" in h.sentence
    assert h.verdicts == {"kor_Hang": "more", "zho_Hans": "more", "heb_Hebr": "same"}
