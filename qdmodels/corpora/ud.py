"""Universal Dependencies treebanks (CoNLL-U via the ``conllu`` package) -> :class:`~qdmodels.corpora.types.Sentence`.

Surface words
    A multiword-token line (``4-5  לטיפול``) is one surface word; its syntactic words (``ל``, ``טיפול``) are its
    gold parts. Ordinary token lines are surface words; empty nodes (``8.1``) are skipped.
Text and offsets
    ``# text`` when present, else reconstructed from surface words and ``SpaceAfter=No`` (UD v1.3-era Arabic PADT has
    no ``# text``). Character and UTF-8 byte offsets are found by searching each word form left to right in the
    (normalized) text; a form not found is an error naming the file and line.
Gold segmentation (``Word.segmentation``)
    * every multiword token, in every treebank: its syntactic-word forms, underscores removed (HTB writes elided
      material as ``ה_`` / ``_של_``), placed on the surface form by :func:`~qdmodels.corpora.align.align_boundaries`;
    * treebanks whose segmentation is exhaustive get a ``SegmentedWord`` for *every* word (one morph, no boundary
      when not split): Hebrew HTB and IAHLTwiki (prefixes and clitics are always split), Korean Kaist (morphemes
      from the ``+``-separated lemma column), Korean PUD (``MSeg=`` in MISC, ``-``-separated);
    * other treebanks: only multiword tokens get a segmentation; other words have ``segmentation=None``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import conllu

from qdmodels.corpora.align import segmented_word
from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.languages import normalize_language
from qdmodels.corpora.manifest import (
    CorpusManifest,
    file_path,
    get_manifest,
    list_manifests,
    sha256_file,
)
from qdmodels.corpora.normalize import normalization_steps, normalize_text
from qdmodels.corpora.types import SegmentedWord, Sentence, Word
from qdstats.records import CorpusRef
from qdstats.validation import UnknownNameError, check_int, check_option, did_you_mean

__all__ = [
    "ConllUFormatError",
    "UDSplit",
    "align_pud",
    "load_conllu",
    "parse_conllu",
    "ud_treebanks",
]

UDSplit = Literal["dev", "test"]
_SPLITS = ("dev", "test")

#: Treebanks whose gold segmentation covers every word, and how.
EXHAUSTIVE_SEGMENTATION: dict[str, Literal["mwt", "lemma_plus", "mseg"]] = {
    "ud_hebrew_htb": "mwt",
    "ud_hebrew_iahltwiki": "mwt",
    "ud_korean_kaist": "lemma_plus",
    "ud_korean_pud": "mseg",
}


class ConllUFormatError(ValueError):
    """A malformed CoNLL-U file; the message starts with ``<file>:<line>:``."""


def ud_treebanks() -> tuple[str, ...]:
    """Corpus ids of the UD treebanks with a manifest (``'ud_hebrew_iahltwiki'``, ...)."""
    return tuple(k for k, m in list_manifests().items() if m.kind == "treebank")


def _resolve_treebank(treebank: str) -> CorpusManifest:
    names = ud_treebanks()
    key = treebank
    if key not in names:
        alt = "ud_" + key.removeprefix("UD_").removeprefix("ud_").lower().replace("-", "_")
        if alt in names:
            key = alt
        else:
            raise UnknownNameError(
                f"`treebank` {treebank!r} is not a known UD treebank." + did_you_mean(alt, names)
                + f" Available: {', '.join(names)}."
            )
    return get_manifest(key)


def _check_lines(text: str, label: str) -> None:
    """Line-level CoNLL-U checks with exact line numbers (before handing blocks to ``conllu``)."""
    for n, line in enumerate(text.split("\n"), start=1):
        if not line or line.startswith("#"):
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise ConllUFormatError(
                f"{label}:{n}: expected 10 tab-separated columns, found {len(cols)}: {line[:80]!r}"
            )
        if not re.fullmatch(r"\d+(-\d+|\.\d+)?", cols[0]):
            raise ConllUFormatError(f"{label}:{n}: bad ID column {cols[0]!r} (expected N, N-M or N.M).")
        if cols[1] == "" :
            raise ConllUFormatError(f"{label}:{n}: empty FORM column.")


def _blocks(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, block text) for each blank-line separated sentence block."""
    start, buf = None, []
    for n, line in enumerate(text.split("\n"), start=1):
        if line.strip() == "":
            if buf:
                yield start or n, "\n".join(buf) + "\n\n"
            start, buf = None, []
        else:
            if start is None:
                start = n
            buf.append(line)
    if buf:
        yield start or 1, "\n".join(buf) + "\n\n"


def _space_after(misc: dict | None) -> bool:
    return not (misc and misc.get("SpaceAfter") == "No")


def _sent_id(meta: dict) -> str | None:
    if meta.get("sent_id"):
        return str(meta["sent_id"]).strip()
    return None


def parse_conllu(
    source: str | os.PathLike[str],
    *,
    language: str,
    corpus_id: str = "conllu",
    split: str | None = None,
    corpus: CorpusRef | None = None,
    strip_diacritics: bool = False,
    segmentation: Literal["mwt", "lemma_plus", "mseg", "mwt_only"] = "mwt_only",
    text: str | None = None,
    limit: int | None = None,
) -> list[Sentence]:
    """Parse a CoNLL-U file (or ``text``) into sentences with offsets and gold segmentations.

    Parameters
    ----------
    source : path-like
        File to read (also used as the label in error messages when ``text`` is given).
    language : str
        Normalized language code of the treebank, e.g. ``'heb_Hebr'``.
    corpus_id : str
        Source id recorded in each ``SegmentedWord.source``.
    split : str, optional
        Split name stored in each sentence.
    corpus : CorpusRef, optional
        Reference stored in each sentence.
    strip_diacritics : bool
        Remove Hebrew niqqud / Arabic harakat (see :mod:`qdmodels.corpora.normalize`); NFC is always applied.
    segmentation : {'mwt_only', 'mwt', 'lemma_plus', 'mseg'}
        ``'mwt_only'``: multiword tokens only; ``'mwt'``: every word (unsplit words get one morph);
        ``'lemma_plus'``: every word from the ``+``-separated lemma (Korean Kaist), plus multiword tokens;
        ``'mseg'``: every word from ``MSeg=`` in MISC, plus multiword tokens.
    text : str, optional
        CoNLL-U content to parse instead of reading ``source``.
    limit : int, optional
        Stop after this many sentences.

    Returns
    -------
    list of Sentence

    Raises
    ------
    ConllUFormatError
        Malformed content; the message starts with ``<file>:<line>:``.
    CorpusFileError
        The file is missing or empty.

    Notes
    -----
    Validated against: real-file counts (IAHLTwiki dev+test = 741 sentences, the number of ``# sent_id`` lines) and
    hand-checked Hebrew prefix boundaries in the integration tests; not independently validated.
    """
    label = str(source)
    check_option(segmentation, "segmentation", ("mwt_only", "mwt", "lemma_plus", "mseg"))
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    if text is None:
        p = Path(source)
        if not p.is_file():
            raise CorpusFileError(f"CoNLL-U file {label!r} does not exist.")
        raw = p.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise ConllUFormatError(f"{label}:{line}: not UTF-8 text (byte {exc.start} of the file).") from None
    if not text.strip():
        raise CorpusFileError(f"CoNLL-U file {label!r} is empty.")
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    _check_lines(text, label)
    steps = normalization_steps(language, strip_diacritics=strip_diacritics)
    norm = lambda s: normalize_text(s, steps)
    out: list[Sentence] = []
    for start, block in _blocks(text):
        try:
            parsed = conllu.parse(block)
        except (conllu.exceptions.ParseException, ValueError, IndexError, KeyError) as exc:
            raise ConllUFormatError(f"{label}:{start}: cannot parse sentence block: {exc}") from None
        # conllu drops comments without '=' (UD v1.3 PADT writes "# sent_id s-p1"): read that form here
        raw = re.search(r"^#\s*sent_id\s+([^=\s]\S*)\s*$", block, re.MULTILINE)
        for tl in parsed:
            if not len(tl):
                continue
            if raw and not _sent_id(tl.metadata):
                tl.metadata["sent_id"] = raw.group(1)
            _check_ranges(tl, block, start, label)
            out.append(_sentence(tl, start, label, language, corpus_id, split, corpus, norm, segmentation))
            if limit is not None and len(out) >= limit:
                return out
    if not out:
        raise CorpusFileError(f"CoNLL-U file {label!r} has no sentences.")
    return out


def _check_ranges(tl, block: str, start: int, label: str) -> None:
    """Multiword-token ranges must cover existing words, directly after the range line, and fit their form."""
    toks = list(tl)
    word_ids = [t["id"] for t in toks if isinstance(t["id"], int)]
    last = max(word_ids, default=0)
    for k, tok in enumerate(toks):
        tid = tok["id"]
        if not (isinstance(tid, tuple) and len(tid) == 3 and tid[1] == "-"):
            continue
        lo, hi = int(tid[0]), int(tid[2])
        where = f"{label}:{_line_of(block, start, f'{lo}-{hi}')}"
        if hi > last:
            raise ConllUFormatError(
                f"{where}: multiword token range {lo}-{hi} spans past the sentence, whose last word is {last}."
            )
        following = [t["id"] for t in toks[k + 1:k + 2 + hi - lo] if isinstance(t["id"], int)][: hi - lo + 1]
        if following != list(range(lo, hi + 1)):
            raise ConllUFormatError(
                f"{where}: multiword token range {lo}-{hi} must be followed by words {lo}..{hi}; got ids {following}."
            )
        form = tok["form"] or ""
        if hi - lo + 1 > len(form):
            raise ConllUFormatError(
                f"{where}: multiword token {form!r} ({len(form)} characters) covers {hi - lo + 1} words; "
                "a range cannot cover more words than its surface form has characters."
            )


def _line_of(block: str, start: int, token_id: str) -> int:
    """1-based file line of the token line starting with ``token_id`` in a block that starts at line ``start``."""
    for k, line in enumerate(block.split("\n")):
        if line.split("\t", 1)[0] == token_id:
            return start + k
    return start


def _sentence(tl, start, label, language, corpus_id, split, corpus, norm, segmentation) -> Sentence:
    meta = tl.metadata
    sid = _sent_id(meta) or f"{Path(label).name}:{start}"
    # collect surface words: (form, parts or None, lemma, misc)
    surface: list[tuple[str, list[str] | None, str | None, dict | None]] = []
    skip_until = 0
    toks = list(tl)
    for k, tok in enumerate(toks):
        tid = tok["id"]
        if isinstance(tid, tuple):
            if len(tid) == 3 and tid[1] == "-":
                lo, hi = int(tid[0]), int(tid[2])
                parts = [t["form"] for t in toks[k + 1:] if isinstance(t["id"], int) and lo <= t["id"] <= hi]
                surface.append((tok["form"], parts, None, tok["misc"]))
                skip_until = hi
            continue  # empty node (N.M) or range handled
        if tid <= skip_until:
            continue
        surface.append((tok["form"], None, tok["lemma"], tok["misc"]))
    forms = [norm(f) for f, *_ in surface]
    if "text" in meta and meta["text"] is not None:
        stext = norm(meta["text"])
    else:
        stext = "".join(f + (" " if _space_after(m) and i < len(forms) - 1 else "") for i, (f, (_, _, _, m)) in enumerate(zip(forms, surface)))
    words: list[Word] = []
    cursor = 0
    for i, (form, (raw, parts, lemma, misc)) in enumerate(zip(forms, surface)):
        pos = stext.find(form, cursor)
        if pos < 0 or stext[cursor:pos].strip():
            raise ConllUFormatError(
                f"{label}:{start}: word {i + 1} {form!r} of sentence {sid!r} not found in its text after offset {cursor}."
            )
        end = pos + len(form)
        seg = _segment(form, parts, lemma, misc, norm, segmentation, language, corpus_id, sid)
        words.append(Word(
            index=i, form=form, char_start=pos, char_end=end,
            byte_start=len(stext[:pos].encode("utf-8")), byte_end=len(stext[:end].encode("utf-8")),
            segmentation=seg,
        ))
        cursor = end
    return Sentence(sent_id=sid, language=language, text=stext, words=tuple(words), split=split, corpus=corpus)


def _segment(form, parts, lemma, misc, norm, mode, language, corpus_id, sid) -> SegmentedWord | None:
    kw = {"language": language, "source": corpus_id, "item_id": sid}
    if parts is not None:
        clean = [norm(p.replace("_", "")) for p in parts]
        clean = [p for p in clean if p]
        if clean:
            return segmented_word(form, clean, **kw)
        return None
    if mode == "mwt":
        return segmented_word(form, [form], **kw)
    if mode == "lemma_plus":
        if lemma and "+" in lemma.strip("+") and lemma != "+":
            pieces = [norm(x) for x in lemma.split("+") if x]
            if pieces:
                return segmented_word(form, pieces, **kw)
        return segmented_word(form, [form], **kw)
    if mode == "mseg":
        mseg = misc.get("MSeg") if misc else None
        if mseg and "-" in mseg.strip("-"):
            pieces = [norm(x) for x in mseg.split("-") if x]
            if pieces:
                return segmented_word(form, pieces, **kw)
        return segmented_word(form, [form], **kw)
    return None


def _treebank_file(m: CorpusManifest, split: str) -> str:
    cands = [f.path for f in m.files if f.path.endswith(f"-ud-{split}.conllu")]
    if not cands:
        have = sorted({f.path.rsplit("-", 1)[-1].removesuffix(".conllu") for f in m.files if f.path.endswith(".conllu")})
        raise ValueError(f"`split` {split!r} is not available for treebank {m.corpus_id!r}; available: {have}.")
    return cands[0]


def load_conllu(
    treebank: str,
    split: UDSplit,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    strip_diacritics: bool = False,
    limit: int | None = None,
    verify: bool = True,
) -> list[Sentence]:
    """Load one split of a UD treebank from the data directory.

    Parameters
    ----------
    treebank : str
        Corpus id (``'ud_hebrew_iahltwiki'``) or UD name (``'UD_Hebrew-IAHLTwiki'``).
    split : {'dev', 'test'}
        PUD treebanks have only ``'test'``.
    data_dir : path-like, optional
        Data directory (argument, then ``QD_DATA_DIR``, then the per-user cache).
    strip_diacritics : bool
        Remove Hebrew niqqud / Arabic harakat; recorded in ``CorpusRef.normalization``.
    limit : int, optional
        First ``limit`` sentences only.
    verify : bool
        Check the file's sha256 against the manifest first.

    Returns
    -------
    list of Sentence
        Each with ``corpus=CorpusRef(corpus_id, split, sha256, normalization, version, license_flags)``.

    Raises
    ------
    UnknownNameError
        Unknown treebank (lists the available ones).
    ValueError
        Split not in the treebank.
    CorpusFileError
        File missing, empty or failing its sha256.
    ConllUFormatError
        Malformed CoNLL-U (``file:line``).

    Notes
    -----
    Segmentation rules: see the module docstring. Validated against: real counts (IAHLTwiki dev+test = 741
    sentences) and hand-checked Hebrew prefix boundaries; not independently validated.

    Examples
    --------
    >>> sents = load_conllu("ud_hebrew_iahltwiki", "dev", limit=1)  # doctest: +SKIP
    >>> [w.form for w in sents[0].words][:3]  # doctest: +SKIP
    ['עירוי', 'פלזמה', 'משמש']
    """
    check_option(split, "split", _SPLITS)
    m = _resolve_treebank(treebank)
    rel = _treebank_file(m, split)
    path = file_path(m, rel, data_dir)
    entry = m.file(rel)
    if verify:
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise CorpusFileError(f"{str(path)!r} has sha256 {digest}, but the manifest of {m.corpus_id!r} says {entry.sha256}.")
    language = m.languages[0].code
    steps = normalization_steps(language, strip_diacritics=strip_diacritics)
    ref = CorpusRef(
        corpus_id=m.corpus_id, split=split, sha256=entry.sha256, normalization=steps,
        version=entry.commit or m.source.commit, license_flags=m.license_flags,
    )
    return parse_conllu(
        path, language=language, corpus_id=m.corpus_id, split=split, corpus=ref, strip_diacritics=strip_diacritics,
        segmentation=EXHAUSTIVE_SEGMENTATION.get(m.corpus_id, "mwt_only"), limit=limit,
    )


def align_pud(
    languages: Sequence[str] = ("eng_Latn", "deu_Latn"),
    *,
    data_dir: str | os.PathLike[str] | None = None,
    strip_diacritics: bool = False,
) -> list[tuple[Sentence, ...]]:
    """Sentences of the PUD treebanks aligned by ``sent_id``.

    Parameters
    ----------
    languages : sequence of str
        Normalized codes (``'eng_Latn'``) or UD codes (``'en'``) of PUD treebanks, in the order wanted in each tuple.
    data_dir, strip_diacritics
        As in :func:`load_conllu`.

    Returns
    -------
    list of tuple of Sentence
        One tuple per ``sent_id`` present in every requested language, in the order of the first language's file.

    Raises
    ------
    UnknownNameError
        A language without a PUD treebank (lists the available ones).
    """
    pud = {m.languages[0].code: cid for cid, m in list_manifests().items() if cid.endswith("_pud")}
    chosen = []
    for lang in languages:
        code = lang if lang in pud else None
        if code is None:
            try:
                code = normalize_language(lang, scheme="ud")
            except UnknownNameError:
                code = None
        if code not in pud:
            raise UnknownNameError(
                f"`languages` contains {lang!r}, which has no PUD treebank." + did_you_mean(lang, pud)
                + f" Available: {', '.join(sorted(pud))}."
            )
        chosen.append(pud[code])
    per = [load_conllu(cid, "test", data_dir=data_dir, strip_diacritics=strip_diacritics) for cid in chosen]
    maps = [{s.sent_id: s for s in sents} for sents in per]
    return [tuple(mp[s.sent_id] for mp in maps) for s in per[0] if all(s.sent_id in mp for mp in maps)]
