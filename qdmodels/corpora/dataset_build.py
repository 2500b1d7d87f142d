"""``dataset_build`` calibration text: the default calibration set and the embedded default corpus.

The PyPI package ``dataset-build`` (BSD-2-Clause) ships about 30,000 words of topic-matched, *not parallel*,
model-generated text per language: ``dataset_build/data/<code>/<code>.txt`` (38 languages; English has five extra
files, ``history.txt``, ``jobs.txt``, ``philosophy.txt``, ``religion.txt``, ``weird.txt``, which are not
topic-matched and are loaded only with ``include_extra=True``). The files are read from the installed distribution
(located with :mod:`importlib.metadata`; the package itself is not imported, since its code does not import on
Python < 3.12) and verified against ``corpora/dataset_build/manifest.yaml``.

Every ``<code>.txt`` starts with the text generator's preamble ("Absolutely. Here are 30,000 words ..."): one
paragraph, or two for ``heb``, ``swa`` and ``ukr`` (a second line such as "Here is the text:"), per the hand-checked
table :data:`PREAMBLE_PARAGRAPHS` for the pinned files. The preamble is dropped (``drop_preamble=True``) from
``paragraphs`` and from the items, and kept in ``text``.
Items are paragraphs (blank-line separated); each paragraph is its own document (the files record no document
structure), item ids are ``dataset_build:<code>:<k:04d>`` and are *not* shared across languages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from qdmodels.corpora.datadir import CorpusFileError
from qdmodels.corpora.manifest import corpus_root, get_manifest, safe_join, sha256_file
from qdmodels.corpora.normalize import normalization_steps, normalize_text
from qdmodels.corpora.types import ParallelItem
from qdstats.records import CorpusRef
from qdstats.validation import UnknownNameError, check_int, did_you_mean

__all__ = ["PREAMBLE_PARAGRAPHS", "CalibrationText", "DatasetBuildCorpus", "dataset_build_languages", "load_dataset_build"]

CORPUS_ID = "dataset_build"

#: Preamble paragraphs at the start of ``<code>.txt`` in dataset-build 0.1.11 (hand-checked; default 1).
PREAMBLE_PARAGRAPHS: dict[str, int] = {"heb": 2, "swa": 2, "ukr": 2}


class CalibrationText(BaseModel):
    """The ``dataset_build`` text of one language."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    language: str = Field(description="ISO 639-3 + script.")
    source_code: str = Field(description="The package's folder name, e.g. 'ara', 'nor'.")
    files: tuple[str, ...] = Field(description="Files read, relative to site-packages.")
    text: str = Field(description="All files, normalized, joined with a blank line (preamble included).")
    paragraphs: tuple[str, ...] = Field(description="Non-empty paragraphs (blank-line separated), preamble dropped if asked.")
    corpus: CorpusRef = Field(description="sha256 of the single file, or of the sorted file hashes joined by newlines.")


class DatasetBuildCorpus(BaseModel):
    """``dataset_build`` text per language, as full texts and as paragraph items."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    corpus_id: str = Field(default=CORPUS_ID, description="Corpus id.")
    parallel: bool = Field(default=False, description="Always False: the languages' texts are topic-matched, not translations.")
    texts: dict[str, CalibrationText] = Field(description="Full text per requested language key.")
    items: dict[str, tuple[ParallelItem, ...]] = Field(description="Paragraph items per requested language key (first `limit`).")
    license_flags: tuple[str, ...] = Field(default=(), description="License restrictions.")

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.items)

    def __getitem__(self, key: str) -> CalibrationText:
        if key not in self.texts:
            raise UnknownNameError(f"`key` {key!r} is not loaded." + did_you_mean(key, self.texts) + f" Loaded: {', '.join(self.texts)}.")
        return self.texts[key]

    def __len__(self) -> int:
        return len(self.texts)


def dataset_build_languages() -> tuple[str, ...]:
    """Normalized codes of the ``dataset_build`` languages (sorted by package folder)."""
    return tuple(le.code for le in get_manifest(CORPUS_ID).languages)


def load_dataset_build(
    languages: Sequence[str] | str | None = None,
    *,
    limit: int | None = None,
    include_extra: bool = False,
    strip_diacritics: bool = False,
    drop_preamble: bool = True,
    verify: bool = True,
) -> DatasetBuildCorpus:
    """Load ``dataset_build`` text per language from the installed package.

    Parameters
    ----------
    languages : str or sequence of str, optional
        Normalized codes (``'heb_Hebr'``) or package codes (``'heb'``, ``'ara'``). None loads all 38.
    limit : int, optional
        First ``limit`` paragraph items per language (``texts`` always hold the full text).
    include_extra : bool
        Also read the English-only extra files (not topic-matched with the other languages).
    strip_diacritics : bool
        Remove Hebrew niqqud / Arabic harakat (recorded in the CorpusRef).
    drop_preamble : bool
        Leave out the first paragraph of each ``<code>.txt`` (the generator's preamble) from paragraphs and items.
    verify : bool
        Check each file's sha256 against the manifest.

    Returns
    -------
    DatasetBuildCorpus
        ``texts`` (``CalibrationText`` per key) and ``items`` (paragraph ``ParallelItem`` per key), keyed by the
        requested names (by normalized code when ``languages`` is None); ``parallel`` is False.

    Raises
    ------
    UnknownNameError
        Unknown language (lists the available ones).
    ValueError
        Bad ``limit``; empty ``languages``.
    CorpusFileError
        Package not installed, file missing/empty or failing its sha256.

    Notes
    -----
    ``ara`` is mapped to ``arb_Arab`` (the text is Modern Standard Arabic) and ``nor`` to ``nob_Latn`` (the text
    says it is Bokmål). Validated against: the manifest sha256 values (files of dataset-build 0.1.11); not
    independently validated.

    Examples
    --------
    >>> db = load_dataset_build(["heb_Hebr"], limit=2)  # doctest: +SKIP
    >>> [it.item_id for it in db.items["heb_Hebr"]]  # doctest: +SKIP
    ['dataset_build:heb:0000', 'dataset_build:heb:0001']
    """
    if limit is not None:
        limit = check_int(limit, "limit", minimum=1)
    m = get_manifest(CORPUS_ID)
    by_code = {le.code: le.source_code for le in m.languages}
    by_src = {le.source_code: le.code for le in m.languages}
    if languages is None:
        keys = list(by_code)
    elif isinstance(languages, str):
        keys = [languages]
    else:
        keys = list(languages)
        if not keys:
            raise ValueError("`languages` must not be empty; pass None for all languages.")
    root = corpus_root(m)
    texts: dict[str, CalibrationText] = {}
    items: dict[str, tuple[ParallelItem, ...]] = {}
    for key in keys:
        if key in by_code:
            code, src = key, by_code[key]
        elif key in by_src:
            code, src = by_src[key], key
        else:
            valid = sorted(by_code) + sorted(by_src)
            raise UnknownNameError(
                f"`languages` entry {key!r} is not a dataset_build language." + did_you_mean(key, valid)
                + f" Available: {', '.join(sorted(by_code))}."
            )
        primary = f"dataset_build/data/{src}/{src}.txt"
        entries = [f for f in m.files if f.path == primary]
        if include_extra:
            entries += [f for f in m.files if f.path.startswith(f"dataset_build/data/{src}/") and f.path != primary]
        if not entries:
            raise CorpusFileError(f"manifest {CORPUS_ID!r} lists no {primary!r}.")
        steps = normalization_steps(code, strip_diacritics=strip_diacritics)
        parts, paras, hashes = [], [], []
        for e in entries:
            p = safe_join(root, e.path)
            if not p.is_file():
                raise CorpusFileError(f"dataset_build file {str(p)!r} is missing; reinstall `dataset-build=={m.source.version}`.")
            if p.stat().st_size == 0:
                raise CorpusFileError(f"dataset_build file {str(p)!r} is empty.")
            if verify:
                digest = sha256_file(p)
                if digest != e.sha256:
                    raise CorpusFileError(f"{str(p)!r} has sha256 {digest}, but the manifest says {e.sha256}.")
            t = normalize_text(p.read_text(encoding="utf-8").replace("\r\n", "\n"), steps)
            parts.append(t)
            ps = [x.strip() for x in t.split("\n\n") if x.strip()]
            skip = PREAMBLE_PARAGRAPHS.get(src, 1) if (drop_preamble and e.path == primary) else 0
            paras.extend(ps[skip:])
            hashes.append(e.sha256)
        sha = hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(sorted(hashes)).encode()).hexdigest()
        ref = CorpusRef(corpus_id=CORPUS_ID, split=None, sha256=sha, normalization=steps,
                        version=m.source.version, license_flags=m.license_flags)
        texts[key] = CalibrationText(language=code, source_code=src, files=tuple(e.path for e in entries),
                                     text="\n\n".join(parts), paragraphs=tuple(paras), corpus=ref)
        chosen = paras[:limit] if limit is not None else paras
        items[key] = tuple(
            ParallelItem(item_id=f"{CORPUS_ID}:{src}:{k:04d}", line=k, document_id=f"{CORPUS_ID}:{src}:{k:04d}",
                         language=code, source_code=src, text=para, split=None, corpus=ref)
            for k, para in enumerate(chosen)
        )
    return DatasetBuildCorpus(texts=texts, items=items, license_flags=m.license_flags)
