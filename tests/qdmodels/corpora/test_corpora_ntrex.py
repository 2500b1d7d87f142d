"""NTREX-128 loader: shared item ids, document-level split, language resolution, errors; real counts."""

from __future__ import annotations

import pytest

from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.manifest import get_manifest
from qdmodels.corpora.ntrex import NTREX_LINES, load_ntrex, ntrex_languages
from qdstats.validation import UnknownNameError

N = NTREX_LINES


def _lines(fmt):
    return ("\r\n".join(fmt(i) for i in range(N)) + "\r\n").encode()


@pytest.fixture
def toy_ntrex(tmp_path, use_manifests, corpus_writer):
    files = {
        "ntrex128/DOCUMENT_IDS.tsv": _lines(lambda i: f"doc{i // 200:02d}"),  # 10 documents
        "ntrex128/NTREX-128/newstest2019-src.eng.txt": _lines(lambda i: f"line {i}"),
        "ntrex128/NTREX-128/newstest2019-ref.eng-GB.txt": _lines(lambda i: f"GB line {i}"),
        "ntrex128/NTREX-128/newstest2019-ref.heb.txt": _lines(lambda i: f"שָׁלוֹם {i}"),
    }
    data, mdir = corpus_writer(tmp_path, "ntrex128", files, kind="parallel",
                               languages=(("eng_Latn", "eng"), ("eng_Latn", "eng-GB"), ("heb_Hebr", "heb")))
    use_manifests(data, mdir)
    return data


def test_shared_ids_and_document_split(toy_ntrex):
    dev = load_ntrex(["heb_Hebr", "eng_Latn", "eng-GB"], split="dev")
    test = load_ntrex(["heb_Hebr"], split="test")
    allc = load_ntrex(["heb"], split="all")
    assert [it.item_id for it in dev["heb_Hebr"]] == [it.item_id for it in dev["eng_Latn"]]
    assert dev["eng_Latn"][0].source_code == "eng" and dev["eng-GB"][0].source_code == "eng-GB"
    assert dev["eng-GB"][0].language == "eng_Latn"
    dev_docs = {it.document_id for it in dev["heb_Hebr"]}
    test_docs = {it.document_id for it in test["heb_Hebr"]}
    assert dev_docs == {"doc00", "doc02", "doc04", "doc06", "doc08"}  # sorted ids, alternate dev/test
    assert not dev_docs & test_docs
    assert len(dev["heb_Hebr"]) + len(test["heb_Hebr"]) == len(allc["heb"]) == N
    assert {it.split for it in allc["heb"]} == {"dev", "test"}
    assert dev["heb_Hebr"][0].text == "שָׁלוֹם 0" and "\r" not in dev["eng_Latn"][0].text
    assert dev["heb_Hebr"][0].corpus.normalization == ("NFC",)
    assert "alternate" in dev.split_rule


def test_strip_diacritics_and_limit(toy_ntrex):
    c = load_ntrex("heb", split="test", limit=3, strip_diacritics=True)
    assert len(c["heb"]) == 3
    assert c["heb"][0].text.startswith("שלום ")
    assert c["heb"][0].corpus.normalization == ("NFC", "strip_hebrew_niqqud")
    assert c["heb"][0].document_id == "doc01"


def test_sample_spread(toy_ntrex):
    """'spread' keeps `limit` distinct items evenly over the split (first and last included, in order), the same
    items in every language, across all test documents; 'first' stays in the first document."""
    full = [it.item_id for it in load_ntrex("heb", split="test")["heb"]]
    c = load_ntrex(["heb", "eng"], split="test", limit=5, sample="spread")
    ids = [it.item_id for it in c["heb"]]
    assert ids == [it.item_id for it in c["eng"]]
    assert ids == [full[round(k * (len(full) - 1) / 4)] for k in range(5)]
    assert ids[0] == full[0] and ids[-1] == full[-1] and len(set(ids)) == 5
    assert {it.document_id for it in c["heb"]} == {"doc01", "doc03", "doc05", "doc07", "doc09"}
    assert {it.document_id for it in load_ntrex("heb", split="test", limit=5)["heb"]} == {"doc01"}
    assert len(load_ntrex("heb", split="test", limit=10**6, sample="spread")["heb"]) == len(full)
    with pytest.raises(ValueError, match="`sample` must be one of"):
        load_ntrex("heb", limit=3, sample="random")  # type: ignore[arg-type]


def test_errors(toy_ntrex):
    with pytest.raises(UnknownNameError, match=r"'hbe' is not an NTREX-128 language. Did you mean 'heb'\?"):
        load_ntrex(["hbe"])
    with pytest.raises(ValueError, match="`split` must be one of"):
        load_ntrex(["heb"], split="train")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`limit` must be >= 1"):
        load_ntrex(["heb"], limit=0)
    with pytest.raises(ValueError, match="`languages` must not be empty"):
        load_ntrex([])
    f = toy_ntrex / "ntrex128/NTREX-128/newstest2019-ref.heb.txt"
    f.write_bytes(b"")
    with pytest.raises(CorpusFileError, match="newstest2019-ref.heb.txt' of corpus 'ntrex128' is empty"):
        load_ntrex(["heb"])
    f.unlink()
    with pytest.raises(CorpusFileError, match=r"missing.*qd data fetch ntrex128 --from"):
        load_ntrex(["heb"])


def test_sha_mismatch_and_line_count(toy_ntrex):
    f = toy_ntrex / "ntrex128/NTREX-128/newstest2019-ref.heb.txt"
    f.write_bytes(_lines(lambda i: "x"))
    with pytest.raises(CorpusFileError, match="sha256"):
        load_ntrex(["heb"])
    c = load_ntrex(["heb"], verify=False)
    assert c["heb"][0].text == "x"
    f.write_bytes(b"one\r\ntwo\r\n")
    with pytest.raises(CorpusFileError, match=f"has 2 lines; NTREX-128 files have {N}"):
        load_ntrex(["heb"], verify=False)


@pytest.mark.integration
@pytest.mark.slow
def test_real_counts(shared_data_dir):
    """Real counts: 128 language codes, 1,997 lines each, 123 documents; dev and test partition the lines."""
    assert len(ntrex_languages()) == 128
    c = load_ntrex(split="all", data_dir=shared_data_dir)
    assert len(c) == 128
    assert {len(v) for v in c.items.values()} == {1997}
    ids = [it.item_id for it in c["heb"]]
    assert all([it.item_id for it in v] == ids for v in c.items.values())
    assert len({it.document_id for it in c["heb"]}) == 123
    dev = load_ntrex(["heb_Hebr", "arb_Arab", "zho_Hans"], split="dev", data_dir=shared_data_dir)
    test = load_ntrex(["heb_Hebr"], split="test", data_dir=shared_data_dir)
    assert len(dev["heb_Hebr"]) + len(test["heb_Hebr"]) == 1997
    assert (len(dev["heb_Hebr"]), len(test["heb_Hebr"])) == (975, 1022)  # frozen: alternate-v1 rule on DOCUMENT_IDS
    assert dev["zho_Hans"][0].source_code == "zho-CN"
    heb_sha = get_manifest("ntrex128").file("ntrex128/NTREX-128/newstest2019-ref.heb.txt").sha256
    assert dev["heb_Hebr"][0].corpus.sha256 == heb_sha
