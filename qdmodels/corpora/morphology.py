"""Gold morpheme segmentations: Morpho Challenge 2010 and SIGMORPHON 2022 -> :class:`SegmentedWord`.

Morpho Challenge 2010 (``goldstd_{trainset,combined}.segmentation.{eng,fin,tur}``)
    ``word<TAB>surf:label surf:label ..., <alternative analysis>, ...``; ``~`` is a morpheme with no surface form
    (``batsmen`` = ``bat s men ~:+PL``; it adds no boundary) and ``\\:`` an escaped colon in a surface form.
    The *first* analysis is used (the file lists alternatives comma-separated; their number is kept in ``GoldSegmentations.n_alternatives``). German has
    only label files (``goldstd_*.labels.ger``: allomorph labels such as ``ablative_A +PL``, no surface morphs), so
    no surface boundary can be derived: every German word is returned in ``unresolved`` with that reason.
    The Finnish files are ISO-8859-1 (decoded as such); the others UTF-8. There is no develset segmentation file:
    ``split='dev'`` is the combined file minus the trainset words.
    Turkish is ASCII-transliterated upstream (SOURCE.txt: C=ç, I=ı, O=ö, U=ü, S=ş, G=ğ; lowercase ``i`` stays
    ``i``); words and morphs are mapped back to Turkish letters.
SIGMORPHON 2022 (``{eng,fra}.word.{dev,test.gold}.tsv``)
    ``word<TAB>morph @@morph ...<TAB>category``. Morphs are canonical (``marreront`` = ``marre @@er @@eront``), so
    they concatenate to the word only for some words.

Words whose morphs do not concatenate to the word are never dropped silently: with ``non_surface='report'``
(default) they go to ``GoldSegmentations.unresolved`` with a reason; with ``non_surface='align'`` boundaries are
placed by :func:`~qdmodels.corpora.align.align_boundaries` and the word is kept with ``surface_true=False``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qdmodels.corpora.align import segmented_word
from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.manifest import file_path, get_manifest, sha256_file
from qdmodels.corpora.normalize import normalize_text
from qdmodels.corpora.types import SegmentedWord
from qdstats.records import CorpusRef
from qdstats.validation import UnknownNameError, check_option, did_you_mean

__all__ = [
    "TURKISH_ASCII",
    "GoldSegmentations",
    "InflectionEntry",
    "NonSurfacePolicy",
    "UnresolvedWord",
    "detransliterate_turkish",
    "load_morpho_challenge",
    "load_morphynet",
    "load_sigmorphon2022",
    "load_unimorph_heb",
]

NonSurfacePolicy = Literal["report", "align"]

#: Morpho Challenge Turkish ASCII transliteration (SOURCE.txt): uppercase ASCII letter -> Turkish letter.
TURKISH_ASCII: dict[str, str] = {"C": "ç", "I": "ı", "O": "ö", "U": "ü", "S": "ş", "G": "ğ"}
_TR_TABLE = str.maketrans(TURKISH_ASCII)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of the non-blank lines of a gold file (1-based numbers, for error messages)."""
    return ((n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip())


def detransliterate_turkish(s: str) -> str:
    """Map Morpho Challenge ASCII Turkish back to Turkish letters (``'CIkarImlar'`` -> ``'çıkarımlar'``).

    Raises
    ------
    ValueError
        If ``s`` contains an uppercase ASCII letter outside the table (the upstream data is lowercase otherwise).
    """
    bad = sorted({ch for ch in s if "A" <= ch <= "Z" and ch not in TURKISH_ASCII})
    if bad:
        raise ValueError(f"`s` {s!r} has uppercase letters {bad} outside the transliteration table {TURKISH_ASCII}.")
    return s.translate(_TR_TABLE)


class UnresolvedWord(BaseModel):
    """A gold entry whose surface boundaries could not be derived."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    word: str = Field(description="Surface word (NFC, detransliterated for Turkish).")
    analysis: str = Field(description="The gold analysis as written in the source (first analysis).")
    reason: str = Field(description="Why no surface segmentation was derived.")


class GoldSegmentations(BaseModel):
    """Result of a gold-segmentation loader."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(description="Corpus id.")
    language: str = Field(description="ISO 639-3 + script.")
    split: str = Field(description="Split of the source file.")
    words: tuple[SegmentedWord, ...] = Field(description="Words with surface boundaries.")
    unresolved: tuple[UnresolvedWord, ...] = Field(default=(), description="Entries without surface boundaries, with the reason.")
    n_alternatives: dict[str, int] = Field(default_factory=dict, description="Words with more than one gold analysis: how many (the first is used).")
    corpus: CorpusRef = Field(description="File reference (sha256 of the source file).")

    @property
    def n_total(self) -> int:
        """Entries in the source file: ``len(words) + len(unresolved)``."""
        return len(self.words) + len(self.unresolved)


_MC_LANGS = {"eng": ("eng_Latn", "eng"), "eng_Latn": ("eng_Latn", "eng"), "fin": ("fin_Latn", "fin"),
             "fin_Latn": ("fin_Latn", "fin"), "tur": ("tur_Latn", "tur"), "tur_Latn": ("tur_Latn", "tur"),
             "deu": ("deu_Latn", "ger"), "ger": ("deu_Latn", "ger"), "deu_Latn": ("deu_Latn", "ger")}
_ITEM = re.compile(r"((?:[^:\\]|\\:)+):(.*)")  # surface (with '\:' escapes) ':' label
_MC_SPLITS = {"train": "trainset", "dev": "develset", "combined": "combined"}


def _lookup(language: str, table: dict[str, tuple[str, str]], what: str) -> tuple[str, str]:
    if language not in table:
        raise UnknownNameError(
            f"`language` {language!r} is not in {what}." + did_you_mean(language, table)
            + f" Available: {', '.join(sorted(table))}."
        )
    return table[language]


def _read(manifest_id: str, rel: str, data_dir) -> tuple[str, CorpusRef]:
    """Read a verified file. Morpho Challenge's Finnish files are ISO-8859-1 upstream (all others UTF-8)."""
    m = get_manifest(manifest_id)
    entry = m.file(rel)
    path = file_path(m, rel, data_dir)
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise CorpusFileError(f"{str(path)!r} has sha256 {digest}, but the manifest says {entry.sha256}.")
    encoding = "latin-1" if manifest_id == "morpho_challenge_2010" and rel.endswith(".fin") else "utf-8"
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as exc:
        raise CorpusFileError(f"{str(path)!r} is not valid {encoding}: {exc}") from None
    return text, CorpusRef(corpus_id=m.corpus_id, split=None, sha256=entry.sha256, normalization=("NFC",),
                           version=m.source.commit, license_flags=m.license_flags)


def _make(word, morphs, analysis, policy, language, source, out, unresolved, reason):
    morphs = [m for m in morphs if m]
    if not word or not morphs:
        unresolved.append(UnresolvedWord(word=word, analysis=analysis, reason="empty word or no surface morphs"))
    elif "".join(morphs) == word:
        out.append(SegmentedWord.from_morphs(word, tuple(morphs), language=language, source=source, item_id=word))
    elif policy == "align" and word and any(morphs):
        out.append(segmented_word(word, morphs, language=language, source=source, item_id=word))
    else:
        unresolved.append(UnresolvedWord(word=word, analysis=analysis, reason=reason))


def load_morpho_challenge(
    language: str,
    *,
    split: Literal["train", "dev", "combined"] = "combined",
    non_surface: NonSurfacePolicy = "report",
    data_dir: str | os.PathLike[str] | None = None,
) -> GoldSegmentations:
    """Morpho Challenge 2010 gold segmentations for English, Finnish, Turkish (German: labels only).

    Parameters
    ----------
    language : {'eng', 'fin', 'tur', 'deu'} or normalized code
        ``'ger'`` is accepted as the source's German code.
    split : {'train', 'dev', 'combined'}
        ``goldstd_trainset`` (1,000 words); ``goldstd_combined`` (train + development words); ``'dev'`` is the
        combined file minus the trainset words (upstream has no develset segmentation file, only develset labels).
        German (labels only) reads ``goldstd_<trainset|develset|combined>.labels.ger``.
    non_surface : {'report', 'align'}
        What to do with analyses whose morphs do not concatenate to the word (see module docstring).
    data_dir : path-like, optional
        Data directory.

    Returns
    -------
    GoldSegmentations
        ``words`` (surface boundaries), ``unresolved`` (with reasons), ``n_alternatives``, ``corpus``.

    Raises
    ------
    UnknownNameError
        Unknown language (lists the available ones).
    CorpusFileError
        Missing/empty file or sha256 mismatch.
    ValueError
        A malformed line (message gives file and line number).

    Notes
    -----
    Validated against: entry counts equal the files' line counts (nothing dropped) and hand-checked Turkish
    detransliterations in the tests; not independently validated.
    """
    check_option(split, "split", tuple(_MC_SPLITS))
    check_option(non_surface, "non_surface", ("report", "align"))
    code, src = _lookup(language, _MC_LANGS, "Morpho Challenge 2010")
    base = "morphology/morpho_challenge_2010/morphochal10data"
    if src == "ger":
        rel = f"{base}/goldstd_{_MC_SPLITS[split]}.labels.ger"
        text, ref = _read("morpho_challenge_2010", rel, data_dir)
        unresolved = []
        for n, line in _lines(text):
            word, sep, analysis = line.partition("\t")
            if not sep:
                raise ValueError(f"{rel}:{n}: expected 'word<TAB>analysis'; got {line[:80]!r}.")
            unresolved.append(UnresolvedWord(word=normalize_text(word), analysis=analysis,
                                             reason="labels only: the German gold standard has no surface morphs"))
        return GoldSegmentations(source="morpho_challenge_2010", language=code, split=split, words=(),
                                 unresolved=tuple(unresolved), corpus=ref.model_copy(update={"split": split}))
    # There is no develset.segmentation file: 'dev' = combined entries whose word is not in the trainset file.
    rel = f"{base}/goldstd_{'trainset' if split == 'train' else 'combined'}.segmentation.{src}"
    text, ref = _read("morpho_challenge_2010", rel, data_dir)
    exclude: set[str] = set()
    if split == "dev":
        train_text, _ = _read("morpho_challenge_2010", f"{base}/goldstd_trainset.segmentation.{src}", data_dir)
        exclude = {ln.partition("\t")[0] for ln in train_text.splitlines() if ln.strip()}
    conv = detransliterate_turkish if src == "tur" else (lambda s: s)
    words: list[SegmentedWord] = []
    unresolved: list[UnresolvedWord] = []
    alts: dict[str, int] = {}
    for n, line in _lines(text):
        word, sep, analyses = line.partition("\t")
        if not sep or not analyses.strip():
            raise ValueError(f"{rel}:{n}: expected 'word<TAB>analysis'; got {line[:80]!r}.")
        if word in exclude:
            continue
        options = [a.strip() for a in analyses.split(", ")]
        first = options[0]
        morphs = []
        for item in first.split(" "):
            m_ = _ITEM.fullmatch(item)
            if not m_:
                raise ValueError(f"{rel}:{n}: item {item!r} is not 'surface:label'.")
            surf = m_.group(1).replace("\\:", ":")
            if surf != "~":  # '~' marks a morpheme with no surface form (e.g. '~:+PL' in 'batsmen')
                morphs.append(normalize_text(conv(surf)))
        w = normalize_text(conv(word))
        if len(options) > 1:
            alts[w] = len(options)
        _make(w, morphs, first, non_surface, code, "morpho_challenge_2010", words, unresolved,
              "surface morphs do not concatenate to the word")
    return GoldSegmentations(source="morpho_challenge_2010", language=code, split=split, words=tuple(words),
                             unresolved=tuple(unresolved), n_alternatives=alts,
                             corpus=ref.model_copy(update={"split": split}))


_SIG_LANGS = {"eng": ("eng_Latn", "eng"), "eng_Latn": ("eng_Latn", "eng"),
              "fra": ("fra_Latn", "fra"), "fra_Latn": ("fra_Latn", "fra")}


def load_sigmorphon2022(
    language: str,
    *,
    split: Literal["dev", "test"] = "dev",
    non_surface: NonSurfacePolicy = "report",
    data_dir: str | os.PathLike[str] | None = None,
) -> GoldSegmentations:
    """SIGMORPHON 2022 word-level gold segmentations (English, French).

    Parameters
    ----------
    language : {'eng', 'fra'} or normalized code
    split : {'dev', 'test'}
        ``test`` reads the gold file ``<lang>.word.test.gold.tsv``.
    non_surface : {'report', 'align'}
        Canonical morphs that do not concatenate to the word: report them in ``unresolved`` or align them.
    data_dir : path-like, optional

    Returns
    -------
    GoldSegmentations

    Raises
    ------
    UnknownNameError, CorpusFileError, ValueError
        As in :func:`load_morpho_challenge`.

    Notes
    -----
    Validated against: entry counts equal the file line counts; not independently validated.
    """
    check_option(split, "split", ("dev", "test"))
    check_option(non_surface, "non_surface", ("report", "align"))
    code, src = _lookup(language, _SIG_LANGS, "SIGMORPHON 2022 (word level)")
    rel = f"morphology/sigmorphon2022_segmentation/data/{src}.word.{'dev' if split == 'dev' else 'test.gold'}.tsv"
    text, ref = _read("sigmorphon2022_segmentation", rel, data_dir)
    words: list[SegmentedWord] = []
    unresolved: list[UnresolvedWord] = []
    for n, line in _lines(text):
        cols = line.split("\t")
        if len(cols) < 2 or not cols[1]:
            raise ValueError(f"{rel}:{n}: expected 'word<TAB>morph @@morph ...<TAB>category'; got {line[:80]!r}.")
        word = normalize_text(cols[0])
        morphs = [normalize_text(x) for x in cols[1].split(" @@")]
        _make(word, morphs, cols[1], non_surface, code, "sigmorphon2022_segmentation", words, unresolved,
              "canonical morphs do not concatenate to the word")
    return GoldSegmentations(source="sigmorphon2022_segmentation", language=code, split=split, words=tuple(words),
                             unresolved=tuple(unresolved), corpus=ref.model_copy(update={"split": split}))


_MORPHYNET_LANGS = {"deu": ("deu_Latn", "deu"), "deu_Latn": ("deu_Latn", "deu"), "fin": ("fin_Latn", "fin"),
                    "fin_Latn": ("fin_Latn", "fin"), "fra": ("fra_Latn", "fra"), "fra_Latn": ("fra_Latn", "fra")}


def load_morphynet(
    language: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
) -> GoldSegmentations:
    """MorphyNet derivational pairs -> one affix boundary per derived word (German, Finnish, French).

    Each row is ``source, derived, source POS, derived POS, affix, prefix|suffix``. The derived word gets the
    boundary of that affix when the affix is visible on its surface: ``derived.lower()`` starts with the prefix /
    ends with the suffix (``affix.lower()``) (``abaxial`` = ``ab|axial``; ``connotation`` = ``connot|ation`` although the source is
    ``connoter``). Morphs are the two substrings of the derived word, so ``surface_true`` holds. Rows where the affix
    is not on the surface, or would cover the whole word, go to ``unresolved``.

    Parameters
    ----------
    language : {'deu', 'fin', 'fra'} or normalized code
    data_dir : path-like, optional

    Returns
    -------
    GoldSegmentations
        One entry per row (a derived word with several sources appears once per row); ``item_id`` is
        ``'<source>><derived>'``; ``split`` is ``'all'``.

    Raises
    ------
    UnknownNameError, CorpusFileError, ValueError
        Unknown language; missing file or sha256 mismatch; malformed row (file and line).

    Notes
    -----
    The gold is **partial**: one derivational boundary per word (the outermost affix of that derivation), not an
    exhaustive segmentation (``abaxial`` also has ``axi|al``). Use it for boundary *recall*, not precision.
    Validated against: entry counts equal the file's line counts (nothing dropped); not independently validated.
    """
    code, src = _lookup(language, _MORPHYNET_LANGS, "MorphyNet (derivational)")
    rel = f"morphology/morphynet/{src}/{src}.derivational.v1.tsv"
    text, ref = _read("morphynet", rel, data_dir)
    words: list[SegmentedWord] = []
    unresolved: list[UnresolvedWord] = []
    for n, line in _lines(text):
        cols = line.split("\t")
        if len(cols) != 6 or cols[5] not in ("prefix", "suffix"):
            raise ValueError(f"{rel}:{n}: expected 6 tab-separated columns ending in prefix|suffix; got {line[:80]!r}.")
        source, derived, _, _, affix, kind = cols
        derived, affix = normalize_text(derived), normalize_text(affix)
        d, a = derived.lower(), affix.lower()
        b = None
        if a and len(a) < len(d) and len(d) == len(derived):  # lowercasing must not change the length
            if kind == "prefix" and d.startswith(a):
                b = len(a)
            elif kind == "suffix" and d.endswith(a):
                b = len(d) - len(a)
        analysis = f"{source} -> {derived} ({kind} {affix})"
        if b is None:
            unresolved.append(UnresolvedWord(word=derived, analysis=analysis, reason=f"{kind} {affix!r} is not on the surface of the derived word"))
            continue
        words.append(SegmentedWord.from_morphs(derived, (derived[:b], derived[b:]), language=code, source="morphynet",
                                               item_id=f"{source}>{derived}"))
    return GoldSegmentations(source="morphynet", language=code, split="all", words=tuple(words),
                             unresolved=tuple(unresolved), corpus=ref.model_copy(update={"split": "all"}))


class InflectionEntry(BaseModel):
    """One UniMorph row: lemma, inflected form, features."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lemma: str = Field(description="Lemma (NFC).")
    form: str = Field(description="Inflected form (NFC).")
    features: tuple[str, ...] = Field(description="UniMorph features, e.g. ('V', '3', 'SG', 'PST', 'MASC').")


def load_unimorph_heb(
    variant: Literal["heb", "heb_voc", "from_UD_unvoc"] = "heb",
    *,
    strip_diacritics: bool = False,
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[tuple[InflectionEntry, ...], CorpusRef]:
    """UniMorph Hebrew inflection tables (not a morpheme segmentation).

    Parameters
    ----------
    variant : {'heb', 'heb_voc', 'from_UD_unvoc'}
        Unvocalized Wiktionary tables, the vocalized ones, or the tables derived from UD.
    strip_diacritics : bool
        Remove niqqud (useful for ``heb_voc``); recorded in the returned CorpusRef.
    data_dir : path-like, optional

    Returns
    -------
    (entries, corpus)
        All rows in file order and the file's CorpusRef.

    Raises
    ------
    ValueError
        Bad ``variant`` or a malformed row (file and line).
    CorpusFileError
        Missing file or sha256 mismatch.

    Notes
    -----
    Validated against: entry count equals the file's non-empty lines; not independently validated.
    """
    check_option(variant, "variant", ("heb", "heb_voc", "from_UD_unvoc"))
    rel = f"morphology/unimorph_heb/{variant}"
    text, ref = _read("unimorph_heb", rel, data_dir)
    steps = ("NFC", "strip_hebrew_niqqud") if strip_diacritics else ("NFC",)
    out = []
    for n, line in _lines(text):
        cols = line.split("\t")
        if len(cols) != 3:
            raise ValueError(f"{rel}:{n}: expected 'lemma<TAB>form<TAB>features'; got {line[:80]!r}.")
        out.append(InflectionEntry(lemma=normalize_text(cols[0], steps), form=normalize_text(cols[1], steps),
                                   features=tuple(f for f in cols[2].split(";") if f)))
    return tuple(out), ref.model_copy(update={"split": variant, "normalization": steps})
