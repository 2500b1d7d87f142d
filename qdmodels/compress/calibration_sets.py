"""Calibration sets for calibrated quantization, with their language composition as a recorded factor.

A calibration set is a fixed number of token sequences of equal length (``n_sequences x seq_len``), packed from
shuffled paragraphs of one or more languages. The *composition* says which languages contribute how many
sequences:

* ``'eng'`` -- English only (the usual practice: GPTQ and AWQ calibrate on English C4/Pile text);
* ``'multi'`` -- every language of ``languages`` equally (balanced);
* ``'target'`` -- only the target language (one calibration set per evaluated language);
* ``'proportional'`` -- shares proportional to ``weights`` (default: to each language's amount of available
  calibration text, in tokens of this tokenizer).

The total token budget ``n_sequences * seq_len`` is the same for every composition (the budget is equalized),
so compositions differ only in *which* text is seen. Sampling is deterministic given ``seed``.

Calibration text comes from ``dataset_build`` (a PyPI package written for calibration) and the NTREX-128
**dev** split. Test-split items are refused (:class:`CalibrationLeakError`), so a calibrated quantizer can never
see the sentences it is reported on; :meth:`CalibrationSet.check_disjoint` also checks evaluation items against
the exact source items used.

Examples
--------
>>> from qdmodels.models.tiny import tiny_tokenizer
>>> from qdmodels.eval.scoring import text_items
>>> pool = text_items({"eng_Latn": ["The fox jumps over the dog."] * 4, "heb_Hebr": ["השועל קופץ מעל הכלב."] * 4})
>>> cal = build_calibration(tiny_tokenizer(), pool, composition="multi", n_sequences=2, seq_len=8, seed=0)
>>> cal.key, cal.n_sequences, cal.seq_len, dict(cal.sequences_per_language)
('multi', 2, 8, {'eng_Latn': 1, 'heb_Hebr': 1})
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from qdmodels.corpora.types import ParallelItem
from qdstats.validation import check_int, check_option

__all__ = [
    "COMPOSITIONS",
    "CalibrationLeakError",
    "CalibrationSet",
    "Composition",
    "build_calibration",
    "calibration_ids",
    "calibration_pool",
    "check_calibration_items",
]

Composition = Literal["eng", "multi", "target", "proportional"]
COMPOSITIONS: tuple[str, ...] = ("eng", "multi", "target", "proportional")
ENGLISH = "eng_Latn"


class CalibrationLeakError(ValueError):
    """A test-split item (or an item of unknown split from a split corpus) was offered as calibration text."""


def check_calibration_items(items: Sequence[ParallelItem], *, name: str = "pool") -> None:
    """Raise :class:`CalibrationLeakError` if any item belongs to a test split.

    An item is refused when ``item.split == 'test'``, when its ``corpus.split == 'test'``, or when it comes from
    NTREX-128 (``corpus_id`` starting with ``'ntrex'``) without being marked ``'dev'`` (NTREX is split by
    document; an unmarked NTREX item could be a test sentence).
    """
    for it in items:
        if not isinstance(it, ParallelItem):
            raise TypeError(f"`{name}` must contain ParallelItem objects; got {type(it).__name__}.")
        csplit = it.corpus.split if it.corpus is not None else None
        cid = it.corpus.corpus_id if it.corpus is not None else ""
        if it.split == "test" or csplit == "test" or (cid.startswith("ntrex") and it.split != "dev"):
            raise CalibrationLeakError(
                f"`{name}` contains {it.item_id!r} ({it.language}) from split {it.split or csplit!r} of corpus "
                f"{cid or 'unknown'!r}; calibration text must never come from the test split (use dataset_build "
                "and the NTREX dev split)."
            )


@dataclass(frozen=True)
class CalibrationSet:
    """A deterministic calibration set: equal-length token sequences and where they came from.

    Attributes
    ----------
    composition : str
        ``'eng'``, ``'multi'``, ``'target'`` or ``'proportional'``; :attr:`key` for ``condition['calibration']``.
    target : str or None
        The target language of a ``'target'`` composition.
    input_ids : torch.Tensor
        ``int64`` tensor ``(n_sequences, seq_len)``; each row starts with the tokenizer's context token (BOS,
        else EOS) followed by ``seq_len - 1`` text tokens; paragraphs are joined by the tokenizer's token for
        ``"\n\n"`` (the context token if it has none), so special tokens appear only at position 0, as in evaluation.
    languages : tuple of str
        Language of each row.
    source_items : tuple of (str, str)
        ``(language, item_id)`` of every item whose tokens appear in the set.
    seed : int
    sha256 : str
        Hash of the token ids and languages (identifies the exact set).
    """

    composition: str
    target: str | None
    input_ids: torch.Tensor
    languages: tuple[str, ...]
    source_items: tuple[tuple[str, str], ...]
    seed: int

    @property
    def key(self) -> str:
        """Composition key recorded as ``condition['calibration']`` (``'eng'``, ``'multi'``, ``'target'``...)."""
        return self.composition

    @property
    def n_sequences(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.input_ids.shape[1])

    @property
    def n_tokens(self) -> int:
        """Total token budget ``n_sequences * seq_len``."""
        return self.n_sequences * self.seq_len

    @property
    def sequences_per_language(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for lang in self.languages:
            out[lang] = out.get(lang, 0) + 1
        return out

    @property
    def sha256(self) -> str:
        h = hashlib.sha256(self.input_ids.numpy().astype("<i8").tobytes())
        h.update("|".join(self.languages).encode())
        return h.hexdigest()

    def condition(self) -> dict[str, str | int]:
        """``{'calibration': key, 'calib_tokens': n_tokens, 'calib_seed': seed}`` for ``Measurement.condition``."""
        return {"calibration": self.key, "calib_tokens": self.n_tokens, "calib_seed": self.seed}

    def check_disjoint(self, items: Sequence[ParallelItem]) -> None:
        """Raise :class:`CalibrationLeakError` if an evaluation item was used for calibration."""
        used = set(self.source_items)
        for it in items:
            if (it.language, it.item_id) in used:
                raise CalibrationLeakError(
                    f"`items` contains {it.item_id!r} ({it.language}), which is part of the calibration set; "
                    "evaluate on held-out text."
                )


def _flatten_pool(pool: Any) -> dict[str, list[ParallelItem]]:
    if isinstance(pool, Mapping):
        flat = [it for seq in pool.values() for it in seq]
    elif isinstance(pool, Sequence) and not isinstance(pool, (str, bytes)):
        flat = list(pool)
    else:
        raise TypeError(f"`pool` must be a sequence of ParallelItem or a dict language -> items; got {type(pool).__name__}.")
    check_calibration_items(flat)
    by_lang: dict[str, list[ParallelItem]] = {}
    for it in flat:
        by_lang.setdefault(it.language, []).append(it)
    return by_lang


def _allocate(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder allocation of ``total`` sequences to languages (ties broken by language code)."""
    s = sum(shares.values())
    raw = {k: total * v / s for k, v in shares.items()}
    alloc = {k: math.floor(v) for k, v in raw.items()}
    rest = total - sum(alloc.values())
    for k in sorted(raw, key=lambda k: (-(raw[k] - alloc[k]), k))[:rest]:
        alloc[k] += 1
    return alloc


def _token_stream(tokenizer: Any, items: Sequence[ParallelItem], order: np.ndarray, sep: int) -> tuple[list[int], list[int]]:
    """Tokens of the items in ``order`` joined by ``sep``; and for each token the index of its item."""
    toks: list[int] = []
    owner: list[int] = []
    for k in order:
        ids = tokenizer(items[k].text, add_special_tokens=False)["input_ids"]
        if not ids:
            continue
        toks.extend(int(i) for i in ids)
        owner.extend([int(k)] * len(ids))
        toks.append(sep)
        owner.append(int(k))
    return toks, owner


def build_calibration(
    tokenizer: Any,
    pool: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    composition: Composition = "eng",
    target: str | None = None,
    languages: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
    n_sequences: int = 128,
    seq_len: int = 512,
    seed: int = 0,
) -> CalibrationSet:
    """Build a calibration set of ``n_sequences`` token sequences of ``seq_len`` tokens with a given composition.

    Parameters
    ----------
    tokenizer : transformers tokenizer
        The model's tokenizer (the budget is counted in its tokens).
    pool : sequence of ParallelItem or dict language -> items
        Candidate calibration text (e.g. :func:`calibration_pool`). Test-split items raise.
    composition : {'eng', 'multi', 'target', 'proportional'}, default 'eng'
        See the module docstring.
    target : str, optional
        Required for ``'target'``: the language whose text is used (e.g. ``'heb_Hebr'``).
    languages : sequence of str, optional
        Languages of ``'multi'``/``'proportional'`` (default: every language of ``pool``).
    weights : dict, optional
        ``'proportional'`` only: language -> non-negative share (default: available tokens per language).
    n_sequences : int, default 128
        Number of sequences (GPTQ's reference uses 128 x 2048 tokens of C4).
    seq_len : int, default 512
        Tokens per sequence, including the leading context token (>= 2).
    seed : int, default 0
        Seed of the paragraph shuffle and of the window offsets.

    Returns
    -------
    CalibrationSet

    Raises
    ------
    CalibrationLeakError
        A test-split item in ``pool``.
    ValueError
        Unknown ``composition``; ``target`` missing or given for a composition that does not use it; a
        language absent from ``pool``; a language with too little text for its share (the message says how
        many tokens exist and how many are needed); bad ``weights``.

    Notes
    -----
    Per language, items are shuffled with ``numpy.random.default_rng([seed, crc])`` (``crc`` = a stable hash of the
    language code, so adding a language does not change another language's sample), tokenized without special
    tokens, joined with a paragraph-break token and cut into consecutive windows of ``seq_len - 1`` tokens; the
    language's first ``k`` windows are used. Sequence counts per language come from a largest-remainder
    allocation of ``n_sequences`` over the shares, so the total budget is exactly ``n_sequences * seq_len``
    whatever the composition. Validated against: not independently validated (a sampling procedure); the
    tests check budget equality, determinism, language purity and the test-split guard.
    """
    from qdmodels.runtime import context_token

    check_option(composition, "composition", COMPOSITIONS)
    n_sequences = check_int(n_sequences, "n_sequences", minimum=1)
    seq_len = check_int(seq_len, "seq_len", minimum=2)
    seed = check_int(seed, "seed", minimum=0)
    by_lang = _flatten_pool(pool)
    if not by_lang:
        raise ValueError("`pool` is empty; pass calibration items (see calibration_pool).")
    avail = sorted(by_lang)
    if composition == "target":
        if target is None:
            raise ValueError("`target` is required for composition='target' (e.g. target='heb_Hebr').")
    elif target is not None:
        raise ValueError(f"`target` is only used with composition='target'; got target={target!r} with {composition!r}.")
    if weights is not None and composition != "proportional":
        raise ValueError(f"`weights` is only used with composition='proportional'; got composition={composition!r}.")
    if composition == "eng":
        langs = [ENGLISH]
    elif composition == "target":
        langs = [str(target)]
    else:
        langs = list(languages) if languages is not None else avail
        if not langs:
            raise ValueError("`languages` must not be empty.")
    for lang in langs:
        if lang not in by_lang:
            raise ValueError(f"`pool` has no items for language {lang!r}; available: {avail}.")
    ctx, _ = context_token(tokenizer)
    sep_ids = tokenizer("\n\n", add_special_tokens=False)["input_ids"]
    sep = int(sep_ids[-1]) if sep_ids else ctx
    win = seq_len - 1
    streams: dict[str, tuple[list[int], list[int]]] = {}
    for lang in langs:
        items = by_lang[lang]
        crc = int(hashlib.sha256(lang.encode()).hexdigest()[:8], 16)
        order = np.random.default_rng([seed, crc]).permutation(len(items))
        streams[lang] = _token_stream(tokenizer, items, order, sep)
    if composition == "proportional":
        if weights is None:
            shares = {lang: float(len(streams[lang][0])) for lang in langs}
        else:
            missing = [lang for lang in langs if lang not in weights]
            if missing:
                raise ValueError(f"`weights` lacks languages {missing}.")
            shares = {lang: float(weights[lang]) for lang in langs}
            if any(not math.isfinite(v) or v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
                raise ValueError(f"`weights` must be finite, non-negative and not all zero; got {dict(weights)}.")
    else:
        shares = {lang: 1.0 for lang in langs}
    alloc = _allocate(n_sequences, shares)
    rows: list[list[int]] = []
    row_langs: list[str] = []
    used: set[tuple[str, str]] = set()
    for lang in langs:
        k = alloc.get(lang, 0)
        if k == 0:
            continue
        toks, owner = streams[lang]
        need = k * win
        if len(toks) < need:
            raise ValueError(
                f"language {lang!r} has {len(toks)} calibration tokens in `pool` but needs {need} "
                f"({k} sequences x {win} text tokens); add text or lower `n_sequences`/`seq_len`."
            )
        items = by_lang[lang]
        for j in range(k):
            rows.append([ctx, *toks[j * win:(j + 1) * win]])
            row_langs.append(lang)
        used.update((lang, items[i].item_id) for i in set(owner[:need]))
    return CalibrationSet(
        composition=composition, target=target if composition == "target" else None,
        input_ids=torch.tensor(rows, dtype=torch.long), languages=tuple(row_langs),
        source_items=tuple(sorted(used)), seed=seed,
    )


def calibration_pool(
    languages: Sequence[str],
    *,
    sources: Sequence[Literal["dataset_build", "ntrex_dev"]] = ("dataset_build",),
    limit: int | None = None,
) -> dict[str, list[ParallelItem]]:
    """Load candidate calibration items per language from ``dataset_build`` and/or the NTREX-128 dev split.

    Parameters
    ----------
    languages : sequence of str
        Normalized codes (``'eng_Latn'``, ``'heb_Hebr'``).
    sources : sequence of {'dataset_build', 'ntrex_dev'}, default ('dataset_build',)
        Where the text comes from. NTREX is only ever read with ``split='dev'``.
    limit : int, optional
        Items per language and source.

    Returns
    -------
    dict
        language -> list of ParallelItem.

    Raises
    ------
    ValueError
        Unknown source or empty ``languages``; the loaders' errors (unknown language, missing data).

    Notes
    -----
    Validated against: not independently validated (a loader wrapper).
    """
    langs = list(languages)
    if not langs:
        raise ValueError("`languages` must not be empty.")
    srcs = [check_option(s, "sources", ("dataset_build", "ntrex_dev")) for s in sources]
    if not srcs:
        raise ValueError("`sources` must not be empty.")
    out: dict[str, list[ParallelItem]] = {lang: [] for lang in langs}
    if "dataset_build" in srcs:
        from qdmodels.corpora import load_dataset_build

        db = load_dataset_build(langs, limit=limit)
        for lang in langs:
            out[lang].extend(db.items[lang])
    if "ntrex_dev" in srcs:
        from qdmodels.corpora import load_ntrex

        nt = load_ntrex(langs, split="dev", limit=limit)
        for lang in langs:
            out[lang].extend(nt.items[lang])
    for lang in langs:
        check_calibration_items(out[lang])
    return out


def calibration_ids(calibration: Any) -> tuple[torch.Tensor, str, int, int | None, str | None]:
    """``(input_ids, key, n_tokens, seed, sha256)`` of a :class:`CalibrationSet` or of a bare int64 token tensor
    ``(n_sequences, seq_len)`` (key ``'custom'``, no seed or hash): what calibrated compressors (GPTQ, Wanda-style
    pruning) record about their calibration text.

    Raises
    ------
    TypeError
        Anything else.

    Examples
    --------
    >>> import torch
    >>> calibration_ids(torch.zeros(2, 4, dtype=torch.long))[1:]
    ('custom', 8, None, None)
    """
    if isinstance(calibration, CalibrationSet):
        return calibration.input_ids, calibration.key, calibration.n_tokens, calibration.seed, calibration.sha256
    if isinstance(calibration, torch.Tensor) and calibration.ndim == 2 and not calibration.is_floating_point():
        return calibration.long(), "custom", int(calibration.numel()), None, None
    raise TypeError(
        "`calibration` must be a CalibrationSet (qdmodels.compress.calibration_sets.build_calibration) or an int64 tensor "
        f"(n_sequences, seq_len); got {type(calibration).__name__}."
    )
