"""Calibration-set composition: budget equality, determinism, language purity, the test-split guard."""

from __future__ import annotations

import pytest
import torch

from qdmodels.compress.calibration_sets import (
    CalibrationLeakError,
    build_calibration,
    check_calibration_items,
)
from qdmodels.eval.encoding import text_items
from qdmodels.models.tiny import tiny_tokenizer
from qdstats.records import CorpusRef

TEXT = {
    "eng_Latn": [f"English sentence number {k} about the weather and the news." for k in range(20)],
    "heb_Hebr": [f"משפט עברי מספר {k} על מזג האוויר והחדשות." for k in range(20)],
    "fin_Latn": [f"Suomenkielinen lause numero {k} säästä ja uutisista." for k in range(20)],
}


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def pool():
    return text_items(TEXT)


@pytest.mark.parametrize("comp,kw", [("eng", {}), ("multi", {}), ("target", {"target": "heb_Hebr"}),
                                     ("proportional", {"weights": {"eng_Latn": 2, "heb_Hebr": 1, "fin_Latn": 1}})])
def test_budget_equal_and_languages(tok, pool, comp, kw) -> None:
    cal = build_calibration(tok, pool, composition=comp, n_sequences=8, seq_len=12, seed=0, **kw)
    assert cal.input_ids.shape == (8, 12) and cal.n_tokens == 96
    ctx = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    assert torch.all(cal.input_ids[:, 0] == ctx)
    per = cal.sequences_per_language
    expected = {"eng": {"eng_Latn": 8}, "multi": {"eng_Latn": 3, "fin_Latn": 3, "heb_Hebr": 2},
                "target": {"heb_Hebr": 8}, "proportional": {"eng_Latn": 4, "heb_Hebr": 2, "fin_Latn": 2}}[comp]
    assert per == expected
    assert cal.key == comp
    assert cal.condition() == {"calibration": comp, "calib_tokens": 96, "calib_seed": 0}


def test_rows_are_language_pure(tok, pool) -> None:
    """Each row's tokens come from its own language's text only."""
    cal = build_calibration(tok, pool, composition="multi", n_sequences=6, seq_len=10, seed=1)
    for row, lang in zip(cal.input_ids, cal.languages):
        text = tok.decode(row[1:].tolist())
        if lang == "heb_Hebr":
            assert any("\u0590" <= ch <= "\u05ff" for ch in text)
        else:
            assert not any("\u0590" <= ch <= "\u05ff" for ch in text)


def test_deterministic_by_seed(tok, pool) -> None:
    a = build_calibration(tok, pool, composition="multi", n_sequences=6, seq_len=10, seed=3)
    b = build_calibration(tok, pool, composition="multi", n_sequences=6, seq_len=10, seed=3)
    c = build_calibration(tok, pool, composition="multi", n_sequences=6, seq_len=10, seed=4)
    assert torch.equal(a.input_ids, b.input_ids) and a.sha256 == b.sha256
    assert not torch.equal(a.input_ids, c.input_ids)


def test_adding_a_language_keeps_other_samples(tok, pool) -> None:
    """Per-language shuffles are seeded by (seed, language): English rows do not depend on the other languages."""
    a = build_calibration(tok, pool, composition="multi", languages=["eng_Latn", "heb_Hebr"], n_sequences=4,
                          seq_len=10, seed=0)
    b = build_calibration(tok, pool, composition="eng", n_sequences=2, seq_len=10, seed=0)
    eng_a = a.input_ids[[i for i, lang in enumerate(a.languages) if lang == "eng_Latn"]]
    assert torch.equal(eng_a, b.input_ids)


def test_test_split_refused() -> None:
    ref = CorpusRef(corpus_id="ntrex128", split="test", sha256="0" * 64)
    bad = text_items({"eng_Latn": ["a test sentence"]}, corpus=ref)
    with pytest.raises(CalibrationLeakError, match="never come from the test split"):
        check_calibration_items(bad)
    with pytest.raises(CalibrationLeakError):
        build_calibration(tiny_tokenizer(), bad, n_sequences=1, seq_len=4)
    dev_ref = CorpusRef(corpus_id="ntrex128", split="dev", sha256="0" * 64)
    unmarked = text_items({"eng_Latn": ["a sentence"]}, corpus=dev_ref)  # split=None on the item
    with pytest.raises(CalibrationLeakError):
        check_calibration_items(unmarked)
    ok = [it.model_copy(update={"split": "dev"}) for it in unmarked]
    check_calibration_items(ok)


def test_check_disjoint(tok, pool) -> None:
    cal = build_calibration(tok, pool, composition="eng", n_sequences=2, seq_len=10, seed=0)
    used = [it for it in pool if (it.language, it.item_id) in set(cal.source_items)]
    assert used
    with pytest.raises(CalibrationLeakError, match="part of the calibration set"):
        cal.check_disjoint(used[:1])
    cal.check_disjoint(text_items({"eng_Latn": ["x"]}, prefix="held"))


def test_bad_options(tok, pool) -> None:
    with pytest.raises(ValueError, match="`composition`"):
        build_calibration(tok, pool, composition="multilingual")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`target` is required"):
        build_calibration(tok, pool, composition="target")
    with pytest.raises(ValueError, match="`target` is only used"):
        build_calibration(tok, pool, composition="eng", target="heb_Hebr")
    with pytest.raises(ValueError, match="no items for language 'deu_Latn'"):
        build_calibration(tok, pool, composition="target", target="deu_Latn")
    with pytest.raises(ValueError, match="needs"):
        build_calibration(tok, pool, composition="eng", n_sequences=1000, seq_len=64)
    with pytest.raises(ValueError, match="`weights` must be finite"):
        build_calibration(tok, pool, composition="proportional", weights={"eng_Latn": -1, "heb_Hebr": 1, "fin_Latn": 1})
