"""CoNLL-U loading: surface words, offsets, multiword-token segmentations, errors with file:line; real treebanks."""

from __future__ import annotations

import conllu
import pytest

from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.ud import ConllUFormatError, align_pud, load_conllu, parse_conllu
from qdstats.validation import UnknownNameError

# HTB style: article elided after a prefix (ב + ה_ + בית written בבית), no "# text" (reconstructed).
HTB = (
    "# sent_id = 7\n"
    "1-3\tבבית\t_\t_\t_\t_\t_\t_\t_\t_\n"
    "1\tב\tב\tADP\tADP\t_\t3\tcase\t_\t_\n"
    "2\tה_\tה\tDET\tDET\tPronType=Art\t3\tdet\t_\t_\n"
    "3\tבית\tבית\tNOUN\tNOUN\t_\t0\troot\t_\t_\n"
    "4-5\tלטיפול\t_\t_\t_\t_\t_\t_\t_\tSpaceAfter=No\n"
    "4\tל\tל\tADP\tADP\t_\t5\tcase\t_\t_\n"
    "5\tטיפול\tטיפול\tNOUN\tNOUN\t_\t3\tnmod\t_\t_\n"
    "6\t.\t.\tPUNCT\tPUNCT\t_\t3\tpunct\t_\t_\n"
    "\n"
)

KAIST = (
    "# sent_id = k1\n"
    "# text = 내 고향은 서울입니다.\n"
    "1\t내\t내\tADJ\tmma\t_\t2\tamod\t_\t_\n"
    "2\t고향은\t고향+은\tNOUN\tncn+jxt\t_\t3\tdislocated\t_\t_\n"
    "3\t서울입니다\t서울+이+ㅂ니다\tVERB\tnq+jp+ef\t_\t0\troot\t_\tSpaceAfter=No\n"
    "4\t.\t.\tPUNCT\tsf\t_\t3\tpunct\t_\t_\n"
    "\n"
)


def test_hebrew_mwt_segmentation_and_offsets(tmp_path):
    f = tmp_path / "he_htb-ud-dev.conllu"
    f.write_text(HTB, encoding="utf-8")
    (s,) = parse_conllu(f, language="heb_Hebr", corpus_id="ud_hebrew_htb", segmentation="mwt")
    assert s.sent_id == "7"
    assert s.text == "בבית לטיפול."  # reconstructed from SpaceAfter
    assert [w.form for w in s.words] == ["בבית", "לטיפול", "."]
    w0, w1, w2 = s.words
    assert (w0.segmentation.morphs, w0.segmentation.boundaries, w0.segmentation.surface_true) == (("ב", "ה", "בית"), (1,), False)
    assert w0.segmentation.byte_boundaries == (2,)  # Hebrew letters are 2 bytes in UTF-8
    assert (w1.segmentation.boundaries, w1.segmentation.surface_true) == ((1,), True)
    assert w2.segmentation.boundaries == ()  # exhaustive mode: unsplit word = one morph
    for w in s.words:
        assert s.text[w.char_start:w.char_end] == w.form
        assert s.text.encode()[w.byte_start:w.byte_end].decode() == w.form
    assert (w1.char_start, w1.byte_start) == (5, 9)


def test_mwt_only_mode_leaves_plain_words_unsegmented(tmp_path):
    (s,) = parse_conllu(tmp_path / "x.conllu", text=HTB, language="heb_Hebr")
    assert s.words[0].segmentation is not None and s.words[2].segmentation is None


def test_korean_lemma_plus(tmp_path):
    (s,) = parse_conllu(tmp_path / "ko.conllu", text=KAIST, language="kor_Hang", segmentation="lemma_plus")
    segs = [w.segmentation for w in s.words]
    assert segs[1].morphs == ("고향", "은") and segs[1].boundaries == (2,) and segs[1].surface_true
    assert segs[2].boundaries == (2, 3) and not segs[2].surface_true  # 서울|입|니다 (ㅂ merged into 입)
    assert s.words[3].char_start == len("내 고향은 서울입니다")


def test_malformed_line_reports_file_and_line(tmp_path):
    bad = HTB.replace("6\t.\t.\tPUNCT\tPUNCT\t_\t3\tpunct\t_\t_", "6\t.\t.\tPUNCT\tPUNCT\t_\t3\tpunct")
    f = tmp_path / "bad.conllu"
    f.write_text(bad, encoding="utf-8")
    with pytest.raises(ConllUFormatError, match=r"bad\.conllu:9: expected 10 tab-separated columns, found 8"):
        parse_conllu(f, language="heb_Hebr")
    f.write_text(HTB.replace("4\tל\t", "4x\tל\t"), encoding="utf-8")
    with pytest.raises(ConllUFormatError, match=r"bad\.conllu:7: bad ID column '4x'"):
        parse_conllu(f, language="heb_Hebr")


def test_conllu_exception_wrapped_with_file_and_line(tmp_path, monkeypatch):
    def boom(_text):
        raise conllu.exceptions.ParseException("synthetic")

    monkeypatch.setattr(conllu, "parse", boom)
    with pytest.raises(ConllUFormatError, match=r"x\.conllu:1: cannot parse sentence block: synthetic"):
        parse_conllu(tmp_path / "x.conllu", text=HTB, language="heb_Hebr")


def test_word_not_in_text_is_an_error(tmp_path):
    bad = "# sent_id = 1\n# text = abc\n1\txyz\txyz\tX\tX\t_\t0\troot\t_\t_\n\n"
    with pytest.raises(ConllUFormatError, match=r"t\.conllu:1: word 1 'xyz' of sentence '1' not found"):
        parse_conllu(tmp_path / "t.conllu", text=bad, language="eng_Latn")


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(CorpusFileError, match="nope.conllu' does not exist"):
        parse_conllu(tmp_path / "nope.conllu", language="eng_Latn")
    (tmp_path / "e.conllu").write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusFileError, match="e.conllu' is empty"):
        parse_conllu(tmp_path / "e.conllu", language="eng_Latn")


def _pud(sent_ids, word):
    return "".join(f"# sent_id = {i}\n# text = {word}\n1\t{word}\t{word}\tX\tX\t_\t0\troot\t_\t_\n\n" for i in sent_ids)


def test_load_conllu_and_align_pud_on_fixture_manifests(tmp_path, use_manifests, corpus_writer):
    corpus_writer(tmp_path, "ud_english_pud", {"ud/UD_English-PUD/en_pud-ud-test.conllu": _pud(["a", "b", "c"], "Hi").encode()},
                  languages=(("eng_Latn", "en"),))
    data, mdir = corpus_writer(tmp_path, "ud_german_pud", {"ud/UD_German-PUD/de_pud-ud-test.conllu": _pud(["c", "a"], "Hallo").encode()},
                               languages=(("deu_Latn", "de"),), license_flags=("non-commercial",))
    use_manifests(data, mdir)
    sents = load_conllu("UD_German-PUD", "test")
    assert sents[0].corpus.corpus_id == "ud_german_pud" and sents[0].corpus.license_flags == ("non-commercial",)
    pairs = align_pud(["en", "deu_Latn"])
    assert [(a.sent_id, b.sent_id, b.text) for a, b in pairs] == [("a", "a", "Hallo"), ("c", "c", "Hallo")]
    with pytest.raises(ValueError, match="`split` 'dev' is not available for treebank 'ud_german_pud'"):
        load_conllu("ud_german_pud", "dev")
    with pytest.raises(UnknownNameError, match="Did you mean 'ud_german_pud'"):
        load_conllu("ud_german_pdu", "test")
    with pytest.raises(UnknownNameError, match="has no PUD treebank"):
        align_pud(["fra_Latn"])
    with pytest.raises(ValueError, match="`split` must be one of"):
        load_conllu("ud_german_pud", "train")  # type: ignore[arg-type]
    (data / "ud/UD_German-PUD/de_pud-ud-test.conllu").write_text(_pud(["z"], "X"), encoding="utf-8")
    with pytest.raises(CorpusFileError, match="sha256"):
        load_conllu("ud_german_pud", "test")


# ---------------------------------------------------------------- real treebanks

@pytest.mark.integration
@pytest.mark.slow
def test_iahltwiki_counts_and_prefix_boundary(shared_data_dir):
    """Real counts: IAHLTwiki dev + test = 348 + 393 = 741 sentences (grep -c '^# sent_id')."""
    dev = load_conllu("ud_hebrew_iahltwiki", "dev", data_dir=shared_data_dir)
    test = load_conllu("ud_hebrew_iahltwiki", "test", data_dir=shared_data_dir)
    assert (len(dev), len(test), len(dev) + len(test)) == (348, 393, 741)
    s = dev[0]
    assert s.sent_id == "iahltwiki_fresh-frozen-plasma-1"
    w = next(w for w in s.words if w.form == "לטיפול")  # MWT 4-5: ל + טיפול
    assert w.segmentation.morphs == ("ל", "טיפול")
    assert w.segmentation.boundaries == (1,) and w.segmentation.byte_boundaries == (2,)
    assert s.text.encode()[w.byte_start:w.byte_end].decode() == "לטיפול"
    for sent in dev:
        for x in sent.words:
            assert sent.text[x.char_start:x.char_end] == x.form
            assert len(sent.text[:x.char_start].encode()) == x.byte_start


@pytest.mark.integration
def test_htb_elided_article_and_license_flag(shared_data_dir):
    sents = load_conllu("ud_hebrew_htb", "dev", data_dir=shared_data_dir)
    assert sents[0].corpus.license_flags == ("non-commercial",)
    hits = [w.segmentation for s in sents for w in s.words
            if w.segmentation and w.segmentation.morphs == ("ב", "ה", "בית")]
    assert hits, "HTB dev has בבית = ב + ה_ + בית"
    assert all(h.word == "בבית" and h.boundaries == (1,) and not h.surface_true for h in hits)


@pytest.mark.integration
@pytest.mark.slow
def test_kaist_and_padt_and_pud(shared_data_dir):
    ko = load_conllu("ud_korean_kaist", "dev", data_dir=shared_data_dir, limit=1)
    assert ko[0].words[1].form == "고향은" and ko[0].words[1].segmentation.boundaries == (2,)
    ar = load_conllu("ud_arabic_padt", "dev", data_dir=shared_data_dir, limit=1, strip_diacritics=True)
    assert ar[0].sent_id == "s-p1"  # UD v1.3 "# sent_id s-p1" (no '=')
    assert ar[0].words[0].form == "مجموعة" and ar[0].corpus.normalization == ("NFC", "strip_arabic_harakat")
    assert ar[0].corpus.license_flags == ("non-commercial",)
    pairs = align_pud(["eng_Latn", "kor_Hang"], data_dir=shared_data_dir)
    assert len(pairs) == 1000 and pairs[0][0].sent_id == pairs[0][1].sent_id == "n01001011"


def _mwt_block(range_line: str, words: list[str], text: str) -> str:
    lines = ["# sent_id = m1", f"# text = {text}", range_line]
    lines += [f"{k}\t{w}\t{w}\tX\tX\t_\t0\tdep\t_\t_" for k, w in enumerate(words, start=1)]
    return "\n".join(lines) + "\n\n"


@pytest.mark.parametrize(("range_line", "match"), [
    ("1-5\tabc\t_\t_\t_\t_\t_\t_\t_\t_", r"x\.conllu:3: multiword token range 1-5 spans past the sentence, whose last word is 3"),
    ("1-3\tab\t_\t_\t_\t_\t_\t_\t_\t_", r"x\.conllu:3: multiword token 'ab' \(2 characters\) covers 3 words"),
    ("2-3\tbc\t_\t_\t_\t_\t_\t_\t_\t_", r"x\.conllu:3: multiword token range 2-3 must be followed by words 2\.\.3"),
])
def test_multiword_ranges_that_cannot_be_right_are_errors(tmp_path, range_line, match):
    """Regression: such ranges used to give a silently wrong segmentation."""
    with pytest.raises(ConllUFormatError, match=match):
        parse_conllu(tmp_path / "x.conllu", text=_mwt_block(range_line, ["a", "b", "c"], "abc"), language="eng_Latn")


def test_a_valid_range_still_parses(tmp_path):
    (s,) = parse_conllu(tmp_path / "x.conllu", text=_mwt_block("1-2\tab\t_\t_\t_\t_\t_\t_\t_\t_", ["a", "b", "c"], "ab c"),
                        language="eng_Latn")
    assert [w.form for w in s.words] == ["ab", "c"] and s.words[0].segmentation.morphs == ("a", "b")


def test_non_utf8_file_names_file_and_line(tmp_path):
    """Regression: a non-UTF-8 CoNLL-U file crashed with a bare UnicodeDecodeError."""
    f = tmp_path / "latin1.conllu"
    f.write_bytes(_mwt_block("1-2\tab\t_\t_\t_\t_\t_\t_\t_\t_", ["a", "b", "c"], "ab c").encode() + "# text = caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConllUFormatError, match=r"latin1\.conllu:8: not UTF-8 text"):
        parse_conllu(f, language="eng_Latn")
