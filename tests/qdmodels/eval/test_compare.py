"""Released checkpoints compared with their original: items paired across models (qdmodels.eval.compare)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdmodels.eval.compare import evaluate_checkpoints
from qdmodels.eval.encoding import text_items
from qdmodels.eval.scoring import evaluate
from qdmodels.models.loading import load_model
from qdmodels.models.tiny import tiny_model
from qdstats.records import paired_frame

TEXTS = {"eng_Latn": ["The quick brown fox jumps.", "A dog sleeps in the sun.", "Rain is falling."],
         "heb_Hebr": ["השועל החום קופץ.", "כלב ישן בשמש.", "יורד גשם."]}


def _checkpoint(lm, path, ggml_type=None):
    """Save ``lm`` as a local checkpoint, its projection weights round-tripped through a real GGUF block format
    (gguf-py's own quantize/dequantize, blocks of 32 along the input dimension as llama.cpp stores them)."""
    from gguf import GGMLQuantizationType, quants

    sd = {k: v.clone() for k, v in lm.model.state_dict().items()}
    if ggml_type is not None:
        qtype = getattr(GGMLQuantizationType, ggml_type)
        for k, v in sd.items():
            if v.ndim == 2 and "embed" not in k and v.shape[1] % 32 == 0:
                x = v.numpy().astype(np.float32)
                sd[k] = torch.from_numpy(quants.dequantize(quants.quantize(x, qtype), qtype).reshape(x.shape).copy())
    lm.model.save_pretrained(path, state_dict=sd)
    lm.tokenizer.save_pretrained(path)
    return load_model(path)


@pytest.fixture(scope="module")
def base():
    return tiny_model("llama", seed=7)


def test_same_weights_give_zero_delta_and_match_separate_evaluations(base, tmp_path):
    items = text_items(TEXTS)
    copy = _checkpoint(base, tmp_path / "copy")
    res = evaluate_checkpoints(base, [copy], items, progress=False)
    frame = paired_frame([r for er in res.values() for r in er.records], across_models=True)
    assert len(frame) == 6 and np.all(frame["delta"] == 0.0)  # identical fp32 weights: exactly equal
    assert set(frame["scheme"]) == {"checkpoint"}
    alone = evaluate(copy, None, items, progress=False, condition=next(iter(res.values())).records[0].condition)
    assert [r.value for r in alone.records] == [r.value for r in res[next(iter(res))].records]


def test_q8_0_checkpoint_moves_less_than_q4_0(base, tmp_path):
    items = text_items(TEXTS)
    q8 = _checkpoint(base, tmp_path / "q8", "Q8_0")
    q4 = _checkpoint(base, tmp_path / "q4", "Q4_0")
    res = evaluate_checkpoints(base, [q8, q4], items, progress=False)
    recs = [r for er in res.values() for r in er.records]
    frame = paired_frame(recs, across_models=True)
    by = frame.groupby("condition")["delta"].apply(lambda d: float(np.abs(d).mean()))
    (c8,) = [c for c in by.index if q8.ref.sha256 in c]
    (c4,) = [c for c in by.index if q4.ref.sha256 in c]
    assert 0 < by[c8] < by[c4] / 5, by
    assert all(r.model.sha256 in (base.ref.sha256, q8.ref.sha256, q4.ref.sha256) for r in recs)


def test_refusals(base):
    items = text_items(TEXTS)
    with pytest.raises(ValueError, match="`others` must name at least one model"):
        evaluate_checkpoints(base, [], items)
    with pytest.raises(ValueError, match="appears twice"):
        evaluate_checkpoints(base, [base], items)
    with pytest.raises(TypeError, match="LoadedModel"):
        evaluate_checkpoints(base, [base.model], items)


def test_cli_compare_scores_both_models_and_pairs_them(base, tmp_path):
    from typer.testing import CliRunner

    from qdmodels.cli.main import app
    from qdstats.records import read_records

    q4 = _checkpoint(base, tmp_path / "q4", "Q4_0")
    orig = _checkpoint(base, tmp_path / "orig")
    f = tmp_path / "t.tsv"
    f.write_text("item_id\tlanguage\ttext\n1\teng\tThe fox runs.\n1\theb\tהשועל רץ.\n2\teng\tA dog.\n2\theb\tכלב.\n",
                 encoding="utf-8")
    out = tmp_path / "ck.jsonl"
    res = CliRunner().invoke(app, ["eval", "-m", str(tmp_path / "orig"), "--compare", str(tmp_path / "q4"),
                                   "--corpus", str(f), "--langs", "eng,heb", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    frame = paired_frame(read_records(out), across_models=True)
    assert len(frame) == 4 and (frame["delta"] != 0).any()
    assert {q4.ref.sha256} == {c.split("@")[1].split(",")[0] for c in frame["condition_short"]}
    assert orig.ref.sha256 in set(r.model.sha256 for r in read_records(out))
    bad = CliRunner().invoke(app, ["eval", "-m", str(tmp_path / "orig"), "--compare", str(tmp_path / "q4"),
                                   "--quant", "int4-ch-sym", "--corpus", str(f), "--out", str(tmp_path / "x.jsonl")])
    assert bad.exit_code == 2 and "does not combine" in bad.output
