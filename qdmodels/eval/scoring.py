"""Per-sentence language-model evaluation in bits per byte, batched and paired across conditions.

Every text token of every item is scored: the tokenizer's BOS token (or its EOS token when it has no BOS)
is prepended as the *context token*, so the first text token is predicted too, and no other special token
is ever added. Each item gives one record per quantity (``eval.nll_sum``, ``eval.bits_per_byte``,
``eval.bits_per_char``, ``eval.nll_per_token``, ``eval.n_tokens``, ``eval.n_bytes``, ``eval.n_chars``,
``eval.nll_first``: the NLL of the first text token, predicted from the context token alone).
:func:`score_first_token` computes ``eval.nll_first`` alone with a length-2 forward per item (a cheap
supplement for records made before the quantity existed).

Batching sorts items by token length, right-pads them with an attention mask and masks padding out of the
loss; the result equals the one-item-at-a-time result within ``1e-4`` nats (tested). Per-token
log-probabilities can be kept together with the UTF-8 byte span of each token (robust to byte-level BPE
splitting a character across tokens) for word-level attribution.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.eval.scoring import evaluate, text_items
>>> lm = tiny_model("llama")
>>> items = text_items({"eng_Latn": ["The fox."], "heb_Hebr": ["השועל."]})
>>> res = evaluate(lm, None, items, progress=False)
>>> sorted({r.quantity for r in res.records})[:2]
['eval.bits_per_byte', 'eval.bits_per_char']
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from qdmodels.compress.conditions import (
    DEFAULT_CONDITION,
    EvalCondition,
    as_condition,
    fp_condition,
    quant_condition,
)
from qdmodels.corpora.types import ParallelItem
from qdmodels.eval.batching import DEFAULT_MAX_BATCH_TOKENS, autocast, batch_logprobs, make_batches
from qdmodels.eval.encoding import (
    EncodedItem,
    encode_item,
    encode_items,
    encoded_byte_spans,
    text_items,
)
from qdmodels.runtime import LN2, context_token, flatten_items, model_device, resolve_model
from qdstats.records import Measurement, ModelRef
from qdstats.validation import check_int, check_option

__all__ = [
    "EvalCondition",
    "EvalResult",
    "ItemScore",
    "TokenLogprobs",
    "DEFAULT_CONDITION",
    "build_result",
    "encode_item",
    "evaluate",
    "evaluate_conditions",
    "fp_condition",
    "quant_condition",
    "score_encoded",
    "score_first_token",
    "text_items",
]

ROUTINE = "qdmodels.eval.scoring.evaluate"
ComputeDtype = Literal["float32", "bfloat16"]


# ----------------------------------------------------------------------------- data types
@dataclass(frozen=True)
class TokenLogprobs:
    """Per-token log-probabilities of one item, with the UTF-8 byte span of each token.

    ``byte_spans[i] = (start, end)`` indexes ``item.text.encode('utf-8')``. Spans tile the text in order;
    a span may be empty (a token that only completes bytes counted by a neighbour is never empty under
    the ``'token-bytes'`` method; under ``'offsets'`` a character split across tokens goes to its first
    token). ``method`` says which rule produced the spans.
    """

    item_id: str
    language: str
    condition: dict[str, Any]
    token_ids: tuple[int, ...]
    byte_spans: tuple[tuple[int, int], ...]
    logprobs: tuple[float, ...]
    method: Literal["token-bytes", "offsets"]

    def to_frame(self) -> pd.DataFrame:
        """One row per token: ``position, token_id, byte_start, byte_end, logprob``."""
        return pd.DataFrame(
            {
                "position": np.arange(len(self.token_ids)),
                "token_id": list(self.token_ids),
                "byte_start": [s for s, _ in self.byte_spans],
                "byte_end": [e for _, e in self.byte_spans],
                "logprob": list(self.logprobs),
            }
        )


@dataclass(frozen=True)
class ItemScore:
    """Raw per-item numbers behind the records (full precision)."""

    item_id: str
    language: str
    nll_sum: float
    n_tokens: int
    n_bytes: int
    n_chars: int
    nll_first: float = float("nan")

    @property
    def bits_per_byte(self) -> float:
        return self.nll_sum / LN2 / self.n_bytes

    @property
    def bits_per_char(self) -> float:
        return self.nll_sum / LN2 / self.n_chars


@dataclass
class EvalResult:
    """Result of :func:`evaluate`.

    Attributes
    ----------
    records : list of Measurement
        One record per item and quantity.
    scores : list of ItemScore
        The same numbers as plain floats, in input order.
    token_logprobs : list of TokenLogprobs or None
        Per-token log-probabilities (input order) when ``keep_token_logprobs=True``; otherwise None.
    """

    records: list[Measurement]
    scores: list[ItemScore]
    token_logprobs: list[TokenLogprobs] | None = None

    def frame(self) -> pd.DataFrame:
        """Tidy per-item frame: ``language, item_id, nll_sum, bits_per_byte, bits_per_char, n_tokens, n_bytes, n_chars, nll_first``."""
        return pd.DataFrame(
            [
                {
                    "language": s.language, "item_id": s.item_id, "nll_sum": s.nll_sum,
                    "bits_per_byte": s.bits_per_byte, "bits_per_char": s.bits_per_char,
                    "n_tokens": s.n_tokens, "n_bytes": s.n_bytes, "n_chars": s.n_chars, "nll_first": s.nll_first,
                }
                for s in self.scores
            ]
        )



def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, unit="item")



def _records_for(
    e: EncodedItem, lp: np.ndarray, *, model_ref: ModelRef, condition: dict[str, Any], ctx_rule: str,
    compute_dtype: str, routine: str,
) -> tuple[ItemScore, list[Measurement]]:
    text = e.item.text
    nll = float(-lp.sum())
    score = ItemScore(
        item_id=e.item.item_id, language=e.item.language, nll_sum=nll, n_tokens=e.n_tokens,
        n_bytes=len(text.encode("utf-8")), n_chars=len(text), nll_first=float(-lp[0]),
    )
    attrs: dict[str, Any] = {
        "document_id": e.item.document_id, "line": e.item.line, "split": e.item.split,
        "context_token": ctx_rule, "compute_dtype": compute_dtype,
    }
    common = dict(model=model_ref, language=e.item.language, corpus=e.item.corpus, item_id=e.item.item_id,
                  condition=condition, attributes=attrs, routine=routine)
    values = {
        "eval.nll_sum": nll,
        "eval.bits_per_byte": score.bits_per_byte,
        "eval.bits_per_char": score.bits_per_char,
        "eval.nll_per_token": nll / score.n_tokens,
        "eval.n_tokens": float(score.n_tokens),
        "eval.n_bytes": float(score.n_bytes),
        "eval.n_chars": float(score.n_chars),
        "eval.nll_first": score.nll_first,
    }
    return score, [Measurement(quantity=q, value=v, **common) for q, v in values.items()]


def _check_condition(condition: Mapping[str, Any] | None) -> dict[str, Any]:
    if condition is None:
        return dict(DEFAULT_CONDITION)
    if not isinstance(condition, Mapping):
        raise TypeError(f"`condition` must be a dict; got {type(condition).__name__}.")
    missing = [k for k in DEFAULT_CONDITION if k not in condition]
    if missing:
        raise ValueError(
            f"`condition` must contain the canonical keys {sorted(DEFAULT_CONDITION)}; missing {missing} in {dict(condition)}. "
            "Use 'none'/'fp32' for interventions that were not applied."
        )
    return dict(condition)


def score_encoded(
    model: torch.nn.Module, encoded: Sequence[EncodedItem], *, batch_size: int, pad_id: int,
    compute_dtype: str = "float32", progress: bool = False, desc: str = "eval", max_batch_tokens: int | None = None,
) -> list[np.ndarray]:
    """Token log-probabilities of every encoded item (input order), batched and padding-masked."""
    result: list[np.ndarray | None] = [None] * len(encoded)
    pos = {id(e): k for k, e in enumerate(encoded)}
    batches = make_batches(encoded, batch_size=batch_size, pad_id=pad_id, max_batch_tokens=max_batch_tokens)
    bar = _progress(len(encoded), desc, progress)
    try:
        with torch.inference_mode(), autocast(compute_dtype, model_device(model)):
            for b in batches:
                for e, lp in zip(b.encoded, batch_logprobs(model, b)):
                    result[pos[id(e)]] = lp
                bar.update(len(b.encoded))
    finally:
        bar.close()
    return result  # type: ignore[return-value]


def evaluate(
    loaded_or_model: Any,
    tokenizer: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    model_ref: ModelRef | None = None,
    condition: Mapping[str, Any] | None = None,
    batch_size: int = 16,
    max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
    keep_token_logprobs: bool = False,
    compute_dtype: ComputeDtype = "float32",
    long_policy: Literal["error"] = "error",
    progress: bool = True,
) -> EvalResult:
    """Score every item: summed NLL, bits per byte, bits per char and counts, one record per quantity.

    Parameters
    ----------
    loaded_or_model : LoadedModel or torch.nn.Module
        The model (a :class:`~qdmodels.models.loading.LoadedModel` carries its tokenizer and ``ModelRef``).
    tokenizer : transformers tokenizer or None
        Required for a bare module; ``None`` takes the LoadedModel's.
    items : sequence of ParallelItem or dict language -> sequence of ParallelItem
        Items to score; ``(language, item_id)`` pairs must be unique.
    model_ref : ModelRef, optional
        Required for a bare module; defaults to ``loaded.ref``.
    condition : dict, optional
        Condition written into every record. Must contain the canonical keys ``scheme``, ``protect``,
        ``prune`` (and may add e.g. ``sites``); default ``{'scheme': 'fp32', 'protect': 'none', 'prune': 'none'}``.
        The model is evaluated as it is: applying the condition is the caller's job (see
        :func:`evaluate_conditions`).
    batch_size : int, default 16
        Items per forward pass (>= 1). Memory grows with ``batch_size * max_len * hidden_size``.
    max_batch_tokens : int or None, default 1024
        Also cap each batch at this many padded positions (see :func:`make_batches`); less padding when lengths
        vary (:data:`~qdmodels.eval.batching.DEFAULT_MAX_BATCH_TOKENS`, the fastest exact path on a representative
        workload: benchmarks/bench_eval.py). ``None``: fixed-size batches. Results agree with any other batching
        within float round-off (bits per byte within 1e-6, tests/qdmodels/eval/test_batching_defaults.py).
    keep_token_logprobs : bool, default False
        Also return per-token log-probs with byte spans (:class:`TokenLogprobs`).
    compute_dtype : {'float32', 'bfloat16'}, default 'float32'
        ``'bfloat16'`` runs the forward under CPU autocast; log-softmax is always fp32. Recorded in
        ``attributes['compute_dtype']``.
    long_policy : {'error'}, default 'error'
        Items longer than the model's context raise; nothing is truncated (no sliding window is implemented).
    progress : bool, default True
        Show a progress bar on stderr.

    Returns
    -------
    EvalResult
        ``records`` (8 per item: ``eval.nll_sum``, ``eval.bits_per_byte``, ``eval.bits_per_char``,
        ``eval.nll_per_token``, ``eval.n_tokens``, ``eval.n_bytes``, ``eval.n_chars``, ``eval.nll_first``; attributes
        ``document_id``, ``line``, ``split``, ``context_token``, ``compute_dtype``), ``scores`` and
        ``token_logprobs``.

    Raises
    ------
    TypeError
        Bad ``items`` / model types.
    ValueError
        Empty or duplicated items, missing canonical condition keys, ``batch_size`` < 1, an item longer than
        the context, an empty item, a tokenizer without BOS and EOS.

    Notes
    -----
    ``nll_sum = -sum_t log p(x_t | <ctx>, x_<t)`` over all text tokens, natural log; the context token is
    BOS (or EOS when there is no BOS), recorded in ``attributes['context_token']``. ``bits_per_byte =
    nll_sum / ln 2 / n_bytes`` with ``n_bytes`` the UTF-8 length of the (NFC) text, ``bits_per_char`` uses
    the number of code points. Batches are length-sorted and right-padded; since attention is causal,
    padding at the end cannot affect real positions, and padded positions are never read.

    Validated against: an unbatched loop (batch_size=1) within ``atol=1e-4`` nats, and a direct
    ``model(ids).logits`` log-softmax computation within ``1e-5`` (tests/qdmodels/eval/test_scoring.py).

    References
    ----------
    Gao et al. (2020), "The Pile", §5 (bits per byte). arXiv:2101.00027.

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> lm = tiny_model("gpt2")
    >>> res = evaluate(lm, None, text_items({"eng_Latn": ["Hello world."]}), progress=False)
    >>> [r.value for r in res.records if r.quantity == "eval.n_bytes"]
    [12.0]
    """
    model, tokenizer, model_ref = resolve_model(loaded_or_model, tokenizer, model_ref)
    flat = flatten_items(items)
    cond = _check_condition(condition)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_option(compute_dtype, "compute_dtype", ("float32", "bfloat16"))
    if not isinstance(keep_token_logprobs, bool):
        raise TypeError(f"`keep_token_logprobs` must be a bool; got {keep_token_logprobs!r}.")
    ctx_id, ctx_rule = context_token(tokenizer)
    encoded = encode_items(model, tokenizer, flat, long_policy=long_policy)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    lps = score_encoded(model, encoded, batch_size=batch_size, pad_id=pad_id, compute_dtype=compute_dtype,
                        progress=progress, desc=f"eval {cond.get('scheme', '')}", max_batch_tokens=max_batch_tokens)
    return build_result(encoded, lps, tokenizer=tokenizer, model_ref=model_ref, condition=cond, ctx_rule=ctx_rule,
                        compute_dtype=compute_dtype, keep_token_logprobs=keep_token_logprobs)


def build_result(
    encoded: Sequence[EncodedItem], lps: Sequence[np.ndarray], *, tokenizer: Any, model_ref: ModelRef,
    condition: dict[str, Any], ctx_rule: str, compute_dtype: str = "float32", keep_token_logprobs: bool = False,
    routine: str = ROUTINE,
) -> EvalResult:
    """Turn per-item token log-probs into an :class:`EvalResult` (shared by evaluation and sweeps)."""
    records: list[Measurement] = []
    scores: list[ItemScore] = []
    toks: list[TokenLogprobs] | None = [] if keep_token_logprobs else None
    for e, lp in zip(encoded, lps):
        score, recs = _records_for(e, lp, model_ref=model_ref, condition=condition, ctx_rule=ctx_rule,
                                   compute_dtype=compute_dtype, routine=routine)
        scores.append(score)
        records.extend(recs)
        if toks is not None:
            spans, method = encoded_byte_spans(tokenizer, e.item.text, e.input_ids[1:], e.offsets)
            toks.append(TokenLogprobs(item_id=e.item.item_id, language=e.item.language, condition=dict(condition),
                                      token_ids=tuple(e.input_ids[1:]), byte_spans=spans,
                                      logprobs=tuple(float(x) for x in lp), method=method))
    return EvalResult(records=records, scores=scores, token_logprobs=toks)



def evaluate_conditions(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    conditions: Sequence[Any],
    *,
    batch_size: int = 16,
    max_batch_tokens: int | None = DEFAULT_MAX_BATCH_TOKENS,
    keep_token_logprobs: bool = False,
    compute_dtype: ComputeDtype = "float32",
    progress: bool = True,
) -> dict[str, EvalResult]:
    """Evaluate identical items under several conditions (paired design).

    Parameters
    ----------
    loaded : LoadedModel
        Model, tokenizer and ref.
    items : sequence of ParallelItem or dict
        The same items are scored under every condition (tokenized once).
    conditions : sequence
        Each an :class:`EvalCondition`, ``'fp32'``, a ``QuantScheme`` or its key (``'int4-g128-sym'``), or a
        ``(QuantScheme, ProtectionPlan)`` pair. Include ``'fp32'`` for the reference.
    batch_size, max_batch_tokens, keep_token_logprobs, compute_dtype, progress
        As in :func:`evaluate`.

    Returns
    -------
    dict
        Condition key (``json.dumps(condition, sort_keys=True)``) -> :class:`EvalResult`, in the order given.

    Raises
    ------
    ValueError
        Duplicate conditions or the errors of :func:`evaluate`.

    Notes
    -----
    Each condition is applied through its context manager and undone before the next (the quantizer
    restores the full-precision weights), so conditions cannot leak into each other.
    Validated against: separate :func:`evaluate` calls (exact equality, tests).
    """
    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    conds = [as_condition(c) for c in conditions]
    keys = [c.key for c in conds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"`conditions` contains duplicates: {keys}.")
    for c in conds:  # a plan that cannot apply fails here, before the first condition is scored
        if c.check is not None:
            c.check(model)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_option(compute_dtype, "compute_dtype", ("float32", "bfloat16"))
    ctx_id, ctx_rule = context_token(tokenizer)
    encoded = encode_items(model, tokenizer, flat)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    out: dict[str, EvalResult] = {}
    for c in conds:
        cm = c.apply(model) if c.apply is not None else contextlib.nullcontext()
        with cm:
            lps = score_encoded(model, encoded, batch_size=batch_size, pad_id=pad_id, compute_dtype=compute_dtype,
                                progress=progress, desc=f"eval {c.condition.get('scheme', '')}",
                                max_batch_tokens=max_batch_tokens)
        out[c.key] = build_result(encoded, lps, tokenizer=tokenizer, model_ref=model_ref, condition=c.condition,
                                  ctx_rule=ctx_rule, compute_dtype=compute_dtype,
                                  keep_token_logprobs=keep_token_logprobs)
    return out


FIRST_TOKEN_ROUTINE = "qdmodels.eval.scoring.score_first_token"


def score_first_token(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    *,
    condition: Mapping[str, Any] | None = None,
    apply: Any = None,
    batch_size: int = 64,
    compute_dtype: ComputeDtype = "float32",
    progress: bool = False,
) -> list[Measurement]:
    """``eval.nll_first`` and ``eval.n_chars`` of every item from a length-2 forward (context + first token).

    The NLL of the first text token depends only on the context token and that token, so a forward over
    ``[context, first]`` gives exactly the number the full pass of :func:`evaluate` records as
    ``eval.nll_first``. Used to supplement records made before ``eval.nll_first`` existed.

    Parameters
    ----------
    loaded : LoadedModel
        Model, tokenizer and ref.
    items : sequence of ParallelItem or dict language -> sequence of ParallelItem
        The items (the same ones, in the same normalization, as the records being supplemented).
    condition : dict, optional
        Condition written into the records (canonical keys as in :func:`evaluate`); default fp32.
    apply : callable, optional
        ``apply(model)`` -> context manager that puts the model under ``condition`` (e.g.
        ``lambda m: quantized(m, scheme)``); None evaluates the model as it is.
    batch_size : int, default 64
        Items per forward.
    compute_dtype : {'float32', 'bfloat16'}, default 'float32'
        As in :func:`evaluate`.
    progress : bool, default False
        Show a progress bar on stderr.

    Returns
    -------
    list of Measurement
        Two records per item (``eval.nll_first``, ``eval.n_chars``) with the model, language, corpus, item,
        condition and attributes of :func:`evaluate`; ``provenance.routine`` is this function.

    Raises
    ------
    ValueError
        As :func:`evaluate` (bad condition, empty items, ``batch_size`` < 1).

    Notes
    -----
    Validated against: the ``eval.nll_first`` of a full :func:`evaluate` pass on tiny GPT-2 and Llama models,
    atol 1e-5 nats (tests/qdmodels/eval/test_first_token.py).

    Examples
    --------
    >>> from qdmodels.models.tiny import tiny_model
    >>> lm = tiny_model("gpt2")
    >>> recs = score_first_token(lm, text_items({"eng_Latn": ["Hello world."]}))
    >>> sorted(r.quantity for r in recs)
    ['eval.n_chars', 'eval.nll_first']
    """
    import dataclasses

    model, tokenizer, model_ref = resolve_model(loaded, None, None)
    flat = flatten_items(items)
    cond = _check_condition(condition)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    check_option(compute_dtype, "compute_dtype", ("float32", "bfloat16"))
    ctx_id, ctx_rule = context_token(tokenizer)
    encoded = encode_items(model, tokenizer, flat)
    short = [dataclasses.replace(e, input_ids=e.input_ids[:2], offsets=None) for e in encoded]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ctx_id
    cm = apply(model) if apply is not None else contextlib.nullcontext()
    with cm:
        lps = score_encoded(model, short, batch_size=batch_size, pad_id=pad_id, compute_dtype=compute_dtype,
                            progress=progress, desc="first token")
    out: list[Measurement] = []
    for e, lp in zip(encoded, lps):
        attrs: dict[str, Any] = {
            "document_id": e.item.document_id, "line": e.item.line, "split": e.item.split,
            "context_token": ctx_rule, "compute_dtype": compute_dtype,
        }
        common = dict(model=model_ref, language=e.item.language, corpus=e.item.corpus, item_id=e.item.item_id,
                      condition=cond, attributes=attrs, routine=FIRST_TOKEN_ROUTINE)
        out.append(Measurement(quantity="eval.nll_first", value=float(-lp[0]), **common))
        out.append(Measurement(quantity="eval.n_chars", value=float(len(e.item.text)), **common))
    return out
