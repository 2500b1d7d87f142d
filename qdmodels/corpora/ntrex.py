"""NTREX-128 loader: line-aligned news translations with document ids and a deterministic document-level split.

Files: ``ntrex128/NTREX-128/newstest2019-ref.<code>.txt`` (127 reference languages) and
``newstest2019-src.eng.txt`` (the English source, code ``eng``): 128 language codes, 1,997 lines each (CRLF line
ends in the upstream files; stripped). Spanish has a second reference, ``newstest2019-ref-2.spa.txt``, which is in
the manifest but not loaded (``spa`` is the first reference). ``DOCUMENT_IDS.tsv`` gives line *i*'s document.

Language names accepted: the NTREX code (``'heb'``, ``'zho-CN'``, ``'eng-GB'``) or the normalized code
(``'heb_Hebr'``). Normalized codes shared by several variants resolve to the variant whose code is the bare
ISO 639-3 code (``'eng_Latn'`` -> the source ``eng``; ``'fra_Latn'`` -> ``fra``; ``'por_Latn'`` -> ``por``;
``'spa_Latn'`` -> ``spa``); ask for ``'eng-GB'`` etc. to get a regional variant.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.manifest import (
    CorpusManifest,
    file_path,
    get_manifest,
    sha256_file,
)
from qdmodels.corpora.normalize import normalization_steps, normalize_text
from qdmodels.corpora.splits import SPLIT_RULES, document_split
from qdmodels.corpora.types import ParallelItem
from qdstats.records import CorpusRef
from qdstats.validation import UnknownNameError, check_int, check_option, did_you_mean

__all__ = ["NTREX_LINES", "NtrexSplit", "ParallelCorpus", "load_ntrex", "ntrex_languages", "resolve_ntrex_language"]

NtrexSplit = Literal["dev", "test", "all"]
NTREX_LINES = 1997
CORPUS_ID = "ntrex128"
DOC_IDS = "ntrex128/DOCUMENT_IDS.tsv"


class ParallelCorpus(BaseModel):
    """Items of a line-aligned parallel corpus, per language, sharing item ids across languages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corpus_id: str = Field(description="Corpus id, e.g. 'ntrex128'.")
    split: str = Field(description="'dev', 'test' or 'all'.")
    split_rule: str = Field(description="How lines were assigned to dev/test (document-level rule, versioned).")
    items: dict[str, tuple[ParallelItem, ...]] = Field(description="Items per requested language key, in line order.")
    license_flags: tuple[str, ...] = Field(default=(), description="License restrictions of the corpus.")
    parallel: bool = Field(default=True, description="Every language has the same item ids (translations of each other).")
    has_document_ids: bool = Field(
        default=True, description="The source gives document ids; False: each item is its own document (CIs cluster by item).")
    notes: tuple[str, ...] = Field(default=(), description="Facts about the corpus a command should print once, e.g. "
                                                           "'no document_id: CIs cluster by item'.")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.items)

    def __getitem__(self, key: str) -> tuple[ParallelItem, ...]:
        if key not in self.items:
            raise UnknownNameError(f"`key` {key!r} is not loaded." + did_you_mean(key, self.items) + f" Loaded: {', '.join(self.items)}.")
        return self.items[key]

    def __len__(self) -> int:
        return len(self.items)

    def texts(self, key: str) -> list[str]:
        """Texts of one language, in line order."""
        return [it.text for it in self[key]]


def ntrex_languages() -> tuple[str, ...]:
    """The 128 NTREX language codes (source codes, sorted)."""
    return tuple(le.source_code for le in get_manifest(CORPUS_ID).languages)


def resolve_ntrex_language(lang: str, manifest: CorpusManifest | None = None) -> tuple[str, str]:
    """``(source_code, normalized_code)`` for an NTREX code or a normalized code; did-you-mean error otherwise."""
    m = manifest or get_manifest(CORPUS_ID)
    by_src = {le.source_code: le.code for le in m.languages}
    if lang in by_src:
        return lang, by_src[lang]
    cands = [s for s, c in by_src.items() if c == lang]
    if len(cands) == 1:
        return cands[0], lang
    if len(cands) > 1:
        bare = lang.split("_")[0]
        if bare in cands:
            return bare, lang
        raise UnknownNameError(f"`languages` entry {lang!r} is ambiguous in NTREX-128: one of {sorted(cands)}.")
    valid = sorted(by_src) + sorted(set(by_src.values()))
    raise UnknownNameError(
        f"`languages` entry {lang!r} is not an NTREX-128 language." + did_you_mean(lang, valid)
        + f" Available ({len(by_src)}): {', '.join(sorted(by_src))}."
    )


def _file_for(code: str) -> str:
    if code == "eng":
        return "ntrex128/NTREX-128/newstest2019-src.eng.txt"
    return f"ntrex128/NTREX-128/newstest2019-ref.{code}.txt"


def _read_lines(path, label: str) -> list[str]:
    text = path.read_bytes().decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln.removesuffix("\r") for ln in lines]
    if len(lines) != NTREX_LINES:
        raise CorpusFileError(f"{label!r} has {len(lines)} lines; NTREX-128 files have {NTREX_LINES}.")
    return lines


def load_ntrex(
    languages: Sequence[str] | str | None = None,
    *,
    split: NtrexSplit = "dev",
    limit: int | None = None,
    sample: Literal["first", "spread"] = "first",
    data_dir: str | os.PathLike[str] | None = None,
    strip_diacritics: bool = False,
    verify: bool = True,
) -> ParallelCorpus:
    """Load NTREX-128 lines for some languages, with document ids and a document-level dev/test split.

    Parameters
    ----------
    languages : str or sequence of str, optional
        NTREX codes (``'heb'``, ``'zho-CN'``) or normalized codes (``'heb_Hebr'``). None loads all 128.
    split : {'dev', 'test', 'all'}
        Document-level split (rule ``'alternate'`` of :func:`~qdmodels.corpora.splits.document_split`: distinct
        document ids sorted, alternately dev and test). Use dev for selection, test for reporting.
    limit : int, optional
        Keep ``limit`` items of the split per language (the same items in every language).
    sample : {'first', 'spread'}, default 'first'
        With ``limit``: the first items (a few documents: NTREX documents have about 16 sentences), or items
        spread evenly over the split, first and last included (many documents, so document-cluster CIs rest on
        many clusters).
    data_dir : path-like, optional
        Data directory (argument, then ``QD_DATA_DIR``, then the per-user cache).
    strip_diacritics : bool
        Remove Hebrew niqqud / Arabic-script harakat (recorded in ``CorpusRef.normalization``).
    verify : bool
        Check each language file's sha256 against the manifest before use.

    Returns
    -------
    ParallelCorpus
        ``items`` keyed by the requested names (by NTREX code when ``languages`` is None); every language has the
        same item ids (``'ntrex128:0017'`` for line 17), line numbers and document ids.

    Raises
    ------
    UnknownNameError
        Unknown language (message lists the available codes, with a did-you-mean).
    ValueError
        Bad ``split`` or ``limit``.
    CorpusFileError
        A file missing, empty, with the wrong line count or failing its sha256.

    Notes
    -----
    NFC is always applied. Validated against: real counts (128 languages x 1,997 lines, 123 documents) and the
    manifest sha256 values in the integration tests; not independently validated.

    Examples
    --------
    >>> corpus = load_ntrex(["heb_Hebr", "eng_Latn"], split="dev", limit=2)  # doctest: +SKIP
    >>> corpus["heb_Hebr"][0].item_id == corpus["eng_Latn"][0].item_id  # doctest: +SKIP
    True
    """
    check_option(split, "split", ("dev", "test", "all"))
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    m = get_manifest(CORPUS_ID)
    if languages is None:
        keys = [le.source_code for le in m.languages]
    elif isinstance(languages, str):
        keys = [languages]
    else:
        keys = list(languages)
        if not keys:
            raise ValueError("`languages` must not be empty; pass None for all languages.")
    resolved = {k: resolve_ntrex_language(k, m) for k in keys}

    doc_path = file_path(m, DOC_IDS, data_dir)
    doc_ids = [d.strip() for d in _read_lines(doc_path, str(doc_path))]
    if any(not d for d in doc_ids):
        raise CorpusFileError(f"{str(doc_path)!r} has empty document ids.")
    assign = document_split(doc_ids, rule="alternate")
    keep = [i for i, d in enumerate(doc_ids) if split == "all" or assign[d] == split]
    check_option(sample, "sample", ("first", "spread"))
    if limit is not None:
        if sample == "first" or limit >= len(keep):
            keep = keep[:limit]
        else:
            n = len(keep)
            keep = [keep[int(round(k * (n - 1) / max(limit - 1, 1)))] for k in range(limit)]

    out: dict[str, tuple[ParallelItem, ...]] = {}
    for key, (src, code) in resolved.items():
        rel = _file_for(src)
        entry = m.file(rel)
        path = file_path(m, rel, data_dir)
        if verify:
            digest = sha256_file(path)
            if digest != entry.sha256:
                raise CorpusFileError(f"{str(path)!r} has sha256 {digest}, but the manifest says {entry.sha256}.")
        lines = _read_lines(path, str(path))
        steps = normalization_steps(code, strip_diacritics=strip_diacritics)
        ref = CorpusRef(corpus_id=CORPUS_ID, split=split, sha256=entry.sha256, normalization=steps,
                        version=m.source.commit, license_flags=m.license_flags)
        out[key] = tuple(
            ParallelItem(item_id=f"{CORPUS_ID}:{i:04d}", line=i, document_id=doc_ids[i], language=code,
                         source_code=src, text=normalize_text(lines[i], steps),
                         split=(assign[doc_ids[i]] if split == "all" else split), corpus=ref)
            for i in keep
        )
    return ParallelCorpus(corpus_id=CORPUS_ID, split=split, split_rule=SPLIT_RULES["alternate"], items=out,
                          license_flags=m.license_flags)
