"""Parity metrics: hand counts on built tokenizers, refusals, record shape."""

from __future__ import annotations

import math
import warnings

import pytest

from qdmodels.tokenization import (
    fertility,
    is_whitespace_delimited,
    parity_frame,
    parity_table,
    text_stats,
)
from qdstats.validation import DegenerateDataWarning


def test_text_stats_hand_counts(wordlevel, sp_fallback):
    s = text_stats(wordlevel, "the dog sat.")
    assert (s.n_tokens, s.n_bytes, s.n_chars, s.n_words, s.n_unk, s.n_byte_fallback) == (4, 12, 12, 3, 1, 0)
    s = text_stats(sp_fallback, "a ל")  # ▁a ▁ <0xD7> <0x9C>
    assert (s.n_tokens, s.n_byte_fallback, s.n_partial_char, s.n_bytes, s.n_chars) == (4, 2, 2, 4, 3)


def test_parity_ratios_of_sums(wordlevel):
    items = {"eng_Latn": ["the cat", "the cat sat ."], "deu_Latn": ["the cat sat . the", "x"],
             "zho_Hans": ["the", "cat"]}
    with pytest.warns(DegenerateDataWarning, match="fertility undefined for zho_Hans"):
        recs = parity_table(wordlevel, items)
    df = parity_frame(recs)
    assert df.loc[("toy-wordlevel", "deu_Latn"), "premium_vs_reference"] == 6 / 6
    assert df.loc[("toy-wordlevel", "zho_Hans"), "premium_vs_reference"] == 2 / 6
    assert df.loc[("toy-wordlevel", "eng_Latn"), "tokens_per_sentence"] == 3.0
    assert df.loc[("toy-wordlevel", "deu_Latn"), "unk_fraction"] == 1 / 6
    assert df.loc[("toy-wordlevel", "deu_Latn"), "bytes_per_token"] == (len("the cat sat . the") + 1) / 6
    assert df.loc[("toy-wordlevel", "deu_Latn"), "byte_premium_vs_reference"] == 18 / 20
    assert math.isnan(df.loc[("toy-wordlevel", "zho_Hans"), "fertility"])
    fert = next(r for r in recs if r.quantity == "tok.fertility" and r.language == "zho_Hans")
    assert fert.warnings and "does not separate words" in fert.warnings[0]
    assert all(r.model.model_id == "toy-wordlevel" and r.model.source == "local" for r in recs)
    assert not any(r.quantity == "tok.byte_fallback_fraction" for r in recs)  # no byte fallback in WordLevel


def test_parity_pairs_parallel_items_by_id(wordlevel):
    from qdmodels.corpora.types import ParallelItem

    def it(lang, i, text):
        return ParallelItem(item_id=f"x:{i}", line=i, document_id=f"d{i % 2}", language=lang, source_code=lang[:3],
                            text=text)

    items = {"eng_Latn": [it("eng_Latn", 0, "the"), it("eng_Latn", 1, "the cat")],
             "fra_Latn": [it("fra_Latn", 1, "cat cat cat cat"), it("fra_Latn", 7, "the")]}
    with pytest.warns(DegenerateDataWarning, match="no eng_Latn counterpart"):
        recs = parity_table(wordlevel, items)
    prem = next(r for r in recs if r.quantity == "tok.premium_vs_reference" and r.language == "fra_Latn")
    assert prem.value == 4 / 2 and prem.n == 1 and prem.warnings


def test_parity_bootstrap_ci_brackets_estimate(wordlevel):
    eng = ["the cat"] * 12
    fra = ["the cat sat"] * 6 + ["the cat sat . ."] * 6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        recs = parity_table(wordlevel, {"eng_Latn": eng, "fra_Latn": fra}, n_resamples=499, rng=3)
    p = next(r for r in recs if r.quantity == "tok.premium_vs_reference" and r.language == "fra_Latn")
    assert p.attributes["ci_low"] < p.value == 2.0 < p.attributes["ci_high"]
    assert p.attributes["n_clusters"] == 12 and p.attributes["ci_method"].startswith("cluster-bootstrap")


def test_parity_bad_input(wordlevel):
    with pytest.raises(ValueError, match="`reference` 'eng_Latn' must be a key"):
        parity_table(wordlevel, {"deu_Latn": ["the"]})
    with pytest.raises(ValueError, match="must be an ISO 639-3"):
        parity_table(wordlevel, {"eng_Latn": ["the"], "german": ["the"]})
    with pytest.raises(TypeError, match="must hold str or ParallelItem"):
        parity_table(wordlevel, {"eng_Latn": [3]})
    with pytest.raises(ValueError, match="`n_resamples`"):
        parity_table(wordlevel, {"eng_Latn": ["the"]}, n_resamples=-1)


def test_fertility_refuses_scripts_without_spaces(wordlevel):
    assert fertility(wordlevel, ["the cat", "sat"], language="eng_Latn") == 1.0
    for lang in ("zho_Hans", "jpn_Jpan", "tha_Thai"):
        assert not is_whitespace_delimited(lang)
        with pytest.raises(ValueError, match=f"`language` '{lang}' is written without spaces"):
            fertility(wordlevel, ["the"], language=lang)
    with pytest.raises(ValueError, match="no whitespace-separated words"):
        fertility(wordlevel, ["  "], language="eng_Latn")


def test_variant_labels_share_a_language_code(wordlevel):
    from qdmodels.corpora.types import ParallelItem

    def items(label, lang, texts):
        return [ParallelItem(item_id=f"x:{i}", line=i, document_id="d", language=lang, source_code=label, text=t)
                for i, t in enumerate(texts)]

    data = {"eng": items("eng", "eng_Latn", ["the cat"]), "eng-GB": items("eng-GB", "eng_Latn", ["the cat sat"]),
            "fra-CA": items("fra-CA", "fra_Latn", ["the"])}
    recs = parity_table(wordlevel, data, reference="eng")
    df = parity_frame(recs)
    assert df.loc[("toy-wordlevel", "eng-GB"), "premium_vs_reference"] == 1.5
    assert {r.language for r in recs if r.attributes["label"] == "eng-GB"} == {"eng_Latn"}
    mixed = {"eng": items("eng", "eng_Latn", ["a"]) + items("x", "fra_Latn", ["b", "c"])[1:]}
    with pytest.raises(ValueError, match="mixes languages"):
        parity_table(wordlevel, mixed, reference="eng")
