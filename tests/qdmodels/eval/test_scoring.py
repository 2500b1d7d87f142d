"""Tests for qdmodels.eval.scoring: per-item NLL / bits per byte, batching, byte spans, paired conditions."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from qdmodels.eval import batching, encoding
from qdmodels.tokenization.offsets import byte_level_alphabet
from qdmodels.eval.scoring import evaluate, evaluate_conditions
from qdstats.records import paired_frame
from qdmodels.eval.encoding import text_items, encoded_byte_spans
from qdmodels.models.tiny import FAMILIES
from qdstats.records import Measurement

TEXTS = {
    "eng_Latn": ["The quick brown fox jumps over the lazy dog.", "Hi.", "Quantization hurts some languages more."],
    "heb_Hebr": ["השועל החום המהיר קופץ מעל הכלב העצלן.", "שלום", "בבית הספר לומדים עברית היום."],
    "zho_Hans": ["敏捷的棕色狐狸跳过了懒狗。", "量化", "语言模型"],
}


@pytest.fixture(scope="module")
def items():
    return text_items(TEXTS)


def _direct_nll(lm, text: str) -> float:
    """Oracle: one unpadded forward of [BOS] + tokens, log-softmax, sum of target log-probs."""
    ids = [lm.tokenizer.bos_token_id] + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(x).logits[0, :-1].double(), dim=-1)
    return float(-logp[torch.arange(len(ids) - 1), x[0, 1:]].sum())


@pytest.mark.parametrize("family", ["gpt2", "llama", "gemma3"])
def test_batched_equals_unbatched(tiny_models, items, family, tiny_state_guard):
    """Oracle: batch_size=1 (no padding). Tolerance 1e-4 nats: padded matmuls reorder fp32 sums."""
    lm = tiny_models[family]
    a = evaluate(lm, None, items, batch_size=4, progress=False)
    b = evaluate(lm, None, items, batch_size=1, progress=False)
    np.testing.assert_allclose([s.nll_sum for s in a.scores], [s.nll_sum for s in b.scores], rtol=0, atol=1e-4,
                               err_msg=family)
    assert [s.item_id for s in a.scores] == [it.item_id for it in items]  # input order kept


def test_matches_direct_forward(tiny_llama, items):
    """Oracle: plain HF forward + float64 log-softmax; atol 1e-5 (fp32 model activations, style §2.8)."""
    res = evaluate(tiny_llama, None, items, batch_size=3, progress=False)
    for it, s in zip(items, res.scores):
        np.testing.assert_allclose(s.nll_sum, _direct_nll(tiny_llama, it.text), rtol=0, atol=1e-5 * max(1, s.n_tokens),
                                   err_msg=it.item_id)


def test_counts_and_bits_per_byte_closed_form(tiny_gpt2, items):
    """Closed form: bpb = nll / ln2 / n_bytes; every text token scored; rtol 1e-12 (same formula)."""
    res = evaluate(tiny_gpt2, None, items, progress=False)
    by = {(r.language, r.item_id, r.quantity): r for r in res.records}
    for it in items:
        n_tok = len(tiny_gpt2.tokenizer(it.text, add_special_tokens=False)["input_ids"])
        g = lambda q: by[(it.language, it.item_id, q)].value
        assert g("eval.n_tokens") == n_tok
        assert g("eval.n_bytes") == len(it.text.encode("utf-8"))
        assert g("eval.n_chars") == len(it.text)
        np.testing.assert_allclose(g("eval.bits_per_byte"), g("eval.nll_sum") / math.log(2) / g("eval.n_bytes"), rtol=1e-12)
        np.testing.assert_allclose(g("eval.bits_per_char"), g("eval.nll_sum") / math.log(2) / g("eval.n_chars"), rtol=1e-12)
        np.testing.assert_allclose(g("eval.nll_per_token"), g("eval.nll_sum") / n_tok, rtol=1e-12)
    r = res.records[0]
    assert r.condition == {"scheme": "fp32", "protect": "none", "prune": "none"}
    assert r.attributes["context_token"] == "bos" and r.attributes["document_id"] == r.item_id
    assert r.model == tiny_gpt2.ref
    assert len(res.records) == 8 * len(items)


def test_eos_context_when_no_bos(tiny_llama, items):
    tok = copy.deepcopy(tiny_llama.tokenizer)
    tok.bos_token = None
    assert tok.bos_token_id is None
    res = evaluate(tiny_llama.model, tok, items[:2], model_ref=tiny_llama.ref, progress=False)
    assert res.records[0].attributes["context_token"] == "eos"
    ref = evaluate(tiny_llama, None, items[:2], progress=False)
    assert res.scores[0].nll_sum != ref.scores[0].nll_sum  # a different context token changes the scores


def test_token_logprobs_sum_to_nll_and_spans_tile(tiny_gpt2, items):
    res = evaluate(tiny_gpt2, None, items, keep_token_logprobs=True, progress=False)
    assert res.token_logprobs is not None
    for tl, s, it in zip(res.token_logprobs, res.scores, items):
        np.testing.assert_allclose(-sum(tl.logprobs), s.nll_sum, rtol=1e-12)
        n = len(it.text.encode("utf-8"))
        assert tl.byte_spans[0][0] == 0 and tl.byte_spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(tl.byte_spans, tl.byte_spans[1:]))
        assert tl.method == "token-bytes"
        assert len(tl.to_frame()) == s.n_tokens


def test_byte_spans_split_multibyte_char(tiny_gpt2):
    """Byte-level BPE splits Hebrew/Chinese characters across tokens; spans must follow the raw bytes."""
    text = "השועל 狐狸 קופץ"
    enc = tiny_gpt2.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans, method = encoded_byte_spans(tiny_gpt2.tokenizer, text, enc["input_ids"], enc["offset_mapping"])
    data = text.encode("utf-8")
    char_starts = {len(text[:i].encode("utf-8")) for i in range(len(text) + 1)}
    assert method == "token-bytes"
    assert any(s not in char_starts for s, _ in spans), "fixture should split a character across tokens"
    decoded = b"".join(data[s:e] for s, e in spans)
    assert decoded == data
    # each span holds exactly that token's bytes
    dec = byte_level_alphabet()
    for (s, e), tok in zip(spans, tiny_gpt2.tokenizer.convert_ids_to_tokens(enc["input_ids"])):
        assert data[s:e] == bytes(dec[c] for c in tok)


def test_byte_spans_offsets_fallback(tiny_gpt2, monkeypatch):
    """When raw bytes are unavailable, offsets are used; a split character goes to its first token."""
    monkeypatch.setattr(encoding, "_raw_token_bytes", lambda tok, ids: None)
    text = "שלום 狐"
    enc = tiny_gpt2.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans, method = encoded_byte_spans(tiny_gpt2.tokenizer, text, enc["input_ids"], enc["offset_mapping"])
    assert method == "offsets"
    assert spans[-1][1] == len(text.encode("utf-8"))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    with pytest.raises(ValueError, match="offsets"):
        encoded_byte_spans(tiny_gpt2.tokenizer, text, enc["input_ids"], None)


@settings(max_examples=25)
@given(st.text(alphabet=st.sampled_from(list("ab שלוםعربي狐狸한국é\u0301z")), min_size=1, max_size=30))
def test_byte_spans_property_tile_text(tiny_gpt2, text):
    ids = tiny_gpt2.tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        return
    spans, method = encoded_byte_spans(tiny_gpt2.tokenizer, text, ids)
    data = text.encode("utf-8")
    assert method == "token-bytes"
    assert spans[0][0] == 0 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(spans, spans[1:]))


def test_bfloat16_close_to_fp32(tiny_llama, items):
    """bf16 autocast vs fp32: relative 5e-2 on bits per byte (bf16 has 8 mantissa bits)."""
    a = evaluate(tiny_llama, None, items[:3], progress=False)
    b = evaluate(tiny_llama, None, items[:3], compute_dtype="bfloat16", progress=False)
    np.testing.assert_allclose([s.bits_per_byte for s in b.scores], [s.bits_per_byte for s in a.scores], rtol=5e-2)
    assert b.records[0].attributes["compute_dtype"] == "bfloat16"


def test_errors(tiny_gpt2, items):
    with pytest.raises(ValueError, match="`batch_size` must be >= 1"):
        evaluate(tiny_gpt2, None, items, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="`compute_dtype`.*Did you mean 'bfloat16'"):
        evaluate(tiny_gpt2, None, items, compute_dtype="bfloat61", progress=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`items` is empty"):
        evaluate(tiny_gpt2, None, [], progress=False)
    with pytest.raises(ValueError, match="more than once"):
        evaluate(tiny_gpt2, None, [items[0], items[0]], progress=False)
    with pytest.raises(ValueError, match="`condition` must contain the canonical keys"):
        evaluate(tiny_gpt2, None, items, condition={"scheme": "int4"}, progress=False)
    with pytest.raises(ValueError, match="`tokenizer` is required"):
        evaluate(tiny_gpt2.model, None, items, model_ref=tiny_gpt2.ref, progress=False)
    with pytest.raises(ValueError, match="`model_ref` is required"):
        evaluate(tiny_gpt2.model, tiny_gpt2.tokenizer, items, progress=False)
    with pytest.raises(TypeError, match="ParallelItem"):
        evaluate(tiny_gpt2, None, ["plain text"], progress=False)
    long = text_items({"eng_Latn": ["word " * 400]})
    with pytest.raises(ValueError, match="exceed the model's context of 256 positions.*never truncated"):
        evaluate(tiny_gpt2, None, long, progress=False)
    with pytest.raises(ValueError, match="zero tokens"):
        evaluate(tiny_gpt2, None, text_items({"eng_Latn": [""]}), progress=False)


def test_evaluate_conditions_paired_and_restored(tiny_llama, items, tiny_state_guard):
    res = evaluate_conditions(tiny_llama, items, ["fp32", "int3-ch-sym", "int8-ch-sym"], progress=False)
    fp, q3, q8 = res.values()
    alone = evaluate(tiny_llama, None, items, progress=False)
    assert [s.nll_sum for s in fp.scores] == [s.nll_sum for s in alone.scores]  # restored weights -> identical
    assert [(s.language, s.item_id) for s in q3.scores] == [(s.language, s.item_id) for s in fp.scores]
    assert q3.records[0].condition["scheme"] == "int3-ch-sym"
    d3 = np.abs([a.nll_sum - b.nll_sum for a, b in zip(q3.scores, fp.scores)])
    d8 = np.abs([a.nll_sum - b.nll_sum for a, b in zip(q8.scores, fp.scores)])
    assert d3.min() > 0, "quantization must change every item's score"
    assert d8.mean() < d3.mean()
    with pytest.raises(ValueError, match="duplicates"):
        evaluate_conditions(tiny_llama, items, ["fp32", "fp32"], progress=False)


def test_paired_frame_and_disparity(tiny_llama, items, tiny_state_guard):
    from qdstats.disparity import degradation

    res = evaluate_conditions(tiny_llama, items, ["fp32", "int3-ch-sym"], progress=False)
    recs = [r for er in res.values() for r in er.records]
    pf = paired_frame(recs)
    assert len(pf) == len(items)
    np.testing.assert_allclose(pf["delta"], pf["compressed"] - pf["full"], rtol=0, atol=0)
    assert set(pf["scheme"]) == {"int3-ch-sym"}
    deg = degradation(pf, cluster="document_id", n_resamples=200, kind="percentile", rng=0, resampling="joint")
    for lang in TEXTS:
        np.testing.assert_allclose(deg[lang].estimate, pf[pf.language == lang]["delta"].mean(), rtol=1e-12)
    only_q = [r for r in recs if r.condition["scheme"] != "fp32"]
    with pytest.raises(ValueError, match="no reference records"):
        paired_frame(only_q)
    missing = [r for r in recs if not (r.condition["scheme"] == "fp32" and r.item_id == "text:0")]
    with pytest.raises(ValueError, match="has no reference measurement"):
        paired_frame(missing)


def test_records_roundtrip(tiny_gpt2, items):
    res = evaluate(tiny_gpt2, None, items[:1], progress=False)
    for r in res.records:
        assert Measurement.model_validate_json(r.model_dump_json()) == r
    assert isinstance(res.frame(), pd.DataFrame) and len(res.frame()) == 1


# ----------------------------------------------------------------------------- CLI (qd eval)
def _cli_app():
    import typer

    from qdmodels.cli.measure import register

    app = typer.Typer()
    register(app)
    return app


def test_cli_eval(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from qdmodels.cli import _common
    from qdstats.records import read_records

    monkeypatch.setattr(_common, "load_items", lambda corpus, langs, split, limit, data_dir, sample="first": text_items(
        {k: v[: limit or 3] for k, v in TEXTS.items() if k in langs.split(",")}))
    out = tmp_path / "e.jsonl"
    runner = CliRunner()
    r = runner.invoke(_cli_app(), ["eval", "--model", "tiny:llama", "--langs", "eng_Latn,heb_Hebr", "--limit", "2",
                                   "--quant", "int4-ch-sym", "--protect", "layers=0", "--out", str(out), "--no-progress",
                                   "--max-batch-tokens", "64"])
    assert r.exit_code == 0, r.output
    recs = read_records(out)
    assert len(recs) == 2 * 4 * 8
    assert {(x.condition["scheme"], x.condition["protect"]) for x in recs} == {("fp32", "none"), ("int4-ch-sym", "layers=0")}
    assert len(paired_frame(recs)) == 4
    fresh = tmp_path / "bad.jsonl"
    bad = runner.invoke(_cli_app(), ["eval", "--model", "tiny:llama", "--protect", "layers=0", "--out", str(fresh)])
    assert bad.exit_code == 2 and "`--protect` needs `--quant`" in bad.output
    bad = runner.invoke(_cli_app(), ["eval", "--model", "tiny:lama", "--out", str(fresh)])
    assert bad.exit_code == 2 and "Did you mean 'llama'" in bad.output
    bad = runner.invoke(_cli_app(), ["eval", "--model", "tiny:llama", "--max-batch-tokens", "-1", "--out", str(fresh)])
    assert bad.exit_code == 2 and "max-batch-tokens" in bad.output
    assert not fresh.exists()


@pytest.mark.parametrize("family", FAMILIES)
def test_packed_head_equals_full_logits(tiny_models, items, family):
    """Oracle: log-probs from the full (B, L, V) logits. The packed path evaluates the output head only at the
    scored positions (Gemma's soft-capping included); atol 1e-5 nats per token (fp32 GEMM blocking differs)."""
    from qdmodels.eval.batching import (
        batch_logprobs,
        logprobs_from_logits,
        make_batches,
        run_batch,
        scored_positions_only,
    )
    from qdmodels.runtime import context_token
    from qdmodels.eval.encoding import encode_items

    lm = tiny_models[family]
    enc = encode_items(lm.model, lm.tokenizer, items)
    batches = make_batches(enc, batch_size=3, pad_id=context_token(lm.tokenizer)[0])
    with torch.no_grad():
        for b in batches:
            full = logprobs_from_logits(run_batch(lm.model, b).logits, b)
            with scored_positions_only(lm.model, b) as packed:
                assert packed
                logits = run_batch(lm.model, b).logits
            assert logits.shape[:2] == (1, sum(e.n_tokens for e in b.encoded))  # padding never reached the head
            for x, y in zip(batch_logprobs(lm.model, b), full):
                np.testing.assert_allclose(x, y, rtol=0, atol=1e-5, err_msg=family)
    assert not lm.model.get_output_embeddings()._forward_pre_hooks  # hook removed


@given(lengths=st.lists(st.integers(1, 60), min_size=1, max_size=40), batch_size=st.integers(1, 8),
       budget=st.integers(1, 200))
def test_token_budget_batches_partition_and_respect_budget(lengths, batch_size, budget):
    """Every item lands in exactly one batch; a batch of more than one item has rows x padded length <= budget
    and at most batch_size rows."""
    chunks = batching._chunks(lengths, batch_size, budget)
    assert sorted(i for c in chunks for i in c) == list(range(len(lengths)))
    for c in chunks:
        assert len(c) <= batch_size
        if len(c) > 1:
            assert len(c) * max(lengths[i] for i in c) <= budget


def test_token_budget_equals_fixed_batching(tiny_llama, items):
    """Batch composition must not change the numbers beyond fp32 round-off (atol 1e-4 nats, as batched vs
    unbatched)."""
    a = evaluate(tiny_llama, None, items, batch_size=4, progress=False)
    b = evaluate(tiny_llama, None, items, batch_size=4, max_batch_tokens=12, progress=False)
    np.testing.assert_allclose([s.nll_sum for s in a.scores], [s.nll_sum for s in b.scores], rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        evaluate(tiny_llama, None, items, max_batch_tokens=0, progress=False)
