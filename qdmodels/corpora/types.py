"""Typed items produced by the corpus loaders (the contract between corpora, tokenization and evaluation).

All offsets are into the NFC-normalized text that the item carries; byte offsets are into its UTF-8 encoding.
Boundaries are *internal* morpheme boundaries: positions strictly inside a word (0 < b < len), sorted, unique.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from qdstats.records import CorpusRef

__all__ = ["ParallelItem", "SegmentedWord", "Sentence", "Word"]


class SegmentedWord(BaseModel):
    """A surface word with its gold morpheme segmentation.

    ``morphs`` concatenate exactly to ``word`` when the segmentation is surface-true (``surface_true``);
    for gold standards whose morphs are not substrings (e.g. Hebrew article elision in ``בבית`` = ``ב+ה+בית``,
    or Morpho Challenge allomorph labels) ``boundaries`` still give the character offsets in ``word`` and
    ``surface_true`` is False.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    word: str = Field(description="Surface form (NFC).")
    morphs: tuple[str, ...] = Field(description="Gold morphs, in order.")
    boundaries: tuple[int, ...] = Field(description="Internal boundary offsets in characters of `word`, sorted, each in (0, len(word)).")
    byte_boundaries: tuple[int, ...] = Field(description="The same boundaries as UTF-8 byte offsets of `word`.")
    surface_true: bool = Field(default=True, description="Whether ''.join(morphs) == word.")
    language: str = Field(description="ISO 639-3 + script, e.g. 'heb_Hebr'.")
    source: str = Field(description="Gold source id, e.g. 'ud_hebrew_iahltwiki', 'morpho_challenge_2010'.")
    item_id: str | None = Field(default=None, description="Sentence/word id in the source, when it has one.")

    @model_validator(mode="after")
    def _check(self) -> "SegmentedWord":
        n = len(self.word)
        b = self.boundaries
        if list(b) != sorted(set(b)) or any(not (0 < x < n) for x in b):
            raise ValueError(f"`boundaries` must be sorted unique offsets in (0, {n}) for {self.word!r}; got {b}.")
        expected = tuple(len(self.word[:x].encode("utf-8")) for x in b)
        if self.byte_boundaries != expected:
            raise ValueError(f"`byte_boundaries` {self.byte_boundaries} do not match `boundaries` {b} for {self.word!r}.")
        return self

    @classmethod
    def from_morphs(cls, word: str, morphs: tuple[str, ...] | list[str], **kw: object) -> "SegmentedWord":
        """Build from surface-true morphs (``''.join(morphs) == word``)."""
        if "".join(morphs) != word:
            raise ValueError(f"morphs {morphs!r} do not concatenate to {word!r}; pass explicit boundaries instead.")
        offs, pos = [], 0
        for m in morphs[:-1]:
            pos += len(m)
            offs.append(pos)
        b = tuple(o for o in offs if 0 < o < len(word))
        return cls(word=word, morphs=tuple(morphs), boundaries=b,
                   byte_boundaries=tuple(len(word[:x].encode("utf-8")) for x in b), **kw)  # type: ignore[arg-type]


class Word(BaseModel):
    """A surface word inside a sentence, with offsets and optional gold segmentation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int = Field(description="0-based position of the word in the sentence.")
    form: str = Field(description="Surface form.")
    char_start: int = Field(description="Start offset in the sentence text (characters).")
    char_end: int = Field(description="End offset (exclusive, characters).")
    byte_start: int = Field(description="Start offset in the UTF-8 sentence text (bytes).")
    byte_end: int = Field(description="End offset (exclusive, bytes).")
    segmentation: SegmentedWord | None = Field(default=None, description="Gold morpheme segmentation, when the source gives one.")


class Sentence(BaseModel):
    """A sentence with its surface words (e.g. from a CoNLL-U treebank)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sent_id: str = Field(description="Sentence id from the source (PUD ids align across languages).")
    language: str = Field(description="ISO 639-3 + script.")
    text: str = Field(description="Sentence text (NFC), reconstructed from tokens and SpaceAfter when the source lacks `# text`.")
    words: tuple[Word, ...] = Field(description="Surface words in order.")
    split: str | None = Field(default=None, description="Source split ('dev', 'test').")
    corpus: CorpusRef | None = Field(default=None, description="Where the sentence came from.")


class ParallelItem(BaseModel):
    """One line of a line-aligned parallel corpus (e.g. NTREX-128)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str = Field(description="Stable id shared by all translations of the line, e.g. 'ntrex128:0017'.")
    line: int = Field(description="0-based line number in the source file.")
    document_id: str = Field(description="Document the line belongs to (for splits and cluster bootstrap).")
    language: str = Field(description="Normalized ISO 639-3 + script code, e.g. 'heb_Hebr'.")
    source_code: str = Field(description="The source's own language code, e.g. 'heb' or 'zho-CN'.")
    text: str = Field(description="Normalized text (NFC plus any optional steps recorded in `corpus.normalization`).")
    split: str | None = Field(default=None, description="'dev' or 'test' (deterministic by document).")
    corpus: CorpusRef | None = Field(default=None, description="Corpus reference with file sha256 and normalization.")
