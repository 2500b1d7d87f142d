"""Morpho Challenge 2010 and SIGMORPHON 2022 loaders: formats, Turkish transliteration, unresolved entries."""

from __future__ import annotations

import pytest

from qdmodels.corpora.morphology import (
    TURKISH_ASCII,
    detransliterate_turkish,
    load_morpho_challenge,
    load_sigmorphon2022,
)
from qdstats.validation import UnknownNameError

MC = "morphology/morpho_challenge_2010/morphochal10data"


def test_turkish_table_matches_source_txt():
    """Oracle: SOURCE.txt 'C=ç, I=ı, O=ö, U=ü, S=ş, G=ğ' (lowercase i stays dotted)."""
    assert TURKISH_ASCII == {"C": "ç", "I": "ı", "O": "ö", "U": "ü", "S": "ş", "G": "ğ"}
    assert detransliterate_turkish("CIkarImlar") == "çıkarımlar"
    assert detransliterate_turkish("COmleGi") == "çömleği"
    assert detransliterate_turkish("iSleyiSten") == "işleyişten"
    with pytest.raises(ValueError, match="uppercase letters \\['A'\\]"):
        detransliterate_turkish("Ali")


@pytest.fixture
def toy_morph(tmp_path, use_manifests, corpus_writer):
    seg_tur = "CIkarsanIz\tCIk:CIk ar:+TNS_ar sa:+if_SUF nIz:+PER2P_niz, CIkar:CIkar sa:+TNS_sa nIz:+PER2P_niz\n"
    seg_eng = ("batsmen\tbat:bat_N s:s_s men:man_N ~:+PL\n"
               "hyy:n\thyy\\::hyy n:+GEN\n"
               "broken\tbrok:break_V en:+PCP2 x:+X\n")
    comb_eng = seg_eng + "dogs\tdog:dog_N s:+PL\n"
    corpus_writer(tmp_path, "morpho_challenge_2010", {
        f"{MC}/goldstd_trainset.segmentation.tur": seg_tur.encode(),
        f"{MC}/goldstd_trainset.segmentation.eng": seg_eng.encode(),
        f"{MC}/goldstd_combined.segmentation.eng": comb_eng.encode(),
        f"{MC}/goldstd_trainset.segmentation.fin": "pyörä\tpyörä:pyörä\n".encode("latin-1"),
        f"{MC}/goldstd_trainset.labels.ger": b"abends\tabend_N +GEN\n",
    }, kind="morphology", license_flags=("research-use-only",))
    data, mdir = corpus_writer(tmp_path, "sigmorphon2022_segmentation", {
        "morphology/sigmorphon2022_segmentation/data/fra.word.dev.tsv":
            "marreront\tmarre @@er @@eront\t110\ndéfaire\tdé @@faire\t010\n".encode(),
    }, kind="morphology")
    use_manifests(data, mdir)


def test_morpho_challenge_formats(toy_morph):
    tur = load_morpho_challenge("tur_Latn", split="train")
    (w,) = tur.words
    assert (w.word, w.morphs, w.boundaries) == ("çıkarsanız", ("çık", "ar", "sa", "nız"), (3, 5, 7))
    assert w.byte_boundaries == (5, 7, 9)  # ç and ı are 2 bytes
    assert tur.n_alternatives == {"çıkarsanız": 2}
    assert tur.corpus.license_flags == ("research-use-only",)
    eng = load_morpho_challenge("eng", split="train")
    assert [x.word for x in eng.words] == ["batsmen", "hyy:n"]
    assert eng.words[0].boundaries == (3, 4)  # '~' zero morph adds no boundary
    assert eng.words[1].morphs == ("hyy:", "n")  # escaped colon
    assert [(u.word, u.reason) for u in eng.unresolved] == [("broken", "surface morphs do not concatenate to the word")]
    assert eng.n_total == 3  # nothing dropped
    aligned = load_morpho_challenge("eng", split="train", non_surface="align")
    assert len(aligned.words) == 3 and not aligned.words[2].surface_true
    dev = load_morpho_challenge("eng", split="dev")  # combined minus train
    assert [x.word for x in dev.words] == ["dogs"]
    fin = load_morpho_challenge("fin", split="train")  # ISO-8859-1 upstream
    assert fin.words[0].word == "pyörä"


def test_german_labels_only_are_reported(toy_morph):
    ger = load_morpho_challenge("deu_Latn", split="train")
    assert ger.words == () and len(ger.unresolved) == 1
    assert ger.unresolved[0].reason.startswith("labels only")


def test_sigmorphon(toy_morph):
    g = load_sigmorphon2022("fra", split="dev")
    assert [w.word for w in g.words] == ["défaire"] and g.words[0].boundaries == (2,)
    assert [u.word for u in g.unresolved] == ["marreront"]
    ga = load_sigmorphon2022("fra_Latn", split="dev", non_surface="align")
    assert [w.word for w in ga.words] == ["marreront", "défaire"]


def test_errors(toy_morph):
    with pytest.raises(UnknownNameError, match="`language` 'tr' is not in Morpho Challenge 2010"):
        load_morpho_challenge("tr")
    with pytest.raises(ValueError, match="`non_surface` must be one of"):
        load_morpho_challenge("eng", non_surface="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`split` must be one of"):
        load_sigmorphon2022("fra", split="train")  # type: ignore[arg-type]


@pytest.mark.integration
@pytest.mark.slow
def test_real_morphology_counts(shared_data_dir):
    """Real files: every entry accounted for (words + unresolved = line count)."""
    for lang, n in [("eng", 1686), ("fin", 1835), ("tur", 1760), ("deu", 1779)]:
        g = load_morpho_challenge(lang, split="combined", data_dir=shared_data_dir)
        assert g.n_total == n, lang
    tur = load_morpho_challenge("tur", split="train", data_dir=shared_data_dir)
    assert tur.words[0].word == "çıkarsanız" and not any("A" <= ch <= "Z" for w in tur.words for ch in w.word)
    assert len(load_morpho_challenge("deu", split="combined", data_dir=shared_data_dir).words) == 0
    s = load_sigmorphon2022("eng", split="dev", data_dir=shared_data_dir)
    assert s.n_total == 57371


@pytest.fixture
def toy_morphynet(tmp_path, use_manifests, corpus_writer):
    rows = ("axial\tabaxial\tJ\tJ\tab\tprefix\n"
            "Laut\tablaut\tN\tN\tab\tprefix\n"
            "Minister\tAußenminister\tN\tN\taußen\tprefix\n"
            "possible\timpossible\tJ\tJ\tin\tprefix\n"
            "connoter\tconnotation\tV\tN\tation\tsuffix\n")
    corpus_writer(tmp_path, "morphynet", {"morphology/morphynet/deu/deu.derivational.v1.tsv": rows.encode()},
                  kind="morphology")
    data, mdir = corpus_writer(tmp_path, "unimorph_heb", {
        "morphology/unimorph_heb/heb_voc": "אָבַד\tאָבְדָה\tV;3;SG;PST;FEM\n".encode(),
        "morphology/unimorph_heb/heb": "אבד\tאבדה\tV;3;SG;PST;FEM\nbad row\n".encode(),
    }, kind="morphology")
    use_manifests(data, mdir)


def test_morphynet_affix_boundaries(toy_morphynet):
    from qdmodels.corpora.morphology import load_morphynet

    g = load_morphynet("deu")
    got = {w.word: (w.morphs, w.boundaries) for w in g.words}
    assert got["abaxial"] == (("ab", "axial"), (2,))
    assert got["ablaut"] == (("ab", "laut"), (2,))  # case-insensitive affix match
    assert got["Außenminister"] == (("Außen", "minister"), (5,))  # ß keeps its length under lower()
    assert got["connotation"] == (("connot", "ation"), (6,))  # stem change (connoter), suffix on the surface
    assert [u.word for u in g.unresolved] == ["impossible"]  # 'in' assimilated to 'im'
    assert g.n_total == 5


def test_unimorph(toy_morphynet):
    from qdmodels.corpora.morphology import load_unimorph_heb

    entries, ref = load_unimorph_heb("heb_voc", strip_diacritics=True)
    assert entries[0].lemma == "אבד" and entries[0].form == "אבדה"
    assert entries[0].features == ("V", "3", "SG", "PST", "FEM")
    assert ref.normalization == ("NFC", "strip_hebrew_niqqud")
    with pytest.raises(ValueError, match=r"unimorph_heb/heb:2: expected 'lemma<TAB>form<TAB>features'"):
        load_unimorph_heb("heb")
    with pytest.raises(ValueError, match="`variant` must be one of"):
        load_unimorph_heb("hebrew")  # type: ignore[arg-type]


@pytest.mark.integration
@pytest.mark.slow
def test_real_morphynet_and_unimorph_counts(shared_data_dir):
    from qdmodels.corpora.morphology import load_morphynet, load_unimorph_heb

    assert load_morphynet("fin", data_dir=shared_data_dir).n_total == 36843  # wc -l
    entries, _ = load_unimorph_heb("from_UD_unvoc", data_dir=shared_data_dir)
    assert len(entries) == 14454
