"""The default batching of `evaluate` is the token-budget path, and its records equal the fixed-batch ones.

Oracle: the same items scored one at a time (``batch_size=1``: no padding at all) and in fixed 16-item batches.
Tolerance: bits per byte within 1e-6 (measured: the largest |difference| on these items is below 1e-7 bits/byte on
the tiny models; on 320 NTREX sentences with SmolLM2 the default, fixed-batch and token-budget paths have the same
largest deviation from a naive per-sentence HF loop, 2.9e-3 nats, benchmarks/results/bench_eval.json).
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from qdmodels.eval.batching import DEFAULT_MAX_BATCH_TOKENS, make_batches
from qdmodels.eval.encoding import encode_items
from qdmodels.eval.scoring import evaluate, evaluate_conditions, text_items
from qdmodels.runtime import context_token

# lengths vary a lot (as across scripts), so a token budget batches differently from fixed batches
_WORDS = ["the", "fox", "ran", "over", "a", "hill", "and", "saw", "the", "dog", "sleeping", "under", "an", "old", "tree", "near", "the", "river", "bank"]
TEXTS = {
    "eng_Latn": [" ".join(_WORDS[: 2 + (7 * k) % 17]) * (1 + k % 5) for k in range(24)],
    "heb_Hebr": ["השועל רץ מעל הגבעה " * (1 + k % 7) for k in range(24)],
}


def _bpb(res) -> np.ndarray:
    return np.array([r.value for r in res.records if r.quantity == "eval.bits_per_byte"])


def test_default_is_the_token_budget():
    for fn in (evaluate, evaluate_conditions):
        assert inspect.signature(fn).parameters["max_batch_tokens"].default == DEFAULT_MAX_BATCH_TOKENS == 1024


def test_cli_eval_default_is_the_token_budget():
    from qdmodels.cli.measure import eval_cmd

    assert inspect.signature(eval_cmd).parameters["max_batch_tokens"].default == DEFAULT_MAX_BATCH_TOKENS


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_default_records_equal_fixed_batches_and_unbatched(tiny_models, family):
    lm = tiny_models[family]
    items = text_items(TEXTS)
    # the test is only meaningful when the budget changes the batches: check that it does on these items
    enc = encode_items(lm.model, lm.tokenizer, items)
    pad = context_token(lm.tokenizer)[0]
    budget = make_batches(enc, batch_size=16, pad_id=pad, max_batch_tokens=DEFAULT_MAX_BATCH_TOKENS)
    fixed = make_batches(enc, batch_size=16, pad_id=pad)
    assert [len(b.encoded) for b in budget] != [len(b.encoded) for b in fixed]
    default = evaluate(lm, None, items, progress=False)
    res_fixed = evaluate(lm, None, items, max_batch_tokens=None, progress=False)
    one = evaluate(lm, None, items, batch_size=1, max_batch_tokens=None, progress=False)
    np.testing.assert_allclose(_bpb(default), _bpb(res_fixed), rtol=0, atol=1e-6, err_msg="default vs fixed")
    np.testing.assert_allclose(_bpb(default), _bpb(one), rtol=0, atol=1e-6, err_msg="default vs unbatched")
    # everything but the value is identical, record by record
    strip = {"value", "provenance"}
    assert [r.model_dump(exclude=strip) for r in default.records] == [r.model_dump(exclude=strip) for r in res_fixed.records]
