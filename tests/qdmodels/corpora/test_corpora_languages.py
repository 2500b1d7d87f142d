"""Language-code normalization; the script column checked on the real NTREX text."""

from __future__ import annotations

import re

import pytest

from qdmodels.corpora.languages import (
    DATASET_BUILD_LANGUAGES,
    NTREX_LANGUAGES,
    dominant_script,
    normalize_language,
)
from qdstats.validation import UnknownNameError
from qdstats.records import LANGUAGE_PATTERN


def test_codes_match_record_pattern():
    for table in (NTREX_LANGUAGES, DATASET_BUILD_LANGUAGES):
        for info in table.values():
            assert re.match(LANGUAGE_PATTERN, info.code), info


def test_normalize_examples():
    assert normalize_language("zho-CN") == "zho_Hans"
    assert normalize_language("zho-TW") == "zho_Hant"
    assert normalize_language("heb") == "heb_Hebr"
    assert normalize_language("arb_Arab") == "arb_Arab"
    assert normalize_language("he", scheme="ud") == "heb_Hebr"
    assert normalize_language("ara", scheme="dataset_build") == "arb_Arab"
    with pytest.raises(UnknownNameError, match="Did you mean 'heb'"):
        normalize_language("hebb")
    with pytest.raises(ValueError, match="`scheme` must be one of"):
        normalize_language("he", scheme="iso")


def test_dominant_script():
    assert dominant_script("שלום world שלום") == "Hebr"
    assert dominant_script("123 !!") is None


@pytest.mark.integration
def test_ntrex_script_column_matches_text(shared_data_dir):
    """Oracle: Unicode character names of the real text (most frequent script among letters, first 20k chars)."""
    han = {"Hans": {"Hani"}, "Hant": {"Hani"}, "Jpan": {"Hani", "Hira", "Kana"}}
    d = shared_data_dir / "ntrex128" / "NTREX-128"
    for f in sorted(d.glob("newstest2019-*.txt")):
        code = re.match(r"newstest2019-(?:ref|ref-2|src)\.(.+)\.txt", f.name).group(1)
        info = NTREX_LANGUAGES[code]
        got = dominant_script(f.read_text(encoding="utf-8")[:20000])
        assert got in han.get(info.script, {info.script}), (code, info.code, got)
