"""Representation damage: how far compression moves a model's hidden states, per layer and language.

For the same sentences, the output of each decoder block (the residual stream after block ``i``) is captured
under a reference condition (full precision by default) and under each compressed condition, with scoped
forward hooks that are always removed. Three similarities are measured per layer x language x condition:

* ``repr.linear_cka``: linear CKA (Kornblith et al. 2019) between the two sets of token states, over the text
  tokens of all of a language's sentences (the context token and padding are excluded);
* ``repr.cosine_token``: the mean cosine similarity between the two states at the same token position;
* ``repr.cosine_word``: the same on word vectors (the mean of the states of the tokens overlapping each
  whitespace word, located through the UTF-8 byte spans of :func:`qdmodels.eval.encoding.encoded_byte_spans`), so that
  languages whose tokenizers split words differently are compared on the same units. Scripts written without
  spaces (Han, Japanese, Thai, Khmer, Lao, Myanmar, Tibetan) are refused unless ``unspaced='characters'``
  (characters as units) or ``'skip'``.

Confidence intervals come from a bootstrap over sentences (the cluster): cosine CIs use
:func:`qdstats.resampling.cluster_bootstrap_ci`; the CKA CI resamples sentences with the same engine
(``qdstats.resampling.iter_cluster_weights`` / ``ci_from_distribution``) and recomputes CKA in closed form
from per-sentence Gram statistics (see :func:`cka_bootstrap`).

Memory is bounded: CKA uses at most ``max_tokens`` text tokens per language, sampled without replacement with
the run's seed (the same positions for every layer and condition, so comparisons stay paired); the cosines use
every text token. The reference states of the selected layers are kept in memory
(``n_layers x n_text_tokens x hidden_size`` float32).

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.eval.scoring import text_items
>>> lm = tiny_model("llama")
>>> items = text_items({"eng_Latn": ["The fox runs.", "A dog sleeps here.", "Birds sing."]})
>>> res = representation_damage(lm, items, ["int3-ch-sym"], layers=[1], n_resamples=99, rng=0)
>>> sorted({r.quantity for r in res.records})
['repr.cosine_token', 'repr.cosine_word', 'repr.linear_cka']
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import torch

from qdmodels.compress.conditions import EvalCondition, as_condition, fp_condition
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.batching import make_batches
from qdmodels.eval.encoding import EncodedItem, encode_items, encoded_byte_spans
from qdmodels.models.hooks import HookSet
from qdmodels.models.sites import site_map
from qdmodels.runtime import content_hash, context_token, flatten_items, resolve_model
from qdstats.options import BOOTSTRAP_KINDS, BootstrapKind
from qdstats.records import Measurement
from qdstats.resampling import (
    RngLike,
    as_generator,
    ci_from_distribution,
    cluster_bootstrap_ci,
    iter_cluster_weights,
    seed_detail,
)
from qdstats.results import ConfidenceInterval, ci_attributes
from qdstats.validation import (
    DegenerateDataWarning,
    SmallSampleWarning,
    WarningCollector,
    check_confidence_level,
    check_int,
    check_option,
)

__all__ = [
    "UNSPACED_SCRIPTS",
    "CKABootstrap",
    "Measure",
    "RepresentationResult",
    "cka_bootstrap",
    "linear_cka",
    "representation_damage",
    "unit_spans",
]

ROUTINE = "qdmodels.probes.representation.representation_damage"
Measure = Literal["cka", "cosine_token", "cosine_word"]
MEASURES: tuple[str, ...] = get_args(Measure)
Unspaced = Literal["error", "characters", "skip"]
#: ISO 15924 scripts normally written without spaces between words.
UNSPACED_SCRIPTS: frozenset[str] = frozenset({"Hani", "Hans", "Hant", "Jpan", "Thai", "Khmr", "Laoo", "Mymr", "Tibt"})
_QUANTITY = {"cka": "repr.linear_cka", "cosine_token": "repr.cosine_token", "cosine_word": "repr.cosine_word"}


# ----------------------------------------------------------------------------- CKA
def _as_2d(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array (tokens x features); got shape {a.shape}.")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return a


def linear_cka(x: Any, y: Any, *, debiased: bool = False) -> float:
    """Linear centered kernel alignment between two representations of the same ``n`` examples.

    Parameters
    ----------
    x : array_like, shape (n, d1)
        One row per example (token).
    y : array_like, shape (n, d2)
        The same examples in the other representation.
    debiased : bool, default False
        Use the unbiased HSIC estimator (Song et al. 2012) in numerator and denominator, which removes the
        upward small-``n`` bias of plain CKA (needs ``n >= 4``; the value can then fall slightly outside [0, 1]).
        Not used by :func:`representation_damage`, whose sentence bootstrap duplicates rows.

    Returns
    -------
    float
        ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with ``Xc``, ``Yc`` column-centered; in [0, 1].
        NaN (with a :class:`DegenerateDataWarning`) when either representation is constant over examples.

    Raises
    ------
    ValueError
        Not 2-D, different numbers of rows, fewer than 2 rows, or non-finite values.

    Notes
    -----
    Invariant to orthogonal transformations and isotropic scaling of either side, not to arbitrary
    invertible linear maps. Computed in feature space (cost ``n d^2``); :func:`cka_bootstrap` gives the same
    value from Gram matrices. Validated against: the Gram-matrix (HSIC, ``tr(KHLH)``) formula of Kornblith et
    al. (2019) eq. 3 and the identities CKA(X, X) = 1, CKA(X, XQ s) = 1 for orthogonal Q, rtol 1e-10; the
    debiased form against Song et al.'s (2012) Gram-matrix unbiased HSIC estimator, rtol 1e-10 (tests).

    References
    ----------
    Kornblith, S., Norouzi, M., Lee, H. & Hinton, G. (2019). Similarity of neural network representations
    revisited. ICML. arXiv:1905.00414
    Song, L., Smola, A., Gretton, A., Bedo, J. & Borgwardt, K. (2012). Feature selection via dependence
    maximization. JMLR 13, 1393-1434.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 4))
    >>> round(linear_cka(x, 3 * x), 12)
    1.0
    """
    a = _as_2d(x, "x")
    b = _as_2d(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of rows (examples); got {a.shape[0]} and {b.shape[0]}.")
    if a.shape[0] < 2:
        raise ValueError(f"`x` must have at least 2 rows; got {a.shape[0]}.")
    if not isinstance(debiased, (bool, np.bool_)):
        raise TypeError(f"`debiased` must be a bool; got {debiased!r}.")
    n = a.shape[0]
    if debiased and n < 4:
        raise ValueError(f"`x` must have at least 4 rows for debiased=True; got {n}.")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = np.linalg.norm(b.T @ a, "fro") ** 2
    nx2 = np.linalg.norm(a.T @ a, "fro") ** 2
    ny2 = np.linalg.norm(b.T @ b, "fro") ** 2
    if debiased:  # Kornblith et al.'s feature-space form of the unbiased HSIC (up to a common factor)
        rx = np.einsum("ij,ij->i", a, a)
        ry = np.einsum("ij,ij->i", b, b)

        def unbiased(dot: float, ra: np.ndarray, rb: np.ndarray) -> float:
            return float(dot - n / (n - 2.0) * ra @ rb + ra.sum() * rb.sum() / ((n - 1.0) * (n - 2.0)))

        num, nx2, ny2 = unbiased(num, rx, ry), unbiased(nx2, rx, rx), unbiased(ny2, ry, ry)
    den = math.sqrt(max(nx2, 0.0) * max(ny2, 0.0))
    if den == 0.0:
        warnings.warn("linear_cka: a representation is constant over examples; CKA is undefined (NaN).",
                      DegenerateDataWarning, stacklevel=2)
        return math.nan
    return float(num / den)


@dataclass(frozen=True)
class CKABootstrap:
    """Result of :func:`cka_bootstrap`.

    Attributes
    ----------
    estimate : float
        Linear CKA over all rows (equals :func:`linear_cka`).
    ci : ConfidenceInterval
        Bootstrap interval over clusters (method ``'cluster-bootstrap-<kind>'``).
    standard_error : float
        Standard deviation (ddof=1) of the finite replicates.
    n : int
        Rows (tokens).
    n_clusters : int
        Clusters (sentences).
    warnings : tuple of str
        Degeneracy notes.
    distribution : numpy.ndarray
        The bootstrap replicates.
    """

    estimate: float
    ci: ConfidenceInterval
    standard_error: float
    n: int
    n_clusters: int
    warnings: tuple[str, ...]
    distribution: np.ndarray = field(repr=False)


class _GramStats:
    """Per-cluster Gram statistics from which weighted HSIC terms follow in closed form."""

    def __init__(self, x: np.ndarray, y: np.ndarray, codes: np.ndarray, n_clusters: int) -> None:
        self.codes = codes
        self.n_clusters = n_clusters
        k = x @ x.T
        ell = y @ y.T
        p = np.zeros((x.shape[0], n_clusters))
        p[np.arange(x.shape[0]), codes] = 1.0
        self.p = p
        self.m = {"kl": p.T @ (k * ell) @ p, "kk": p.T @ (k * k) @ p, "ll": p.T @ (ell * ell) @ p}
        self.g = {"k": k @ p, "l": ell @ p}  # (n, S): row t, cluster s -> sum_{u in s} K_tu
        self.c = {"k": p.T @ self.g["k"], "l": p.T @ self.g["l"]}  # (S, S)
        self.sizes = p.sum(axis=0)

    def cka(self, ws: np.ndarray) -> np.ndarray:
        """CKA for each row of cluster weights ``ws`` (B, S)."""
        ws = np.atleast_2d(ws)
        wtot = ws @ self.sizes  # (B,)
        wt = ws @ self.p.T  # (B, n) token weights
        kw = ws @ self.g["k"].T  # (B, n)
        lw = ws @ self.g["l"].T
        ck = np.einsum("bs,st,bt->b", ws, self.c["k"], ws)
        cl = np.einsum("bs,st,bt->b", ws, self.c["l"], ws)
        with np.errstate(divide="ignore", invalid="ignore"):
            def hsic(mkey: str, a: np.ndarray, b: np.ndarray, ca: np.ndarray, cb: np.ndarray) -> np.ndarray:
                t1 = np.einsum("bs,st,bt->b", ws, self.m[mkey], ws)
                t2 = -2.0 / wtot * np.sum(wt * a * b, axis=1)
                t3 = ca * cb / wtot**2
                return t1 + t2 + t3

            kl = hsic("kl", kw, lw, ck, cl)
            kk = hsic("kk", kw, kw, ck, ck)
            ll = hsic("ll", lw, lw, cl, cl)
            den = np.sqrt(np.clip(kk, 0.0, None) * np.clip(ll, 0.0, None))
            out = kl / den
        scale = np.maximum(np.abs(kk), np.abs(ll))
        out[(den <= 1e-12 * np.where(scale > 0, scale, 1.0)) | ~np.isfinite(out)] = np.nan
        return out


def cka_bootstrap(
    x: Any,
    y: Any,
    clusters: Any,
    *,
    kind: BootstrapKind = "percentile",
    confidence_level: float = 0.95,
    n_resamples: int = 999,
    rng: RngLike = None,
) -> CKABootstrap:
    """Linear CKA with a cluster-bootstrap confidence interval (clusters = sentences).

    Parameters
    ----------
    x, y : array_like, shape (n, d1) and (n, d2)
        Paired representations, one row per token.
    clusters : array_like, shape (n,)
        Cluster label of each row (the sentence it belongs to). Whole clusters are resampled.
    kind : {'percentile', 'basic', 'bca'}, default 'percentile'
        Interval type; BCa uses the delete-one-cluster jackknife.
    confidence_level : float, default 0.95
    n_resamples : int, default 999
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    CKABootstrap

    Raises
    ------
    ValueError
        Shape mismatches, fewer than 2 clusters, bad options.

    Warns
    -----
    DegenerateDataWarning
        Undefined CKA (a constant representation) or undefined interval; copied into ``warnings``.
    SmallSampleWarning
        Fewer than 10 clusters (as :func:`qdstats.resampling.cluster_bootstrap_ci`).

    Notes
    -----
    A resample that draws sentence ``s`` ``w_s`` times is the token set with each token of ``s`` repeated
    ``w_s`` times. With token weights ``w`` (``W = sum w``), weighted centering gives

    ``HSIC_w(K, L) = w'(K∘L)w - (2/W) sum_t w_t (Kw)_t (Lw)_t + (w'Kw)(w'Lw)/W^2``  (up to the factor ``W^2``),

    with ``K = XX'`` and ``L = YY'``. Since ``w`` is constant within a sentence, every term follows from
    per-sentence sums (``P'(K∘L)P``, ``KP``, ``P'KP`` with ``P`` the token-to-sentence indicator), computed once
    in ``O(n^2 S)``; each resample then costs ``O(n S)``. ``CKA = HSIC(K,L)/sqrt(HSIC(K,K) HSIC(L,L))``.
    Validated against: :func:`linear_cka` on the explicitly duplicated rows of a resample (rtol 1e-9, property
    test) and on all rows (unit weights).

    References
    ----------
    Kornblith et al. (2019), arXiv:1905.00414. Davison & Hinkley (1997), *Bootstrap Methods and their
    Application*, sec. 3.8, DOI: 10.1017/CBO9780511802843.
    """
    check_option(kind, "kind", BOOTSTRAP_KINDS)
    level = check_confidence_level(confidence_level)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    gen = as_generator(rng)
    a = _as_2d(x, "x")
    b = _as_2d(y, "y")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"`x` and `y` must have the same number of rows; got {a.shape[0]} and {b.shape[0]}.")
    labels = np.asarray(clusters)
    if labels.ndim != 1 or labels.shape[0] != a.shape[0]:
        raise ValueError(f"`clusters` must be 1-D with one label per row ({a.shape[0]}); got shape {labels.shape}.")
    uniq, codes = np.unique(labels, return_inverse=True)
    s = len(uniq)
    if s < 2:
        raise ValueError(f"`clusters` must contain at least 2 distinct clusters; got {s}.")
    wc = WarningCollector()
    if s < 10:
        wc.warn(f"only {s} clusters: cluster-bootstrap intervals tend to under-cover with few clusters.",
                SmallSampleWarning)
    stats = _GramStats(a, b, codes.astype(int), s)
    est = float(stats.cka(np.ones((1, s)))[0])
    if math.isnan(est):
        wc.warn("CKA is undefined: a representation is constant over the tokens (NaN).", DegenerateDataWarning)
    reps = np.concatenate([stats.cka(w) for w in iter_cluster_weights([np.arange(s)], s, n_resamples, gen)])
    jack = stats.cka(np.ones((s, s)) - np.eye(s)) if kind == "bca" else None
    low, high, problems = ci_from_distribution(np.array([est]), reps[:, None], kind=kind, confidence_level=level,
                                                jackknife=None if jack is None else jack[:, None])
    for p in problems:
        wc.warn(f"CKA interval: {p[4:]}", DegenerateDataWarning)
    n_bad = int(np.sum(~np.isfinite(reps)))
    if n_bad:
        wc.warn(f"{n_bad} of {n_resamples} bootstrap replicates of CKA were undefined and dropped.",
                DegenerateDataWarning)
    finite = reps[np.isfinite(reps)]
    se = float(np.std(finite, ddof=1)) if finite.size > 1 else math.nan
    return CKABootstrap(
        estimate=est, ci=ConfidenceInterval(low=float(low[0]), high=float(high[0]), level=level,
                                            method=f"cluster-bootstrap-{kind}"),
        standard_error=se, n=int(a.shape[0]), n_clusters=s, warnings=tuple(wc.messages), distribution=reps,
    )


# ----------------------------------------------------------------------------- units (words / characters)
def unit_spans(text: str, *, units: Literal["words", "characters"] = "words") -> list[tuple[int, int]]:
    """UTF-8 byte spans of the whitespace-separated words (or of the characters) of ``text``.

    Parameters
    ----------
    text : str
    units : {'words', 'characters'}, default 'words'
        Words are maximal runs of non-whitespace characters (``str.split`` semantics); characters are the
        non-whitespace code points.

    Returns
    -------
    list of (int, int)
        ``(start, end)`` byte offsets into ``text.encode('utf-8')``.

    Examples
    --------
    >>> unit_spans("ab  שלום")
    [(0, 2), (4, 12)]
    """
    check_option(units, "units", ("words", "characters"))
    pattern = r"\S+" if units == "words" else r"\S"
    out = []
    for m in re.finditer(pattern, text):
        start = len(text[: m.start()].encode("utf-8"))
        out.append((start, start + len(m.group().encode("utf-8"))))
    return out


def _pooling(token_spans: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> tuple[np.ndarray, int]:
    """Row-normalized (n_units_kept, n_tokens) matrix: each unit's vector is the mean of the tokens overlapping it."""
    rows = []
    dropped = 0
    for us, ue in spans:
        hit = [j for j, (ts, te) in enumerate(token_spans) if min(ue, te) > max(us, ts)]
        if not hit:
            dropped += 1
            continue
        r = np.zeros(len(token_spans))
        r[hit] = 1.0 / len(hit)
        rows.append(r)
    return (np.stack(rows) if rows else np.zeros((0, len(token_spans)))), dropped


def _script(language: str) -> str:
    return language.split("_", 1)[1] if "_" in language else ""


# ----------------------------------------------------------------------------- result
@dataclass
class RepresentationResult:
    """Result of :func:`representation_damage`.

    Attributes
    ----------
    records : list of Measurement
        One record per (condition, layer, language, measure); CI in ``attributes`` (``ci_low``, ``ci_high``,
        ``ci_level``, ``ci_method``).
    """

    records: list[Measurement]

    def frame(self) -> pd.DataFrame:
        """Tidy frame: ``quantity, condition, layer, language, value, ci_low, ci_high, n``."""
        rows = []
        for r in self.records:
            rows.append({
                "quantity": r.quantity, "condition": r.condition.get("scheme"), "layer": r.attributes.get("layer"),
                "language": r.language, "value": r.value, "ci_low": r.attributes.get("ci_low"),
                "ci_high": r.attributes.get("ci_high"), "n": r.n,
            })
        return pd.DataFrame(rows, columns=["quantity", "condition", "layer", "language", "value", "ci_low", "ci_high", "n"])


# ----------------------------------------------------------------------------- pipeline
def _collect_states(
    model: torch.nn.Module, blocks: Mapping[int, torch.nn.Module], encoded: Sequence[EncodedItem], *,
    batch_size: int, pad_id: int,
) -> dict[int, list[torch.Tensor]]:
    """Block outputs at the text-token positions of every item (input order), float32 on CPU."""
    out: dict[int, list[Any]] = {i: [None] * len(encoded) for i in blocks}
    pos = {id(e): k for k, e in enumerate(encoded)}
    for b in make_batches(encoded, batch_size=batch_size, pad_id=pad_id):
        seen: dict[int, torch.Tensor] = {}
        with torch.inference_mode(), HookSet() as hs:
            for i, blk in blocks.items():
                def keep(mod: Any, args: Any, o: Any, _i: int = i, _seen: dict[int, Any] = seen) -> None:
                    _seen[_i] = (o[0] if isinstance(o, (tuple, list)) else o).detach()

                hs.forward(blk, keep)
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)
        for i in blocks:
            h = seen[i]
            for r, e in enumerate(b.encoded):
                out[i][pos[id(e)]] = h[r, 1 : e.n_tokens + 1].float().cpu().clone()
    return out  # type: ignore[return-value]


def _collect_warnings(fn: Any, *args: Any, stacklevel: int = 3, **kwargs: Any) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fn(*args, **kwargs)
    for w in caught:  # re-emit, so callers see them as well as the record's `warnings`
        warnings.warn(str(w.message), w.category, stacklevel=stacklevel)
    return res, [str(w.message) for w in caught]


@dataclass(frozen=True)
class _ReprInputs:
    """Validated inputs of :func:`representation_damage`."""

    model: torch.nn.Module
    tokenizer: Any
    model_ref: Any
    flat: list[ParallelItem]
    conditions: list[EvalCondition]
    reference: EvalCondition
    layers: list[int]
    blocks: dict[int, torch.nn.Module]
    by_lang: dict[str, list[int]]  # language -> indices into ``flat``
    word_units: dict[str, str | None]  # language -> 'words' / 'characters' / None (no word record)
    measures: list[str]
    max_tokens: int
    batch_size: int
    kind: str
    level: float
    n_resamples: int
    gen: np.random.Generator
    seed: int | None


@dataclass(frozen=True)
class _Prepared:
    """What every condition reuses: encoded items, word pooling matrices, the CKA token subsample per language."""

    encoded: list[EncodedItem]
    pad_id: int
    pools: list[tuple[np.ndarray, int] | None]
    samples: dict[str, np.ndarray]
    items_sha: str


def representation_damage(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    conditions: Sequence[Any],
    *,
    reference: Any = None,
    layers: Sequence[int] | None = None,
    measures: Sequence[Measure] = MEASURES,
    max_tokens: int = 2048,
    unspaced: Unspaced = "error",
    batch_size: int = 8,
    kind: BootstrapKind = "percentile",
    confidence_level: float = 0.95,
    n_resamples: int = 999,
    rng: RngLike = 0,
) -> RepresentationResult:
    """Similarity of reference and compressed hidden states per layer x language x condition, with CIs.

    Parameters
    ----------
    loaded : LoadedModel
        Model, tokenizer and ``ModelRef``.
    items : sequence of ParallelItem or dict language -> items
        Sentences; every condition sees identical items.
    conditions : sequence
        Compressed conditions: :class:`~qdmodels.compress.conditions.EvalCondition`, a ``QuantScheme`` or its key
        (``'int4-g128-sym'``), or ``(QuantScheme, ProtectionPlan)``. Each is applied through its context
        manager and undone before the next.
    reference : condition, optional
        The reference state; default full precision (:func:`~qdmodels.compress.conditions.fp_condition`).
    layers : sequence of int, optional
        Block indices (negative counts from the end); default every block.
    measures : sequence of {'cka', 'cosine_token', 'cosine_word'}, default all three
    max_tokens : int, default 2048
        At most this many text tokens per language enter CKA (sampled without replacement with ``rng``;
        all tokens when fewer). The Gram matrices cost ``O(max_tokens^2)`` memory.
    unspaced : {'error', 'characters', 'skip'}, default 'error'
        Word-level cosine for a language whose script (the ``_Xxxx`` part of its code) is in
        :data:`UNSPACED_SCRIPTS`: refuse (before any forward pass), use characters as units, or skip that
        language's word record.
    batch_size : int, default 8
    kind : {'percentile', 'basic', 'bca'}, default 'percentile'
        Bootstrap interval type.
    confidence_level : float, default 0.95
    n_resamples : int, default 999
        Bootstrap resamples (sentences are the clusters).
    rng : int, numpy.random.Generator or None, default 0
        Seeds the token subsample of CKA and every bootstrap.

    Returns
    -------
    RepresentationResult
        ``records``: quantities ``repr.linear_cka``, ``repr.cosine_token``, ``repr.cosine_word``;
        ``site='layers.{i}'``, ``condition`` of the compressed condition, ``n`` = tokens (CKA, token cosine)
        or units (word cosine), ``seed``; ``attributes``: ``layer``, ``point='block_output'``,
        ``reference`` (the reference condition's scheme), ``ci_low``, ``ci_high``, ``ci_level``, ``ci_method``,
        ``n_clusters`` (sentences), ``cluster_by='item'``, ``n_tokens_total``, ``max_tokens``, ``units``,
        ``n_units_dropped``, ``items_sha256``.

    Raises
    ------
    ValueError
        Bad options, a layer out of range, an unspaced script with ``unspaced='error'``, duplicate conditions,
        fewer than 2 sentences in a language, and the errors of :func:`qdmodels.eval.scoring.evaluate`.
    TypeError
        Bad ``items`` / ``conditions`` types.

    Warns
    -----
    DegenerateDataWarning
        Undefined CKA or cosine (a zero or constant state); copied into the record's ``warnings``.

    Notes
    -----
    Hidden state = output of decoder block ``i`` (before the final norm for the last block) at every text
    token; the context token (BOS/EOS prepended by :func:`qdmodels.eval.encoding.encode_item`) and padding are
    excluded, since the context state is identical across sentences and would inflate similarities.
    Cosine CIs: :func:`qdstats.resampling.cluster_bootstrap_ci` of the token (word) cosines with the sentence
    as cluster; the point estimate is the mean over all tokens (words) of the language. CKA CI:
    :func:`cka_bootstrap`. Word units: a token belongs to every unit its byte span overlaps; a unit's vector
    is the mean of its tokens' states (units no token overlaps are dropped and counted). CKA is a descriptive
    similarity, not a test: a CKA of 0.99 can still hide damage in a few directions, read it with the cosines
    and with the Δ bits per byte of the same condition.
    Validated against: :func:`linear_cka` (closed form) for the CKA estimate; identical states give exactly 1
    for every measure (tests); hook removal checked with :func:`qdmodels.models.hooks.count_hooks`.

    References
    ----------
    Kornblith et al. (2019), arXiv:1905.00414.

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> from qdmodels.eval.scoring import text_items
    >>> lm = tiny_model("gpt2")
    >>> items = text_items({"eng_Latn": ["One two.", "Three four five.", "Six."]})
    >>> res = representation_damage(lm, items, ["int4-ch-sym"], layers=[0], measures=["cka"], n_resamples=99)
    >>> 0.0 < res.records[0].value <= 1.0
    True
    """
    iv = _representation_iv(loaded, items, conditions, reference=reference, layers=layers, measures=measures,
                            max_tokens=max_tokens, unspaced=unspaced, batch_size=batch_size, kind=kind,
                            confidence_level=confidence_level, n_resamples=n_resamples, rng=rng)
    prep = _prepare(iv)
    ref_states = _states_under(iv, prep, iv.reference)
    ref_label = str(iv.reference.condition.get("scheme", iv.reference.key))
    records: list[Measurement] = []
    for c in iv.conditions:
        states = _states_under(iv, prep, c)
        for i in iv.layers:
            for lang, idx in iv.by_lang.items():
                records.extend(_unit_records(iv, prep, c, i, lang, idx, ref_states[i], states[i], ref_label))
    return RepresentationResult(records=records)


def _representation_iv(
    loaded: Any, items: Any, conditions: Sequence[Any], *, reference: Any, layers: Sequence[int] | None,
    measures: Sequence[str], max_tokens: int, unspaced: str, batch_size: int, kind: str, confidence_level: float,
    n_resamples: int, rng: RngLike,
) -> _ReprInputs:
    """Input validation of :func:`representation_damage` (raises before any forward pass)."""
    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    conds = [as_condition(c) for c in conditions]
    if not conds:
        raise ValueError("`conditions` must name at least one compressed condition; got none.")
    ref_cond = fp_condition() if reference is None else as_condition(reference)
    keys = [c.key for c in conds]
    if len(set(keys)) != len(keys) or ref_cond.key in keys:
        raise ValueError(f"`conditions` must be distinct and differ from `reference`; got {keys} (reference {ref_cond.key}).")
    if isinstance(measures, str):
        measures = [measures]  # type: ignore[list-item]
    measures = [check_option(m, "measures", MEASURES) for m in measures]
    if not measures:
        raise ValueError("`measures` must name at least one of {'cka', 'cosine_token', 'cosine_word'}; got none.")
    check_option(unspaced, "unspaced", get_args(Unspaced))
    check_option(kind, "kind", BOOTSTRAP_KINDS)
    level = check_confidence_level(confidence_level)
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    max_tokens = check_int(max_tokens, "max_tokens", minimum=2)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    gen = as_generator(rng)
    seed = seed_detail(rng)
    smap = site_map(model)
    layer_idx = _layer_indices(layers, smap.n_layers)
    by_lang = _by_language(flat)
    word_units = _word_units(by_lang, measures, unspaced)
    return _ReprInputs(model=model, tokenizer=tokenizer, model_ref=model_ref, flat=list(flat), conditions=conds,
                       reference=ref_cond, layers=layer_idx, blocks={i: smap.layers[i] for i in layer_idx},
                       by_lang=by_lang, word_units=word_units, measures=measures, max_tokens=max_tokens,
                       batch_size=batch_size, kind=kind, level=level, n_resamples=n_resamples, gen=gen, seed=seed)


def _layer_indices(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    """Distinct block indices in ``[0, n_layers)`` (negative ones count from the end); default all."""
    if layers is None:
        return list(range(n_layers))
    layer_idx: list[int] = []
    for i in layers:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -n_layers <= i < n_layers:
            raise ValueError(f"`layers` must hold block indices in [-{n_layers}, {n_layers}); got {i!r}.")
        if int(i) % n_layers not in layer_idx:
            layer_idx.append(int(i) % n_layers)
    return layer_idx


def _by_language(flat: Sequence[ParallelItem]) -> dict[str, list[int]]:
    """Item indices per language (at least 2 sentences each, for the bootstrap over sentences)."""
    by_lang: dict[str, list[int]] = {}
    for k, it in enumerate(flat):
        by_lang.setdefault(it.language, []).append(k)
    for lang, idx in by_lang.items():
        if len(idx) < 2:
            raise ValueError(f"`items` must hold at least 2 sentences per language for a bootstrap over sentences; "
                             f"{lang} has {len(idx)}.")
    return by_lang


def _word_units(by_lang: Mapping[str, Any], measures: Sequence[str], unspaced: str) -> dict[str, str | None]:
    """Units of the word-level cosine per language: 'words', 'characters' (unspaced scripts) or None (skipped)."""
    word_units: dict[str, str | None] = {}
    for lang in by_lang:
        if _script(lang) in UNSPACED_SCRIPTS:
            if "cosine_word" in measures and unspaced == "error":
                raise ValueError(
                    f"`unspaced`='error' and language {lang} is written without spaces between words, so whitespace "
                    "words are not comparable units; pass unspaced='characters' (characters as units) or 'skip'."
                )
            word_units[lang] = {"characters": "characters", "skip": None, "error": None}[unspaced]
        else:
            word_units[lang] = "words"
    return word_units


def _prepare(iv: _ReprInputs) -> _Prepared:
    """Encode the items, build the word pooling matrices and draw the CKA token subsample (same for all layers)."""
    ctx_id, _ = context_token(iv.tokenizer)
    encoded = encode_items(iv.model, iv.tokenizer, iv.flat)
    pad_id = iv.tokenizer.pad_token_id if iv.tokenizer.pad_token_id is not None else ctx_id
    pools: list[tuple[np.ndarray, int] | None] = [None] * len(iv.flat)
    if "cosine_word" in iv.measures:
        for k, e in enumerate(encoded):
            units = iv.word_units[e.item.language]
            if units is None:
                continue
            spans, _ = encoded_byte_spans(iv.tokenizer, e.item.text, e.input_ids[1:], e.offsets)
            pools[k] = _pooling(spans, unit_spans(e.item.text, units=units))  # type: ignore[arg-type]
    # token subsample for CKA: same positions for every layer and condition (paired)
    samples: dict[str, np.ndarray] = {}
    for lang, idx in iv.by_lang.items():
        total = sum(encoded[k].n_tokens for k in idx)
        take = min(total, iv.max_tokens)
        samples[lang] = np.sort(iv.gen.choice(total, size=take, replace=False)) if take < total else np.arange(total)
    return _Prepared(encoded=list(encoded), pad_id=pad_id, pools=pools, samples=samples, items_sha=content_hash(iv.flat))


def _states_under(iv: _ReprInputs, prep: _Prepared, c: EvalCondition) -> dict[int, list[torch.Tensor]]:
    """Block outputs of the selected layers with condition ``c`` applied (and undone on exit)."""
    cm = c.apply(iv.model) if c.apply is not None else contextlib.nullcontext()
    with cm:
        return _collect_states(iv.model, iv.blocks, prep.encoded, batch_size=iv.batch_size, pad_id=prep.pad_id)


def _unit_records(iv: _ReprInputs, prep: _Prepared, c: EvalCondition, i: int, lang: str, idx: Sequence[int],
                  ref_states: Sequence[torch.Tensor], states: Sequence[torch.Tensor],
                  ref_label: str) -> list[Measurement]:
    """The records of one condition x layer x language, in the order cka, cosine_token, cosine_word."""
    xs = [ref_states[k] for k in idx]
    ys = [states[k] for k in idx]
    sent = np.concatenate([np.full(x.shape[0], j) for j, x in enumerate(xs)])
    common = dict(model=iv.model_ref, site=f"layers.{i}", language=lang, corpus=iv.flat[idx[0]].corpus,
                  condition=dict(c.condition), seed=iv.seed, routine=ROUTINE)
    base_attrs: dict[str, Any] = {
        "layer": i, "point": "block_output", "reference": ref_label, "cluster_by": "item",
        "n_tokens_total": int(sent.size), "items_sha256": prep.items_sha,
    }
    boot = dict(kind=iv.kind, level=iv.level, n_resamples=iv.n_resamples, gen=iv.gen)
    x_all = torch.cat(xs).double().numpy()
    y_all = torch.cat(ys).double().numpy()
    records = []
    if "cka" in iv.measures:
        records.append(_cka_record(x_all, y_all, sent, prep.samples[lang], base_attrs, common,
                                   max_tokens=iv.max_tokens, **boot))
    if "cosine_token" in iv.measures:
        records.append(_cosine_record("cosine_token", _cosines(x_all, y_all), sent, base_attrs, common, **boot,
                                      units="tokens", dropped=0))
    if "cosine_word" in iv.measures and iv.word_units[lang] is not None:
        xw, yw, sw, dropped = _word_vectors(xs, ys, [prep.pools[k] for k in idx])  # type: ignore[misc]
        records.append(_cosine_record("cosine_word", _cosines(xw, yw), sw, base_attrs, common, **boot,
                                      units=str(iv.word_units[lang]), dropped=dropped))
    return records


def _word_vectors(
    xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], pools: Sequence[tuple[np.ndarray, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Unit vectors (mean of their tokens' states) of both sides, the sentence of each unit, and units dropped."""
    xw, yw, sw, dropped = [], [], [], 0
    for j, (pm, d) in enumerate(pools):
        dropped += d
        xw.append(pm @ xs[j].double().numpy())
        yw.append(pm @ ys[j].double().numpy())
        sw.append(np.full(pm.shape[0], j))
    return np.concatenate(xw), np.concatenate(yw), np.concatenate(sw), dropped


def _cka_record(
    x_all: np.ndarray, y_all: np.ndarray, sent: np.ndarray, sel: np.ndarray, base_attrs: dict[str, Any],
    common: dict[str, Any], *, max_tokens: int, kind: str, level: float, n_resamples: int, gen: np.random.Generator,
) -> Measurement:
    """``repr.linear_cka`` on the token subsample ``sel`` with its sentence-bootstrap CI (:func:`cka_bootstrap`)."""
    res, caught = _collect_warnings(cka_bootstrap, x_all[sel], y_all[sel], sent[sel], kind=kind,
                                    confidence_level=level, n_resamples=n_resamples, rng=gen, stacklevel=5)
    msgs = list(dict.fromkeys([*res.warnings, *caught]))
    attrs = {**base_attrs, **ci_attributes(res.ci, n_clusters=res.n_clusters, level=level),
             "max_tokens": max_tokens, "subsampled": bool(sel.size < sent.size),
             "standard_error": None if math.isnan(res.standard_error) else res.standard_error}
    return Measurement(quantity=_QUANTITY["cka"], value=res.estimate, n=int(sel.size), attributes=attrs,
                       warnings=tuple(msgs), **common)


def _cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    nx = np.linalg.norm(x, axis=1)
    ny = np.linalg.norm(y, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(x * y, axis=1) / (nx * ny)


def _cosine_record(
    measure: str, cos: np.ndarray, clusters: np.ndarray, base_attrs: dict[str, Any], common: dict[str, Any], *,
    kind: str, level: float, n_resamples: int, gen: np.random.Generator, units: str, dropped: int,
) -> Measurement:
    """``repr.cosine_token`` / ``repr.cosine_word``: mean of the finite cosines, sentence-bootstrap CI."""
    msgs: list[str] = []
    bad = ~np.isfinite(cos)
    if bad.any():
        msgs.append(f"{int(bad.sum())} of {cos.size} {units} have a zero-norm state; their cosine is undefined and "
                    "they were left out.")
        warnings.warn(msgs[-1], DegenerateDataWarning, stacklevel=4)
    vals = cos[~bad]
    cl = clusters[~bad]
    n_cl = len(np.unique(cl))
    ci = None
    if vals.size == 0:
        value = math.nan
        msgs.append(f"no {units} with a defined cosine; value is NaN.")
    else:
        value = float(vals.mean())
        if n_cl >= 2:
            res, caught = _collect_warnings(cluster_bootstrap_ci, vals, cl, statistic="mean", kind=kind,
                                            confidence_level=level, n_resamples=n_resamples, rng=gen,
                                            stacklevel=4)
            ci = res.ci
            msgs.extend(m for m in [*res.warnings, *caught] if m not in msgs)
        else:
            msgs.append(f"fewer than 2 sentences with {units}; no confidence interval.")
    attrs = {**base_attrs, **ci_attributes(ci, n_clusters=n_cl, level=level), "units": units, "n_units_dropped": dropped}
    return Measurement(quantity=_QUANTITY[measure], value=value, n=int(vals.size), attributes=attrs,
                       warnings=tuple(msgs), **common)
