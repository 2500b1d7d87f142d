"""Records -> paired frame (strict and lenient), checked against closed-form expectations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qdstats.records import Measurement, ModelRef, paired_frame, paired_items

MODEL = ModelRef(model_id="m", source="local", sha256="a" * 64)
BASE = {"scheme": "fp32", "protect": "none", "prune": "none"}
INT4 = {"scheme": "int4-g64-sym", "protect": "none", "prune": "none"}


def rec(cond, lang, item, value, *, doc=None, warnings=()):
    attrs = {"document_id": doc} if doc is not None else {}
    return Measurement(quantity="eval.bits_per_byte", value=value, language=lang, item_id=item, condition=dict(cond),
                       model=MODEL, attributes=attrs, warnings=tuple(warnings))


def test_strict_frame_is_the_hand_computed_pairing():
    recs = [rec(BASE, "heb_Hebr", "s1", 1.0, doc="d1"), rec(INT4, "heb_Hebr", "s1", 1.5, doc="d1"),
            rec(BASE, "eng_Latn", "s1", 0.5, doc="d1"), rec(INT4, "eng_Latn", "s1", 0.75, doc="d1"),
            rec(BASE, "eng_Latn", "s2", 2.0), rec(INT4, "eng_Latn", "s2", 2.0)]
    pf = paired_frame(recs)
    assert list(pf[["language", "item_id"]].itertuples(index=False, name=None)) == [
        ("eng_Latn", "s1"), ("eng_Latn", "s2"), ("heb_Hebr", "s1")]
    assert pf["delta"].tolist() == [0.25, 0.0, 0.5]
    assert pf["document_id"].tolist() == ["d1", "s2", "d1"]  # the item is its own document when none is recorded
    assert set(pf["scheme"]) == {"int4-g64-sym"} and set(pf["condition_short"]) == {"scheme=int4-g64-sym"}


def test_strict_refuses_incomplete_or_duplicated_pairing():
    full = [rec(BASE, "eng_Latn", "s1", 1.0), rec(INT4, "eng_Latn", "s1", 1.1)]
    with pytest.raises(ValueError, match="no reference records"):
        paired_frame(full[1:])
    with pytest.raises(ValueError, match="has no reference measurement"):
        paired_frame(full + [rec(INT4, "eng_Latn", "s2", 1.0)])
    with pytest.raises(ValueError, match="measure an item twice"):
        paired_frame(full + [rec(INT4, "eng_Latn", "s1", 1.2)])
    with pytest.raises(ValueError, match="no 'eval.bits_per_byte' measurements"):
        paired_frame([])
    with pytest.raises(TypeError, match="`records` must be a sequence"):
        paired_frame("records.jsonl")


def test_lenient_drops_with_notes_and_keeps_the_rest():
    recs = [rec(BASE, "eng_Latn", "s1", 1.0), rec(INT4, "eng_Latn", "s1", 1.1),
            rec(INT4, "eng_Latn", "s2", 1.0),                                    # no baseline
            rec(BASE, "eng_Latn", "s3", 1.0), rec(INT4, "eng_Latn", "s3", math.nan, warnings=("diverged",)),
            rec({**INT4, "sites": "layers.0"}, "eng_Latn", "s1", 3.0)]          # a sweep's partial condition
    frame, notes = paired_items(recs)
    assert frame["item_id"].tolist() == ["s1"] and frame["delta"].tolist() == pytest.approx([0.1])
    text = " ".join(notes)
    assert "no baseline measurement" in text and "NaN value" in text and "compress only some sites" in text


def test_baseline_with_compute_dtype_counts_as_baseline_and_custom_baseline():
    recs = [rec({**BASE, "compute_dtype": "float32"}, "eng_Latn", "s1", 1.0), rec(INT4, "eng_Latn", "s1", 1.5)]
    assert paired_frame(recs)["delta"].tolist() == [0.5]
    other = paired_frame(recs, baseline=INT4)
    assert other["delta"].tolist() == [-0.5]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 10), st.floats(-1, 1)), min_size=1, max_size=12))
def test_delta_is_exactly_compressed_minus_full_and_both_modes_agree(values):
    recs = []
    for k, (full, shift) in enumerate(values):
        recs += [rec(BASE, "eng_Latn", f"s{k}", full), rec(INT4, "eng_Latn", f"s{k}", full + shift)]
    strict = paired_frame(recs)
    lenient, notes = paired_items(recs)
    assert notes == []
    pd.testing.assert_frame_equal(strict, lenient)
    np.testing.assert_array_equal(strict["delta"], strict["compressed"] - strict["full"])
    by_item = {f"s{k}": (f + s) - f for k, (f, s) in enumerate(values)}
    np.testing.assert_array_equal(strict["delta"], [by_item[i] for i in strict["item_id"]])


def test_across_models_pairs_a_checkpoint_with_its_original():
    other = ModelRef(model_id="m-gptq", source="local", sha256="b" * 64)
    ck = {**BASE, "scheme": "checkpoint", "checkpoint": "m-gptq@" + "b" * 64}
    recs = [rec(BASE, "eng_Latn", "s1", 1.0), rec(BASE, "heb_Hebr", "s1", 2.0)]
    recs += [r.model_copy(update={"model": other}) for r in (rec(ck, "eng_Latn", "s1", 1.5), rec(ck, "heb_Hebr", "s1", 3.0))]
    with pytest.raises(ValueError, match="has no reference measurement"):
        paired_frame(recs)  # within-model pairing cannot see the other model's items
    pf = paired_frame(recs, across_models=True)
    assert pf["delta"].tolist() == [0.5, 1.0] and set(pf["model_id"]) == {"m"}
    assert set(pf["condition_short"]) == {"checkpoint=m-gptq@" + "b" * 64 + ",scheme=checkpoint"}
    two_baselines = recs[:2] + [r.model_copy(update={"model": other}) for r in recs[:2]]
    with pytest.raises(ValueError, match="from exactly one model; found 2"):
        paired_frame(two_baselines, across_models=True)
