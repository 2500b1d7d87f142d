"""Tokenizer parity across languages on parallel text (Petrov et al. 2023): token counts, premiums, fertility."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from qdmodels.tokenization.loading import LoadedTokenizer, load_tokenizer
from qdmodels.tokenization.offsets import token_byte_spans
from qdstats.records import CorpusRef, Measurement
from qdstats.records.refs import LANGUAGE_PATTERN
from qdstats.results import ci_attributes
from qdstats.validation import DegenerateDataWarning, check_confidence_level, check_int

__all__ = [
    "NON_WHITESPACE_SCRIPTS",
    "TextStats",
    "fertility",
    "is_whitespace_delimited",
    "parity_frame",
    "parity_table",
    "text_stats",
]

#: ISO 15924 scripts whose writing does not delimit words with spaces. Fertility (tokens per whitespace
#: word) is refused for them: a whitespace "word" there is a phrase or a whole sentence.
NON_WHITESPACE_SCRIPTS: frozenset[str] = frozenset(
    {"Hani", "Hans", "Hant", "Jpan", "Hira", "Kana", "Bopo", "Thai", "Laoo", "Khmr", "Mymr", "Tibt", "Yiii"}
)

_ROUTINE = "qdmodels.tokenization.parity"


def _check_language(language: Any, name: str) -> str:
    if not isinstance(language, str) or not re.match(LANGUAGE_PATTERN, language):
        raise ValueError(f"`{name}` must be an ISO 639-3 + ISO 15924 code like 'heb_Hebr'; got {language!r}.")
    return language


def is_whitespace_delimited(language: str) -> bool:
    """Whether ``language`` (``'xxx_Scrp'``) writes words separated by spaces.

    Raises
    ------
    ValueError
        ``language`` is not of the form ``'xxx_Scrp'``.

    Examples
    --------
    >>> is_whitespace_delimited("heb_Hebr"), is_whitespace_delimited("zho_Hans")
    (True, False)
    """
    _check_language(language, "language")
    return language.split("_")[1] not in NON_WHITESPACE_SCRIPTS


@dataclass(frozen=True)
class TextStats:
    """Counts for one text under one tokenizer.

    Attributes
    ----------
    n_tokens, n_bytes, n_chars, n_words : int
        Tokens (no special tokens), UTF-8 bytes, code points, whitespace-separated words (``str.split()``).
    n_unk : int
        Tokens equal to the model's unknown token.
    n_byte_fallback : int
        SentencePiece ``<0xNN>`` byte-fallback tokens (0 for tokenizers without byte fallback).
    n_partial_char : int
        Tokens whose byte span starts or ends inside a UTF-8 character (byte-level BPE or byte fallback).
    """

    n_tokens: int
    n_bytes: int
    n_chars: int
    n_words: int
    n_unk: int
    n_byte_fallback: int
    n_partial_char: int


def text_stats(tokenizer: Any, text: str) -> TextStats:
    """Token, byte, char, word, UNK, byte-fallback and partial-character counts of one text.

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer.
    text : str
        The text (NFC).

    Returns
    -------
    TextStats
        See its attributes.

    Notes
    -----
    A token is "partial-char" when its span in :func:`~qdmodels.tokenization.offsets.token_byte_spans`
    starts or ends at a byte that is a UTF-8 continuation byte (0b10xxxxxx) of the text.
    Validated against: hand counts on built tokenizers and GPT-2 (``"Hello, world!"`` -> 4 tokens), exact.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"ab": 0, "[UNK]": 1}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> text_stats(tok, "ab zz").n_unk
    1
    """
    lt = load_tokenizer(tokenizer)
    ts = token_byte_spans(lt, text)
    raw = text.encode("utf-8")
    cont = [(b & 0xC0) == 0x80 for b in raw] + [False]
    n_partial = sum(1 for s, e in ts.byte_spans if e > s and (cont[s] or cont[e]))
    n_unk = sum(1 for i in ts.ids if lt.unk_id is not None and i == lt.unk_id)
    n_bf = sum(1 for t in ts.tokens if re.match(r"^<0x[0-9A-Fa-f]{2}>$", t)) if lt.byte_fallback else 0
    return TextStats(
        n_tokens=len(ts.ids), n_bytes=len(raw), n_chars=len(text), n_words=len(text.split()),
        n_unk=n_unk, n_byte_fallback=n_bf, n_partial_char=n_partial,
    )


def fertility(tokenizer: Any, texts: Sequence[str], *, language: str) -> float:
    """Tokens per whitespace-separated word over ``texts``.

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer.
    texts : sequence of str
        Texts in ``language``.
    language : str
        ``'xxx_Scrp'``; the script decides whether whitespace words exist.

    Returns
    -------
    float
        ``sum(tokens) / sum(words)``.

    Raises
    ------
    ValueError
        ``language`` uses a script without spaces between words (see :data:`NON_WHITESPACE_SCRIPTS`),
        or ``texts`` has no words.

    Notes
    -----
    Words are ``str.split()`` pieces, so punctuation attached to a word belongs to it (Rust et al. 2021 count
    on pre-tokenized words, which gives somewhat lower fertility). No word segmenter is used for Chinese,
    Japanese, Thai etc.: fertility is refused for them rather than computed on meaningless "words".
    Validated against: hand counts, exact.

    References
    ----------
    Rust, P. et al. (2021). How good is your tokenizer? ACL. DOI: 10.18653/v1/2021.acl-long.243

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> fertility(tok, ["a b", "a"], language="eng_Latn")
    1.0
    """
    if not is_whitespace_delimited(language):
        raise ValueError(
            f"`language` {language!r} is written without spaces between words (script "
            f"{language.split('_')[1]}); fertility per whitespace word is undefined for it. No word segmenter "
            "is used here: report tokens per sentence or per byte instead."
        )
    lt = load_tokenizer(tokenizer)
    toks = words = 0
    for t in texts:
        st = text_stats(lt, t)
        toks += st.n_tokens
        words += st.n_words
    if words == 0:
        raise ValueError("`texts` contain no whitespace-separated words.")
    return toks / words


def _unpack(items: Any, label: str) -> tuple[list[str], list[str], list[str], CorpusRef | None, str]:
    ids, docs, texts, langs = [], [], [], set()
    corpus = None
    for k, it in enumerate(items):
        if isinstance(it, str):
            ids.append(str(k))
            docs.append(str(k))
            texts.append(it)
        elif hasattr(it, "text") and hasattr(it, "item_id"):
            ids.append(str(it.item_id))
            docs.append(str(getattr(it, "document_id", None) or it.item_id))
            texts.append(it.text)
            corpus = corpus or getattr(it, "corpus", None)
            if getattr(it, "language", None):
                langs.add(it.language)
        else:
            raise TypeError(
                f"`items_by_language[{label!r}]` must hold str or ParallelItem; got {type(it).__name__}."
            )
    if len(set(ids)) != len(ids):
        raise ValueError(f"`items_by_language[{label!r}]` has duplicate item ids.")
    if len(langs) > 1:
        raise ValueError(f"`items_by_language[{label!r}]` mixes languages {sorted(langs)}.")
    if langs:
        language = langs.pop()
        _check_language(language, f"items_by_language[{label!r}] item language")
    else:
        language = _check_language(label, "items_by_language key")
    return ids, docs, texts, corpus, language


def _ratio_ci(num: np.ndarray, den: np.ndarray, clusters: list[str], *, n_resamples: int, confidence_level: float,
              rng: Any, stacklevel: int = 3) -> tuple[Any, tuple[str, ...], int]:
    from qdstats.resampling import cluster_bootstrap_ci

    def ratio(idx: np.ndarray, _ids: np.ndarray) -> float:
        k = idx.astype(np.int64)
        return float(num[k].sum() / den[k].sum())

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = cluster_bootstrap_ci(
            np.arange(len(num), dtype=float), clusters, statistic=ratio, kind="percentile",
            confidence_level=confidence_level, n_resamples=n_resamples, rng=rng,
        )
    for w in caught:
        warnings.warn(str(w.message), w.category, stacklevel=stacklevel)
    return res.ci, tuple(res.warnings), int(res.n_units["clusters"])


def parity_table(
    tokenizer: Any,
    items_by_language: Mapping[str, Sequence[Any]],
    *,
    reference: str = "eng_Latn",
    corpus: CorpusRef | None = None,
    n_resamples: int = 0,
    confidence_level: float = 0.95,
    rng: Any = 0,
) -> list[Measurement]:
    """Per-language tokenizer metrics on parallel text, as records.

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer (its ``ref`` becomes ``Measurement.model``).
    items_by_language : mapping of str to sequence of ParallelItem or str
        Label -> items. For strings the label must be the language code (``'xxx_Scrp'``); for
        ``ParallelItem`` the language comes from the items and the label may be any name (e.g. NTREX's
        regional variants ``'eng-GB'``, ``'fra-CA'``, which share a language code). With ``ParallelItem`` the
        premium is computed on the item ids shared with ``reference``; with plain strings items pair by position.
    reference : str, default 'eng_Latn'
        Label the premium is relative to; must be a key of ``items_by_language``.
    corpus : CorpusRef, optional
        Corpus reference for all records; by default each language's records get its items' ``corpus``
        (NTREX pins each language file by its own sha256).
    n_resamples : int, default 0
        Cluster-bootstrap resamples for the premium's CI (clusters = ``document_id``, or items for
        strings); 0 skips the CI.
    confidence_level : float, default 0.95
        CI level.
    rng : int, numpy.random.Generator or None, default 0
        Seed for the bootstrap (``None``: not reproducible).

    Returns
    -------
    list of Measurement
        Per language: ``tok.tokens_per_sentence``, ``tok.premium_vs_reference``,
        ``tok.byte_premium_vs_reference``, ``tok.bytes_per_token``, ``tok.chars_per_token``,
        ``tok.unk_fraction``, ``tok.partial_char_fraction``, ``tok.byte_fallback_fraction`` (only for
        tokenizers with byte fallback) and ``tok.fertility`` (NaN with a warning for scripts without spaces).
        ``attributes`` hold the totals (``n_tokens``, ``n_bytes``, ``n_chars``, ``n_words``, ``n_unk``,
        ``n_byte_fallback``, ``n_partial_char``) and ``label``; premium records also ``reference``, ``n_tokens_reference``
        and, when ``n_resamples > 0``, ``ci_low``, ``ci_high``, ``ci_level``, ``ci_method``, ``n_clusters``.

    Raises
    ------
    ValueError
        ``reference`` missing, a bad language code, no shared items, duplicate ids, bad options.
    TypeError
        Items that are neither strings nor ParallelItems.

    Warns
    -----
    DegenerateDataWarning
        Fertility undefined for a script without spaces; items of a language not present in the reference
        (dropped from its premium only). The text is also in the record's ``warnings``.

    Notes
    -----
    Premium = total tokens of the language / total tokens of the reference over the same items (Petrov et
    al. 2023 "tokenization premium"), a ratio of sums, not a mean of per-sentence ratios. Bytes/token and
    chars/token are ratios of totals too. Special tokens are never added.
    Validated against: Petrov et al. (2023) GPT-2 premiums on FLORES-200 (Hebrew 4.39, Arabic 4.40,
    Korean 5.07): the NTREX values must lie in [2.5, 6] (different corpus, so only a band), in the
    integration tests; the ratio-of-sums arithmetic against hand counts, exact.

    References
    ----------
    Petrov, A., La Malfa, E., Torr, P. H. S. & Bibi, A. (2023). Language model tokenizers introduce
    unfairness between languages. NeurIPS. arXiv:2305.15425

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> recs = parity_table(tok, {"eng_Latn": ["a b"], "deu_Latn": ["a b a b"]})
    >>> [r.value for r in recs if r.quantity == "tok.premium_vs_reference" and r.language == "deu_Latn"]
    [2.0]
    """
    lt, per_lang, n_resamples, confidence_level = _parity_table_iv(tokenizer, items_by_language, reference,
                                                                   n_resamples, confidence_level)
    counts = {label: [text_stats(lt, t) for t in d.texts] for label, d in per_lang.items()}
    ref = per_lang[reference]
    ref_tok = dict(zip(ref.ids, (s.n_tokens for s in counts[reference])))
    ref_bytes = dict(zip(ref.ids, (s.n_bytes for s in counts[reference])))
    cond = {"tokenizer_kind": lt.kind, "special_tokens": False}
    out: list[Measurement] = []
    for label, d in per_lang.items():
        stats = counts[label]
        tot = {f: int(sum(getattr(s, f) for s in stats)) for f in TextStats.__dataclass_fields__}
        rec = _Recorder(attrs={**tot, "label": label},
                        common={"model": lt.ref, "language": d.language, "corpus": corpus or d.corpus,
                                "condition": cond, "routine": _ROUTINE})
        _ratio_records(rec, lt, tot, len(stats))
        _fertility_record(rec, d.language, tot, len(stats))
        shared = [i for i, iid in enumerate(d.ids) if iid in ref_tok]
        num = np.array([stats[i].n_tokens for i in shared], dtype=float)
        den = np.array([ref_tok[d.ids[i]] for i in shared], dtype=float)
        numb = np.array([stats[i].n_bytes for i in shared], dtype=float)
        denb = np.array([ref_bytes[d.ids[i]] for i in shared], dtype=float)
        clusters = [d.docs[i] for i in shared]
        ci_opts = {"n_resamples": n_resamples if label != reference else 0, "confidence_level": confidence_level,
                   "rng": rng}
        _premium_records(rec, label, reference, len(stats), (num, den), (numb, denb), clusters, **ci_opts)
        out.extend(rec.records)
    return out


@dataclass(frozen=True)
class _Labelled:
    """The unpacked items of one label of ``items_by_language``."""

    ids: list[str]
    docs: list[str]
    texts: list[str]
    corpus: CorpusRef | None
    language: str


def _parity_table_iv(
    tokenizer: Any, items_by_language: Any, reference: str, n_resamples: int, confidence_level: float,
) -> tuple[LoadedTokenizer, dict[str, _Labelled], int, float]:
    """Input validation of :func:`parity_table`: the tokenizer, options and every label's items (unpacked)."""
    lt: LoadedTokenizer = load_tokenizer(tokenizer)
    if not isinstance(items_by_language, Mapping):
        raise TypeError(f"`items_by_language` must be a mapping of language -> items; got {type(items_by_language).__name__}.")
    if reference not in items_by_language:
        raise ValueError(f"`reference` {reference!r} must be a key of `items_by_language`; got keys {sorted(items_by_language)[:10]}.")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=0)
    confidence_level = check_confidence_level(confidence_level)
    per_lang = {label: _Labelled(*_unpack(items, label)) for label, items in items_by_language.items()}
    ref_ids = set(per_lang[reference].ids)
    for label, d in per_lang.items():
        if not d.ids:
            raise ValueError(f"`items_by_language[{label!r}]` is empty.")
        if not ref_ids.intersection(d.ids):
            raise ValueError(f"`items_by_language[{label!r}]` shares no item ids with the reference {reference!r}.")
    return lt, per_lang, n_resamples, confidence_level


class _Recorder:
    """Collects the records of one label: shared attributes and fields, plus per-record extras."""

    def __init__(self, attrs: dict[str, Any], common: dict[str, Any]) -> None:
        self.attrs = attrs
        self.common = common
        self.records: list[Measurement] = []

    def __call__(self, q: str, value: float, n: int, warn: tuple[str, ...] = (),
                 extra: dict[str, Any] | None = None) -> None:
        self.records.append(Measurement(quantity=q, value=value, n=n, warnings=warn,
                                        attributes={**self.attrs, **(extra or {})}, **self.common))


def _ratio_records(rec: _Recorder, lt: LoadedTokenizer, tot: Mapping[str, int], n_items: int) -> None:
    """Tokens per sentence and the per-token ratios of totals (bytes, chars, UNK, partial chars, byte fallback)."""
    rec("tok.tokens_per_sentence", tot["n_tokens"] / n_items, n_items)
    if tot["n_tokens"] > 0:
        rec("tok.bytes_per_token", tot["n_bytes"] / tot["n_tokens"], n_items)
        rec("tok.chars_per_token", tot["n_chars"] / tot["n_tokens"], n_items)
        rec("tok.unk_fraction", tot["n_unk"] / tot["n_tokens"], n_items,
            extra={"has_unk_token": lt.unk_id is not None})
        rec("tok.partial_char_fraction", tot["n_partial_char"] / tot["n_tokens"], n_items)
        if lt.byte_fallback:
            rec("tok.byte_fallback_fraction", tot["n_byte_fallback"] / tot["n_tokens"], n_items)


def _fertility_record(rec: _Recorder, lang: str, tot: Mapping[str, int], n_items: int) -> None:
    """Tokens per whitespace word (NaN with a warning for scripts without spaces; none without words)."""
    if not is_whitespace_delimited(lang):
        msg = (f"fertility undefined for {lang}: script {lang.split('_')[1]} does not separate words with spaces "
               "(no segmenter used).")
        warnings.warn(msg, DegenerateDataWarning, stacklevel=3)  # the caller of parity_table
        rec("tok.fertility", math.nan, n_items, (msg,))
    elif tot["n_words"] > 0:
        rec("tok.fertility", tot["n_tokens"] / tot["n_words"], n_items)


def _premium_records(
    rec: _Recorder, label: str, reference: str, n_items: int, tokens: tuple[np.ndarray, np.ndarray],
    nbytes: tuple[np.ndarray, np.ndarray], clusters: list[str], *, n_resamples: int, confidence_level: float,
    rng: Any,
) -> None:
    """Token premium (ratio of sums over the shared items, optional cluster CI) and byte premium vs the reference."""
    (num, den), (numb, denb) = tokens, nbytes
    n_shared = len(clusters)
    warn: tuple[str, ...] = ()
    if n_shared < n_items:
        msg = f"{n_items - n_shared} item(s) of {label} have no {reference} counterpart and are left out of its premium."
        warnings.warn(msg, DegenerateDataWarning, stacklevel=3)
        warn = (msg,)
    extra: dict[str, Any] = {"reference": reference, "n_tokens_reference": int(den.sum()),
                             "n_bytes_reference": int(denb.sum()), "n_shared_items": n_shared}
    if den.sum() == 0:
        msg = f"reference {reference} has no tokens on the items shared with {label}; premium undefined."
        warnings.warn(msg, DegenerateDataWarning, stacklevel=3)
        rec("tok.premium_vs_reference", math.nan, n_shared, warn + (msg,), extra)
        return
    pw, premium_extra = warn, dict(extra)
    n_clusters = len(set(clusters))
    if n_resamples > 0 and n_clusters < 2:  # degenerate but legal (e.g. --limit within one document): no interval
        msg = (f"{label}: the shared items come from {n_clusters} document(s); a cluster-bootstrap interval needs at "
               "least 2, so the premium has no CI.")
        warnings.warn(msg, DegenerateDataWarning, stacklevel=3)
        premium_extra.update(ci_attributes(None, level=confidence_level, n_clusters=n_clusters))
        pw = warn + (msg,)
    elif n_resamples > 0:
        ci, bw, ncl = _ratio_ci(num, den, clusters, n_resamples=n_resamples, confidence_level=confidence_level,
                                rng=rng, stacklevel=4)
        premium_extra.update(ci_attributes(ci, n_clusters=ncl))
        pw = warn + bw
    rec("tok.premium_vs_reference", float(num.sum() / den.sum()), n_shared, pw, premium_extra)
    # the byte premium has no interval of its own: it must not carry the token premium's CI
    rec("tok.byte_premium_vs_reference", float(numb.sum() / denb.sum()), n_shared, warn, dict(extra))


def parity_frame(records: Sequence[Measurement]) -> pd.DataFrame:
    """Wide table of parity records: one row per (tokenizer, language), one column per quantity.

    Parameters
    ----------
    records : sequence of Measurement
        Output of :func:`parity_table` (possibly for several tokenizers).

    Returns
    -------
    pandas.DataFrame
        Index ``(tokenizer, label)`` (the label is the language code unless a variant label was given); columns are quantity names without the ``tok.`` prefix, plus
        ``premium_ci_low``/``premium_ci_high`` when present. Values at full precision.

    Notes
    -----
    A pure reshaping of the records. Validated against: the record values, exact, in the tests.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> df = parity_frame(parity_table(tok, {"eng_Latn": ["a"], "deu_Latn": ["a a a"]}))
    >>> float(df.loc[("object", "deu_Latn"), "premium_vs_reference"])
    3.0
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        if not isinstance(r, Measurement) or not r.quantity.startswith("tok."):
            continue
        key = (r.model.model_id if r.model else "", str(r.attributes.get("label", r.language or "")))
        row = rows.setdefault(key, {})
        row[r.quantity[4:]] = r.value
        if r.quantity == "tok.premium_vs_reference" and "ci_low" in r.attributes:
            row["premium_ci_low"] = r.attributes["ci_low"]
            row["premium_ci_high"] = r.attributes["ci_high"]
    df = pd.DataFrame.from_dict(rows, orient="index")
    if len(df):
        df.index = pd.MultiIndex.from_tuples(df.index, names=["tokenizer", "label"])
    return df.sort_index()
