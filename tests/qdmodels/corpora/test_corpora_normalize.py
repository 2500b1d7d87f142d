"""Text normalization: NFC always; niqqud/harakat removal recorded."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qdmodels.corpora.normalize import normalization_steps, normalize_text


def test_steps_recorded_only_where_they_apply():
    assert normalization_steps("heb_Hebr") == ("NFC",)
    assert normalization_steps("heb_Hebr", strip_diacritics=True) == ("NFC", "strip_hebrew_niqqud")
    assert normalization_steps("arb_Arab", strip_diacritics=True) == ("NFC", "strip_arabic_harakat")
    assert normalization_steps("eng_Latn", strip_diacritics=True) == ("NFC",)


def test_hebrew_niqqud_removed_maqaf_kept():
    """Closed form: vocalized שָׁלוֹם -> שלום; maqaf (U+05BE) is punctuation and stays."""
    assert normalize_text("שָׁלוֹם", ("NFC", "strip_hebrew_niqqud")) == "שלום"
    assert normalize_text("בֵּית־סֵפֶר", ("NFC", "strip_hebrew_niqqud")) == "בית־ספר"


def test_arabic_harakat_removed_hamza_letters_kept():
    """Closed form: PADT's vocalized forms lose harakat; أ (alef with hamza) survives NFD/NFC round trip."""
    assert normalize_text("مَجمُوعَةٌ", ("NFC", "strip_arabic_harakat")) == "مجموعة"
    assert normalize_text("اَلأَمِيرِكِيِّينَ", ("NFC", "strip_arabic_harakat")) == "الأميركيين"


def test_nfc_applied():
    assert normalize_text("e\u0301") == "\u00e9"


def test_bad_steps():
    with pytest.raises(ValueError, match="`steps` must start with 'NFC'"):
        normalize_text("x", ("strip_hebrew_niqqud",))
    with pytest.raises(ValueError, match="unknown step 'lower'"):
        normalize_text("x", ("NFC", "lower"))
    with pytest.raises(TypeError, match="`strip_diacritics`"):
        normalization_steps("heb_Hebr", strip_diacritics="yes")  # type: ignore[arg-type]


@given(st.text())
def test_output_is_nfc_and_idempotent(s):
    for steps in [("NFC",), ("NFC", "strip_hebrew_niqqud"), ("NFC", "strip_arabic_harakat")]:
        out = normalize_text(s, steps)
        assert unicodedata.is_normalized("NFC", out)
        assert normalize_text(out, steps) == out
