"""Morpheme-boundary alignment: gold morpheme boundaries vs token boundaries, on UTF-8 byte offsets.

Per word, the gold internal boundaries ``G`` (byte offsets inside the word, from
:class:`~qdmodels.corpora.types.SegmentedWord`) are compared with the tokenizer's internal boundaries ``T``
(byte offsets strictly inside the word where one token ends and the next starts). Two modes:

``'isolated'``
    the word is tokenized alone (after a space, as in running text; see ``prefix``);
``'context'``
    the whole sentence is tokenized and only token boundaries strictly inside the word's byte span count.

Byte offsets make the comparison exact when a byte-level tokenizer splits a character: a boundary inside a
UTF-8 character can never equal a gold boundary (gold boundaries sit between characters), so it counts as a
token boundary that misses.

Measures defined for every word
    Boundary precision, recall and F1 are undefined for a word without a gold boundary (recall, F1) or left
    whole by the tokenizer (precision, F1), which drops most Hebrew words and every whole multi-morpheme word.
    :func:`crossing_counts` gives counts that exist for every word: ``crossed = |G \\ T|`` (gold boundaries a
    token runs across), ``spurious = |T \\ G|`` (token boundaries inside a morph) and their sum, the size of
    the symmetric difference (0 exactly when the tokenization is the gold segmentation, a whole one-morph
    word included). Recall with whole words scored 0 is :attr:`WordAlignment.recall` itself (defined
    whenever the word has a gold boundary).
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from qdmodels.corpora.types import SegmentedWord, Sentence
from qdmodels.tokenization.loading import LoadedTokenizer, load_tokenizer
from qdmodels.tokenization.offsets import token_byte_spans, token_bytes
from qdstats.records import CorpusRef, Measurement
from qdstats.results import ci_attributes
from qdstats.validation import (
    DegenerateDataWarning,
    check_confidence_level,
    check_int,
    check_option,
)

__all__ = [
    "AlignMode",
    "WordAlignment",
    "align_morphemes",
    "align_sentence",
    "align_word",
    "alignment_records",
    "alignment_summary",
    "boundary_scores",
    "crossing_counts",
]

AlignMode = Literal["isolated", "context"]
PrefixOption = Literal["auto", "space", "none"]
_ROUTINE = "qdmodels.tokenization.alignment"


@dataclass(frozen=True)
class WordAlignment:
    """Gold vs token boundaries of one word.

    Attributes
    ----------
    word : str
        Surface form.
    language : str
        ``'xxx_Scrp'``.
    source : str
        Gold source id (``SegmentedWord.source``).
    sentence_id : str or None
        Sentence the word came from (the bootstrap cluster); None for isolated word lists.
    word_index : int or None
        Position of the word in its sentence (0-based).
    mode : {'isolated', 'context'}
        How the word was tokenized.
    prefix_space : bool
        Isolated mode: whether a space was put before the word (``False`` also when the tokenizer adds its own
        dummy prefix); context mode: False.
    n_bytes : int
        UTF-8 length of the word.
    gold : tuple[int, ...]
        Gold internal boundaries, bytes from the word start.
    token_boundaries : tuple[int, ...]
        Token internal boundaries, bytes from the word start.
    n_tokens : int
        Tokens overlapping the word's bytes.
    hits : int
        ``|gold ∩ token_boundaries|``.
    whole_word : bool
        No token boundary inside the word (the tokenizer left it whole).
    surface_true : bool
        Whether the gold morphs concatenate to the word.
    """

    word: str
    language: str
    source: str
    sentence_id: str | None
    word_index: int | None
    mode: str
    prefix_space: bool
    n_bytes: int
    gold: tuple[int, ...]
    token_boundaries: tuple[int, ...]
    n_tokens: int
    hits: int
    whole_word: bool
    surface_true: bool

    @property
    def precision(self) -> float:
        """``hits / |T|``; NaN when the word is left whole."""
        return boundary_scores(self.gold, self.token_boundaries)[1]

    @property
    def recall(self) -> float:
        """``hits / |G|``; NaN when the word has no gold boundary."""
        return boundary_scores(self.gold, self.token_boundaries)[2]

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall; NaN when either is undefined."""
        return boundary_scores(self.gold, self.token_boundaries)[3]

    @property
    def n_crossed(self) -> int:
        """Gold boundaries that no token boundary matches (a token runs across them); 0 without gold boundaries."""
        return crossing_counts(self.gold, self.token_boundaries)[0]

    @property
    def n_spurious(self) -> int:
        """Token boundaries that match no gold boundary (they split a morph); 0 for a whole word."""
        return crossing_counts(self.gold, self.token_boundaries)[1]

    @property
    def morphscore(self) -> float:
        """1.0 if every gold boundary is a token boundary, else 0.0; NaN for whole words or no gold boundary."""
        if not self.gold or self.whole_word:
            return math.nan
        return 1.0 if set(self.gold) <= set(self.token_boundaries) else 0.0


def boundary_scores(gold: Iterable[int], predicted: Iterable[int]) -> tuple[int, float, float, float]:
    """Boundary hits, precision, recall and F1 of two boundary sets.

    Parameters
    ----------
    gold, predicted : iterable of int
        Internal boundary offsets (duplicates are ignored).

    Returns
    -------
    tuple of (int, float, float, float)
        ``(hits, precision, recall, f1)``; precision is NaN when ``predicted`` is empty, recall NaN when
        ``gold`` is empty, F1 NaN when either is NaN and 0.0 when both are defined and ``hits == 0``.

    Notes
    -----
    Creutz & Lagus (2007) boundary precision/recall for one word. Validated against: hand-computed cases
    and hypothesis properties (symmetry P(g,p) = R(p,g), bounds, F1 = 1 iff sets equal), exact.

    Examples
    --------
    >>> boundary_scores([2, 5], [2, 3])
    (1, 0.5, 0.5, 0.5)
    """
    g, p = set(gold), set(predicted)
    hits = len(g & p)
    prec = hits / len(p) if p else math.nan
    rec = hits / len(g) if g else math.nan
    if math.isnan(prec) or math.isnan(rec):
        f1 = math.nan
    else:
        f1 = 0.0 if hits == 0 else 2 * prec * rec / (prec + rec)
    return hits, prec, rec, f1


def crossing_counts(gold: Iterable[int], predicted: Iterable[int]) -> tuple[int, int, int]:
    """Boundary errors of one word, defined for every word: crossed, spurious and total.

    Parameters
    ----------
    gold, predicted : iterable of int
        Internal boundary offsets of the gold segmentation and of the tokenization (duplicates ignored).

    Returns
    -------
    tuple of (int, int, int)
        ``(crossed, spurious, errors)``: ``crossed = |gold - predicted|`` (gold boundaries strictly inside a
        token, i.e. crossed by it), ``spurious = |predicted - gold|`` (token boundaries inside a morph) and
        ``errors = crossed + spurious`` (the symmetric difference).

    Notes
    -----
    Unlike precision, recall and F1 (:func:`boundary_scores`), these counts need no gold boundary and no
    token boundary: a one-morph word left whole has ``(0, 0, 0)``, a two-morph word left whole ``(1, 0, 1)``,
    a one-morph word split in two ``(0, 1, 1)``. With ``hits = |gold & predicted|``:
    ``crossed = |gold| - hits`` and ``spurious = |predicted| - hits``; recall with whole words scored 0 is
    ``1 - crossed / |gold|``.
    Validated against: hand-built words with known boundaries and the identities above (hypothesis), exact.

    Examples
    --------
    >>> crossing_counts([2, 5], [2, 3])
    (1, 1, 2)
    >>> crossing_counts([], [])          # one morph, left whole
    (0, 0, 0)
    >>> crossing_counts([3], [])         # two morphs, left whole
    (1, 0, 1)
    """
    g, p = set(gold), set(predicted)
    crossed, spurious = len(g - p), len(p - g)
    return crossed, spurious, crossed + spurious


def _adds_dummy_prefix(lt: LoadedTokenizer) -> bool:
    enc = lt.tokenizer.encode("a", add_special_tokens=False)
    return b"".join(token_bytes(lt, t) for t in enc.tokens).startswith(b" ")


def _resolve_prefix(lt: LoadedTokenizer, prefix: str) -> bool:
    check_option(prefix, "prefix", ("auto", "space", "none"))
    if prefix == "auto":
        return not _adds_dummy_prefix(lt)
    return prefix == "space"


def _inside(spans: Sequence[tuple[int, int]], start: int, end: int) -> tuple[tuple[int, ...], int]:
    bounds = sorted({s - start for s, e in spans if start < s < end})
    n_tok = sum(1 for s, e in spans if s < end and e > start)
    return tuple(bounds), n_tok


def _make(seg: SegmentedWord, spans: Sequence[tuple[int, int]], start: int, *, mode: str, prefix_space: bool,
          sentence_id: str | None, word_index: int | None) -> WordAlignment:
    nb = len(seg.word.encode("utf-8"))
    tb, n_tok = _inside(spans, start, start + nb)
    hits = len(set(tb) & set(seg.byte_boundaries))
    return WordAlignment(
        word=seg.word, language=seg.language, source=seg.source, sentence_id=sentence_id, word_index=word_index,
        mode=mode, prefix_space=prefix_space, n_bytes=nb, gold=tuple(seg.byte_boundaries), token_boundaries=tb,
        n_tokens=n_tok, hits=hits, whole_word=not tb, surface_true=seg.surface_true,
    )


def align_word(
    tokenizer: Any,
    word: SegmentedWord,
    *,
    prefix: PrefixOption = "auto",
    sentence_id: str | None = None,
    word_index: int | None = None,
) -> WordAlignment:
    """Align one gold-segmented word tokenized in isolation.

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer.
    word : SegmentedWord
        Word with gold byte boundaries.
    prefix : {'auto', 'space', 'none'}, default 'auto'
        Put a space before the word (``'space'``), or not (``'none'``). ``'auto'`` adds one unless the
        tokenizer adds its own dummy prefix (SentencePiece Llama-2), so the word is tokenized as it is after a
        space in running text. The space never counts as part of the word.
    sentence_id, word_index : optional
        Carried into the result (for clustering).

    Returns
    -------
    WordAlignment

    Raises
    ------
    TypeError
        ``word`` is not a SegmentedWord.
    ValueError
        Unknown ``prefix``.

    Notes
    -----
    Validated against: hand-built BPE/WordLevel tokenizers with known splits, exact equality of boundaries.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> from qdmodels.corpora.types import SegmentedWord
    >>> tok = Tokenizer(models.BPE({"u": 0, "n": 1, "d": 2, "o": 3, "un": 4, "do": 5}, [("u", "n"), ("d", "o")]))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> w = SegmentedWord.from_morphs("undo", ("un", "do"), language="eng_Latn", source="toy")
    >>> a = align_word(tok, w, prefix="none")
    >>> a.token_boundaries, a.f1, a.morphscore
    ((2,), 1.0, 1.0)
    """
    if not isinstance(word, SegmentedWord):
        raise TypeError(f"`word` must be a SegmentedWord; got {type(word).__name__}.")
    lt = load_tokenizer(tokenizer)
    return _align_isolated(lt, word, _resolve_prefix(lt, prefix), sentence_id, word_index)


def _align_isolated(lt: LoadedTokenizer, word: SegmentedWord, space: bool, sentence_id: str | None,
                    word_index: int | None) -> WordAlignment:
    text = (" " if space else "") + word.word
    ts = token_byte_spans(lt, text)
    return _make(word, ts.byte_spans, 1 if space else 0, mode="isolated", prefix_space=space,
                 sentence_id=sentence_id, word_index=word_index)


def align_sentence(tokenizer: Any, sentence: Sentence) -> list[WordAlignment]:
    """Align every gold-segmented word of a sentence, tokenizing the whole sentence (context mode).

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer.
    sentence : Sentence
        Sentence whose ``words`` carry ``segmentation`` (words without one are skipped: they have no gold).

    Returns
    -------
    list of WordAlignment
        One per segmented word, in order, ``mode='context'``.

    Raises
    ------
    TypeError
        ``sentence`` is not a Sentence.
    ValueError
        A word's byte span does not hold its form, or its segmentation is of another word.

    Notes
    -----
    Token boundaries count when they fall strictly inside ``[byte_start, byte_end)`` of the word; tokens that
    start before the word (GPT-2's ``Ġword``) or run past its end (word + punctuation) still end or start
    at the word's edges, which are not internal boundaries. Validated against: hand-built sentences, exact.
    """
    if not isinstance(sentence, Sentence):
        raise TypeError(f"`sentence` must be a Sentence; got {type(sentence).__name__}.")
    lt = load_tokenizer(tokenizer)
    raw = sentence.text.encode("utf-8")
    ts = token_byte_spans(lt, sentence.text)
    out = []
    for w in sentence.words:
        if w.segmentation is None:
            continue
        if raw[w.byte_start:w.byte_end].decode("utf-8", errors="replace") != w.form:
            raise ValueError(
                f"`sentence` {sentence.sent_id!r}: word {w.index} {w.form!r} is not at bytes "
                f"[{w.byte_start}, {w.byte_end}) of the text."
            )
        if w.segmentation.word != w.form:
            raise ValueError(
                f"`sentence` {sentence.sent_id!r}: segmentation of word {w.index} is for "
                f"{w.segmentation.word!r}, not {w.form!r}."
            )
        out.append(_make(w.segmentation, ts.byte_spans, w.byte_start, mode="context", prefix_space=False,
                         sentence_id=sentence.sent_id, word_index=w.index))
    return out


def align_morphemes(
    tokenizer: Any,
    data: Sequence[SegmentedWord] | Sequence[Sentence],
    *,
    mode: AlignMode = "context",
    prefix: PrefixOption = "auto",
) -> list[WordAlignment]:
    """Align gold-segmented words (isolated) or sentences (isolated or in context).

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer.
    data : sequence of SegmentedWord or sequence of Sentence
        Word lists (Morpho Challenge, SIGMORPHON word-level) or sentences (UD) with segmented words.
    mode : {'context', 'isolated'}, default 'context'
        Word lists can only be aligned ``'isolated'``.
    prefix : {'auto', 'space', 'none'}, default 'auto'
        See :func:`align_word` (isolated mode only).

    Returns
    -------
    list of WordAlignment

    Raises
    ------
    ValueError
        Unknown ``mode``; ``mode='context'`` with words.
    TypeError
        Mixed or unsupported input types.

    Notes
    -----
    Validated against: the same hand-built cases as :func:`align_word` and :func:`align_sentence`, exact.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.BPE({"u": 0, "n": 1, "d": 2, "o": 3, "un": 4}, [("u", "n")]))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> w = SegmentedWord.from_morphs("undo", ("un", "do"), language="eng_Latn", source="toy")
    >>> [a.token_boundaries for a in align_morphemes(tok, [w], mode="isolated", prefix="none")]
    [(2, 3)]
    """
    check_option(mode, "mode", ("isolated", "context"))
    lt = load_tokenizer(tokenizer)
    space = _resolve_prefix(lt, prefix)
    items = list(data)
    if all(isinstance(x, SegmentedWord) for x in items):
        if mode == "context" and items:
            raise ValueError("`mode` 'context' needs sentences; got a list of words (use mode='isolated').")
        return [_align_isolated(lt, w, space, w.item_id, None) for w in items]
    if not all(isinstance(x, Sentence) for x in items):
        raise TypeError("`data` must be a sequence of SegmentedWord or a sequence of Sentence, not a mix.")
    out: list[WordAlignment] = []
    for s in items:
        if mode == "context":
            out.extend(align_sentence(lt, s))
        else:
            out.extend(_align_isolated(lt, w.segmentation, space, s.sent_id, w.index)
                       for w in s.words if w.segmentation is not None)
    return out


def _word_attrs(a: WordAlignment) -> dict[str, Any]:
    return {
        "word": a.word, "word_index": a.word_index, "n_bytes": a.n_bytes, "n_gold_boundaries": len(a.gold),
        "n_token_boundaries": len(a.token_boundaries), "n_hits": a.hits, "n_tokens": a.n_tokens,
        "n_crossed": a.n_crossed, "n_spurious": a.n_spurious,
        "whole_word": a.whole_word, "surface_true": a.surface_true, "gold_source": a.source,
        "gold_boundaries": ",".join(map(str, a.gold)), "token_boundaries": ",".join(map(str, a.token_boundaries)),
    }


def _cond(a: WordAlignment, lt: LoadedTokenizer) -> dict[str, Any]:
    return {"mode": a.mode, "prefix_space": a.prefix_space, "offsets": "utf8_bytes", "tokenizer_kind": lt.kind}


def alignment_records(
    tokenizer: Any, alignments: Sequence[WordAlignment], *, corpus: CorpusRef | None = None
) -> list[Measurement]:
    """One set of records per word.

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer that produced ``alignments`` (for ``Measurement.model``).
    alignments : sequence of WordAlignment
        From :func:`align_morphemes`.
    corpus : CorpusRef, optional
        The gold corpus.

    Returns
    -------
    list of Measurement
        Every word gets ``align.tokens_per_word``; ``align.boundary_precision`` (not for whole words),
        ``align.boundary_recall`` and ``align.morphscore`` (words with a gold boundary; morphscore not for whole
        words) and ``align.boundary_f1`` (where both are defined) are added where defined, so no value is NaN
        and no word is dropped. ``item_id`` is ``'<sentence_id>:<word_index>'`` (or the word for word
        lists); ``condition`` says ``mode`` and ``prefix_space``; ``attributes`` hold the word, counts,
        ``whole_word`` and both boundary lists.

    Notes
    -----
    Validated against: hand-built whole-word and split cases (which quantities appear), exact.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"undo": 0, "[UNK]": 1}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> w = SegmentedWord.from_morphs("undo", ("un", "do"), language="eng_Latn", source="toy")
    >>> sorted(r.quantity for r in alignment_records(tok, [align_word(tok, w, prefix="none")]))
    ['align.boundary_recall', 'align.tokens_per_word']
    """
    lt = load_tokenizer(tokenizer)
    out: list[Measurement] = []
    for a in alignments:
        iid = f"{a.sentence_id}:{a.word_index}" if a.sentence_id is not None and a.word_index is not None else (
            a.sentence_id or a.word)
        common = {"model": lt.ref, "language": a.language, "corpus": corpus, "item_id": iid, "condition": _cond(a, lt),
                      "attributes": _word_attrs(a), "routine": _ROUTINE}
        out.append(Measurement(quantity="align.tokens_per_word", value=float(a.n_tokens), **common))
        for q, v in (("align.boundary_precision", a.precision), ("align.boundary_recall", a.recall),
                     ("align.boundary_f1", a.f1), ("align.morphscore", a.morphscore)):
            if not math.isnan(v):
                out.append(Measurement(quantity=q, value=v, **common))
    return out


def alignment_summary(
    tokenizer: Any,
    alignments: Sequence[WordAlignment],
    *,
    corpus: CorpusRef | None = None,
    n_resamples: int = 999,
    confidence_level: float = 0.95,
    rng: Any = 0,
) -> list[Measurement]:
    """Per-language aggregates with cluster-bootstrap CIs (cluster = sentence).

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer (for ``Measurement.model``).
    alignments : sequence of WordAlignment
        Word alignments; grouped by (language, gold source, mode, prefix_space).
    corpus : CorpusRef, optional
        The gold corpus.
    n_resamples : int, default 999
        Bootstrap resamples (0: no CI).
    confidence_level : float, default 0.95
        CI level.
    rng : int, numpy.random.Generator or None, default 0
        Seed.

    Returns
    -------
    list of Measurement
        Per group: ``align.boundary_precision`` / ``align.boundary_recall`` / ``align.boundary_f1`` (micro:
        pooled hits over pooled boundaries, F1 of the pooled P and R), ``align.morphscore`` (mean over words
        with a gold boundary that are not whole), ``align.whole_word_fraction`` (whole words among words with a
        gold boundary) and ``align.tokens_per_word`` (mean). ``attributes``: ``aggregation``, ``n_words``,
        ``n_eligible``, ``n_whole_words``, ``n_clusters``, ``ci_low``, ``ci_high``, ``ci_level``,
        ``ci_method``. A statistic with no eligible word is NaN with a warning.

    Warns
    -----
    SmallSampleWarning, DegenerateDataWarning
        From :func:`qdstats.resampling.cluster_bootstrap_ci` (few clusters, zero spread); copied into the
        record's ``warnings``.

    Notes
    -----
    Words from one sentence share context, so resampling is over sentences
    (:func:`qdstats.resampling.cluster_bootstrap_ci`, percentile, closed-form ``'mean'``). Words from word
    lists (no sentence) are their own cluster. Micro precision, recall and F1 are ratios of sums
    (P = H/T, R = H/G, F1 = 2H/(T+G)), computed as the mean of 0/1 observations: one per token boundary (1 if
    it hits a gold boundary) for P, one per gold boundary for R, both pooled for F1. Their clusters are
    therefore the sentences that have at least one such boundary (a sentence without any adds nothing to
    either sum); ``n_clusters`` and ``n_observations`` are recorded.
    Validated against: the point estimates against hand-pooled counts, exact; the CI comes from
    ``cluster_bootstrap_ci`` (validated there against R ``boot``).
    """
    from qdstats.resampling import cluster_bootstrap_ci

    lt = load_tokenizer(tokenizer)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    confidence_level = check_confidence_level(confidence_level)
    gen = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    groups: dict[tuple[str, str, str, bool], list[WordAlignment]] = defaultdict(list)
    for a in alignments:
        groups[(a.language, a.source, a.mode, a.prefix_space)].append(a)
    out: list[Measurement] = []
    for (lang, source, mode, space), ws in sorted(groups.items()):
        clusters = np.array([a.sentence_id if a.sentence_id is not None else f"w{i}" for i, a in enumerate(ws)])
        ng = np.array([len(a.gold) for a in ws], float)
        whole = np.array([a.whole_word for a in ws], bool)
        ntok = np.array([a.n_tokens for a in ws], float)
        has_gold = ng > 0

        # Micro P, R and F1 are ratios of sums, so each is the plain mean of 0/1 boundary observations
        # (P: one per token boundary, 1 if it is a gold boundary; R: one per gold boundary, 1 if it is a token
        # boundary; F1 = 2H/(T+G): both sets pooled). cluster_bootstrap_ci's closed-form 'mean' then resamples
        # sentences exactly as for the per-word means, without a Python loop per resample.
        tb_obs, tb_cl, gb_obs, gb_cl = [], [], [], []
        for a, c in zip(ws, clusters):
            g = set(a.gold)
            t = set(a.token_boundaries)
            tb_obs.extend(1.0 if b in g else 0.0 for b in a.token_boundaries)
            tb_cl.extend([c] * len(a.token_boundaries))
            gb_obs.extend(1.0 if b in t else 0.0 for b in a.gold)
            gb_cl.extend([c] * len(a.gold))
        p_v, p_c = np.array(tb_obs), np.array(tb_cl, dtype=object)
        r_v, r_c = np.array(gb_obs), np.array(gb_cl, dtype=object)
        f_v, f_c = np.concatenate([p_v, r_v]), np.concatenate([p_c, r_c])
        f_defined = len(p_v) > 0 and len(r_v) > 0
        ms_idx = has_gold & ~whole
        ms_vals = np.array([a.morphscore for a in ws])
        specs: list[tuple[str, np.ndarray, np.ndarray, int, str]] = [
            ("align.boundary_precision", p_v, p_c, len(ws), "micro: pooled hits / pooled token boundaries"),
            ("align.boundary_recall", r_v, r_c, len(ws), "micro: pooled hits / pooled gold boundaries"),
            ("align.boundary_f1", f_v if f_defined else np.array([]), f_c if f_defined else np.array([]), len(ws),
             "micro: 2 * pooled hits / (token + gold boundaries)"),
            ("align.morphscore", ms_vals[ms_idx], clusters[ms_idx], int(ms_idx.sum()),
             "mean over words with a gold boundary, not whole"),
            ("align.whole_word_fraction", whole[has_gold].astype(float), clusters[has_gold], int(has_gold.sum()),
             "mean over words with a gold boundary"),
            ("align.tokens_per_word", ntok, clusters, len(ws), "mean over words"),
        ]
        base_attrs = {"n_words": len(ws), "n_whole_words": int(whole.sum()),
                      "n_words_with_gold_boundary": int(has_gold.sum()), "gold_source": source}
        cond = {"mode": mode, "prefix_space": space, "offsets": "utf8_bytes", "tokenizer_kind": lt.kind}
        for q, v, cl, n_eligible, agg in specs:
            attrs: dict[str, Any] = {**base_attrs, "aggregation": agg, "n_eligible": n_eligible,
                                     "n_observations": len(v)}
            est = float(v.mean()) if len(v) else math.nan
            warn: tuple[str, ...] = ()
            if math.isnan(est):
                warn = ((f"{q} undefined for {lang}/{source}: nothing to average (n_eligible={n_eligible}, "
                        f"n_observations={len(v)})."),)
                warnings.warn(warn[0], DegenerateDataWarning, stacklevel=2)
            elif n_resamples > 0 and len(np.unique(cl)) >= 2:
                res = cluster_bootstrap_ci(v, cl.astype(str), statistic="mean", kind="percentile",
                                           confidence_level=confidence_level, n_resamples=n_resamples, rng=gen)
                attrs.update(ci_attributes(res.ci, n_clusters=int(res.n_units["clusters"])))
                warn = tuple(res.warnings)
                if math.isnan(res.ci.low) or math.isnan(res.ci.high):
                    warn = warn + ("bootstrap CI undefined (a resample had no eligible boundary).",)
            elif n_resamples > 0:
                warn = (f"fewer than 2 clusters for {q} in {lang}/{source}: no CI.",)
            out.append(Measurement(quantity=q, value=est, n=n_eligible, model=lt.ref, language=lang, corpus=corpus,
                                   condition=cond, attributes=attrs, warnings=warn, routine=_ROUTINE))
    return out
