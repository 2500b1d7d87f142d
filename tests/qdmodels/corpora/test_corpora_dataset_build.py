"""dataset_build text from the installed package, verified against the committed manifest."""

from __future__ import annotations

import re

import pytest

from qdmodels.corpora.dataset_build import dataset_build_languages, load_dataset_build
from qdmodels.corpora.manifest import get_manifest, verify_corpus
from qdmodels.corpora.types import ParallelItem
from qdstats.validation import UnknownNameError


@pytest.fixture(autouse=True)
def _repo_manifests(monkeypatch):
    monkeypatch.delenv("QD_MANIFEST_DIR", raising=False)


def test_languages_texts_and_items():
    langs = dataset_build_languages()
    assert len(langs) == 38 and {"heb_Hebr", "arb_Arab", "nob_Latn", "zho_Hans"} <= set(langs)
    db = load_dataset_build(["heb_Hebr", "ara"], limit=5)
    heb, ara = db["heb_Hebr"], db["ara"]
    assert heb.source_code == "heb" and ara.language == "arb_Arab" and not db.parallel
    assert heb.corpus.sha256 == get_manifest("dataset_build").file("dataset_build/data/heb/heb.txt").sha256
    assert len(heb.text.split()) > 10000 and len(heb.paragraphs) > 100
    items = db.items["heb_Hebr"]
    assert len(items) == 5 and all(isinstance(it, ParallelItem) for it in items)
    assert items[0].item_id == "dataset_build:heb:0000" and items[0].text == heb.paragraphs[0]
    assert items[0].document_id == items[0].item_id and items[0].corpus == heb.corpus


def test_preamble_dropped_from_every_primary_file():
    """Oracle: every <code>.txt opens with the generator's reply announcing the word count (e.g. '30,000', '৩০,০০০')."""
    count = re.compile(r"[0-9০-৯]{1,2}[,. \u00a0]?[0-9০-৯]{3}")
    section_one = re.compile(r"[1१১一]|^(---|\*\*\*)$")
    db = load_dataset_build(verify=False)
    for key, t in db.texts.items():
        first = t.text.split("\n\n")[0]
        assert count.search(first), (key, first[:80])
        assert t.paragraphs[0] != first.strip()
        # the first kept paragraph opens section 1 (or is the separator before it), hand-checked for 0.1.11
        assert section_one.search(t.paragraphs[0][:40]), (key, t.paragraphs[0][:60])
    kept = load_dataset_build("heb", drop_preamble=False)["heb"]
    assert kept.paragraphs[0] == kept.text.split("\n\n")[0].strip()


def test_extra_files_and_diacritics():
    eng = load_dataset_build("eng_Latn")["eng_Latn"]
    assert eng.files == ("dataset_build/data/eng/eng.txt",)
    full = load_dataset_build("eng_Latn", include_extra=True)["eng_Latn"]
    assert len(full.files) == 6
    single = {get_manifest("dataset_build").file(f).sha256 for f in full.files}
    assert full.corpus.sha256 not in single  # combined hash of the sorted file hashes
    a = load_dataset_build("arb_Arab", strip_diacritics=True)["arb_Arab"]
    assert a.corpus.normalization == ("NFC", "strip_arabic_harakat")


def test_bad_input():
    with pytest.raises(UnknownNameError, match="'hebb' is not a dataset_build language. Did you mean"):
        load_dataset_build("hebb")
    with pytest.raises(ValueError, match="`limit` must be >= 1"):
        load_dataset_build("heb", limit=0)
    with pytest.raises(ValueError, match="`languages` must not be empty"):
        load_dataset_build([])


def test_installed_files_match_manifest():
    """Oracle: the committed manifest (sha256 of the files shipped in dataset_build-0.1.11)."""
    assert all(s.verified for s in verify_corpus(get_manifest("dataset_build")))
