"""Integration on the real SmolLM2-135M: GPTQ int3 beats RTN int3 on held-out NTREX dev sentences (bits per byte),
with English dataset_build calibration (small limits). Marked slow + integration; skipped without the model/data."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_gptq_int3_beats_rtn_on_heldout_bpb(smollm2) -> None:
    from qdmodels.calibrated import gptq_condition
    from qdmodels.calibration import build_calibration, calibration_pool
    from qdmodels.corpora import load_ntrex
    from qdmodels.evaluation import evaluate_conditions, paired_frame

    try:
        items = load_ntrex(["eng_Latn", "heb_Hebr"], split="dev", limit=6).items
    except Exception as exc:  # data directory absent
        pytest.skip(f"NTREX not available: {exc}")
    try:  # dataset_build's files are read from site-packages (the package itself is not imported)
        pool = calibration_pool(["eng_Latn"], sources=("dataset_build",))
    except Exception as exc:
        pytest.skip(f"dataset_build text not available: {exc}")
    cal = build_calibration(smollm2.tokenizer, pool, composition="eng", n_sequences=16, seq_len=128, seed=0)
    flat = [it for v in items.values() for it in v]
    cal.check_disjoint(flat)
    res = evaluate_conditions(smollm2, flat, ["fp32", "int3-g64-sym", gptq_condition("int3-g64-sym", cal)],
                              batch_size=12, progress=False)
    frame = paired_frame([r for er in res.values() for r in er.records])
    rtn = frame[frame.scheme == "int3-g64-sym"].set_index(["language", "item_id"]).delta
    gq = frame[frame.scheme == "int3-g64-sym-gptq"].set_index(["language", "item_id"]).delta
    gq = gq.loc[rtn.index]
    # the mean degradation is lower under GPTQ overall and for each language
    assert gq.mean() < rtn.mean()
    for lang in ("eng_Latn", "heb_Hebr"):
        assert gq.loc[lang].mean() < rtn.loc[lang].mean(), lang
    assert np.isfinite(gq.values).all()
