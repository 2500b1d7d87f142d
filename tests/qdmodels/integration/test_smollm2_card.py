"""`make_card` on the real SmolLM2-135M and NTREX-128 with small limits (skips without the model or the data)."""

from __future__ import annotations

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_smollm2_card_small(smollm2, shared_data_dir, tmp_path):
    from qdmodels.workflows.card import make_card

    run = make_card(loaded=smollm2, corpus="ntrex128", languages=["eng_Latn", "kor_Hang"], quants=["int3-g64-sym"],
                    initial_items=6, max_items=6, budget_minutes=10, n_resamples=499, sensitivity="none",
                    data_dir=shared_data_dir, out_dir=tmp_path / "card", log=lambda s: None)
    card = json.loads(run.json.read_text(encoding="utf-8"))
    (h,) = card["headlines"]
    assert h["condition"] == "int3-g64-sym" and set(h["verdicts"]) == {"kor_Hang"}
    # INT3 raises bits per byte for both languages (the claims table's H1.int3 rows: supported for Korean)
    deltas = {r["language"]: r["estimate"] for r in card["did"]}
    assert all(v > 0.05 for v in deltas.values()), deltas
    prec = {r["language"]: r for r in card["precision"]}
    assert prec["kor_Hang"]["n"] == 6 and prec["eng_Latn"]["n"] == 6
    assert card["claims"] and all(r["claim_id"].startswith("H1.int3.llama.kor_Hang") for r in card["claims"])
