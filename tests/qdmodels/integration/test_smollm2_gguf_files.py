"""Integration on the real SmolLM2-135M: GGUF checkpoints written by qd, loaded back, compared with their base.

Q8_0 and Q4_0 files are written from the loaded (dequantized fp32) model: the attention and MLP projections in
the block format, everything else (token embedding, norms) in F32, i.e. the selection of the in-process
``gguf-q4_0`` condition's default plan. Each file is loaded as a checkpoint (``load_model(path)``) and compared with
the base by ``evaluate_checkpoints`` on a few NTREX test sentences (English, Hebrew). Slow + integration; skipped
without the model or the data.

Tolerance of "file Δ = in-process Δ": both hold the same dequantized weights (the writer's row permutation of
q/k is undone by transformers' loader, and blocks run along rows), so the per-item bits per byte agree to float
round-off of identical computations; measured max |difference| 0.0 on these items (2026-12-06), asserted < 1e-6.
Measured mean Δ bits per byte (2026-12-06; analyses/gguf_files/checkpoints_result.txt): Q8_0 file eng +0.0039,
heb -0.0016; Q4_0 file eng +0.0010, heb +0.1606 (identical to the gguf-q4_0 condition).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]
LANGS = ["eng_Latn", "heb_Hebr"]


@pytest.fixture(scope="module")
def items():
    from qdmodels.corpora.ntrex import load_ntrex

    data_dir = os.environ.get("QD_DATA_DIR")
    if data_dir is None:
        guess = Path(__file__).resolve().parents[3].parent / "shared" / "data"
        data_dir = str(guess) if guess.is_dir() else None
    try:
        pc = load_ntrex(LANGS, split="test", limit=3, data_dir=data_dir)
    except (FileNotFoundError, OSError, ValueError) as exc:
        msg = f"NTREX-128 not available ({type(exc).__name__}: {exc}); set QD_DATA_DIR"
        print(msg)
        pytest.skip(msg)
    return [it for v in pc.items.values() for it in v]


@pytest.fixture(scope="module")
def outcome(smollm2, items, tmp_path_factory):
    from qdmodels.compress.gguf_files import write_gguf
    from qdmodels.eval.compare import evaluate_checkpoints
    from qdmodels.eval.scoring import evaluate_conditions
    from qdmodels.models.loading import load_model
    from qdstats.records import paired_frame

    d = tmp_path_factory.mktemp("gguf")
    layouts = {q: write_gguf(smollm2, d / f"smollm2-{q}.gguf", quant_type=q) for q in ("Q8_0", "Q4_0")}
    ck = {q: load_model(d / f"smollm2-{q}.gguf", cache_dequantized=False) for q in layouts}
    res = evaluate_checkpoints(smollm2, [ck["Q8_0"], ck["Q4_0"]], items, batch_size=4, progress=False)
    files = paired_frame([r for er in res.values() for r in er.records], across_models=True)
    inproc = evaluate_conditions(smollm2, items, ["fp32", "gguf-q4_0"], batch_size=4, progress=False)
    cond = paired_frame([r for er in inproc.values() for r in er.records])
    return layouts, ck, files, cond


def test_file_layout_matches_the_condition_selection(outcome, smollm2):
    layouts, ck, _, _ = outcome
    for q, lay in layouts.items():
        assert lay.type_counts() == {"F32": 62, q: 210}  # 30 blocks x 7 projections; embedding + 61 norms F32
        assert lay.tensor("token_embd.weight").gguf_type == "F32"
    assert ck["Q4_0"].tokenizer.get_vocab() == smollm2.tokenizer.get_vocab()  # tokenizer copied from the source


def test_q8_0_moves_little_q4_0_more_and_the_file_equals_the_condition(outcome, smollm2):
    _, ck, files, cond = outcome
    d8 = files[files["condition"].str.contains(ck["Q8_0"].ref.sha256)].set_index(["language", "item_id"])["delta"]
    d4 = files[files["condition"].str.contains(ck["Q4_0"].ref.sha256)].set_index(["language", "item_id"])["delta"]
    dc = cond[cond["scheme"] == "gguf-q4_0"].set_index(["language", "item_id"])["delta"]
    print("Q8_0 file", d8.groupby("language").mean().to_dict(), "Q4_0 file", d4.groupby("language").mean().to_dict(),
          "gguf-q4_0 condition", dc.groupby("language").mean().to_dict(),
          "max |file - condition|", float(np.abs(d4 - dc.loc[d4.index]).max()))
    assert len(d8) == len(d4) == 6
    assert np.abs(d8).max() < 0.02, d8
    assert np.abs(d4).mean() > 4 * np.abs(d8).mean()
    np.testing.assert_allclose(d4.to_numpy(), dc.loc[d4.index].to_numpy(), rtol=0, atol=1e-6)
