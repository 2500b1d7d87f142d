"""``eval.nll_first``: the length-2 supplement (:func:`score_first_token`) equals the full pass of :func:`evaluate`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qdmodels.compress.rtn import quantized
from qdmodels.eval.encoding import text_items
from qdmodels.eval.scoring import evaluate, score_first_token

TEXTS = {
    "eng_Latn": ["The quick brown fox jumps over the lazy dog.", "Hi.", "Quantization hurts some languages more."],
    "heb_Hebr": ["השועל החום המהיר קופץ מעל הכלב העצלן.", "שלום", "בבית הספר לומדים עברית היום."],
}
COND_Q = {"scheme": "int4-g16-sym", "protect": "none", "prune": "none"}


def _direct_first(lm, text: str) -> float:
    """Oracle: unpadded forward of [BOS, first token], float64 log-softmax at position 0."""
    first = lm.tokenizer(text, add_special_tokens=False)["input_ids"][0]
    x = torch.tensor([[lm.tokenizer.bos_token_id, first]])
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(x).logits[0, 0].double(), dim=-1)
    return float(-logp[first])


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_supplement_equals_full_pass(tiny_models, family, tiny_state_guard):
    """Oracle: the ``eval.nll_first`` of the full pass and a direct HF forward; atol 1e-5 (fp32 activations)."""
    lm = tiny_models[family]
    items = text_items(TEXTS)
    for cond, apply in ((None, None), (COND_Q, lambda m: quantized(m, COND_Q["scheme"]))):
        if apply is None:
            full = evaluate(lm, None, items, batch_size=2, condition=cond, progress=False)
        else:
            with quantized(lm.model, COND_Q["scheme"]):
                full = evaluate(lm, None, items, batch_size=2, condition=cond, progress=False)
        sup = score_first_token(lm, items, condition=cond, apply=apply, batch_size=4)
        f = {(r.language, r.item_id): r.value for r in full.records if r.quantity == "eval.nll_first"}
        s = {(r.language, r.item_id): r for r in sup if r.quantity == "eval.nll_first"}
        assert set(f) == set(s) and len(f) == len(items)
        for k, v in f.items():
            np.testing.assert_allclose(s[k].value, v, rtol=0, atol=1e-5, err_msg=str(k))
            assert s[k].condition == full.records[0].condition
            assert s[k].provenance.routine == "qdmodels.eval.scoring.score_first_token"
        if apply is None:  # the fp32 numbers also equal a plain forward
            for it in items:
                np.testing.assert_allclose(f[(it.language, it.item_id)], _direct_first(lm, it.text), atol=1e-5)
        nchar = {(r.language, r.item_id): r.value for r in sup if r.quantity == "eval.n_chars"}
        assert all(nchar[(it.language, it.item_id)] == len(it.text) for it in items)


def test_first_token_is_part_of_the_sum(tiny_gpt2):
    """The first token's NLL is one term of ``nll_sum`` (per-token log-probs, exact)."""
    items = text_items(TEXTS)
    res = evaluate(tiny_gpt2, None, items, keep_token_logprobs=True, progress=False)
    for s, t in zip(res.scores, res.token_logprobs):
        assert s.nll_first == pytest.approx(-t.logprobs[0], abs=0) and 0 < s.nll_first <= s.nll_sum + 1e-9
