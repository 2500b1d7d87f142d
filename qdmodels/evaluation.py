"""Per-sentence language-model evaluation in bits per byte, batched and paired across conditions.

Every text token of every item is scored: the tokenizer's BOS token (or its EOS token when it has no BOS)
is prepended as the *context token*, so the first text token is predicted too, and no other special token
is ever added. Each item gives one record per quantity (``eval.nll_sum``, ``eval.bits_per_byte``,
``eval.bits_per_char``, ``eval.nll_per_token``, ``eval.n_tokens``, ``eval.n_bytes``, ``eval.n_chars``).

Batching sorts items by token length, right-pads them with an attention mask and masks padding out of the
loss; the result equals the one-item-at-a-time result within ``1e-4`` nats (tested). Per-token
log-probabilities can be kept together with the UTF-8 byte span of each token (robust to byte-level BPE
splitting a character across tokens) for word-level attribution.

Examples
--------
>>> from qdmodels.testing import tiny_model
>>> from qdmodels.evaluation import evaluate, text_items
>>> lm = tiny_model("llama")
>>> items = text_items({"eng_Latn": ["The fox."], "heb_Hebr": ["השועל."]})
>>> res = evaluate(lm, None, items, progress=False)
>>> sorted({r.quantity for r in res.records})[:2]
['eval.bits_per_byte', 'eval.bits_per_char']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from qdstats._validation import check_int, check_option
from qdstats.records import CorpusRef, Measurement, ModelRef, Record

from qdmodels.corpora.types import ParallelItem

__all__ = [
    "EvalCondition",
    "EvalResult",
    "ItemScore",
    "TokenLogprobs",
    "DEFAULT_CONDITION",
    "encode_item",
    "evaluate",
    "evaluate_conditions",
    "fp_condition",
    "paired_frame",
    "quant_condition",
    "text_items",
    "token_byte_spans",
]

LN2 = math.log(2.0)
ROUTINE = "qdmodels.evaluation.evaluate"
#: Canonical condition keys and the value that means "not applied".
DEFAULT_CONDITION: dict[str, str] = {"scheme": "fp32", "protect": "none", "prune": "none"}
ComputeDtype = Literal["float32", "bfloat16"]
LongPolicy = Literal["error", "window"]


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
        """Tidy per-item frame: ``language, item_id, nll_sum, bits_per_byte, bits_per_char, n_tokens, n_bytes, n_chars``."""
        return pd.DataFrame(
            [
                {
                    "language": s.language, "item_id": s.item_id, "nll_sum": s.nll_sum,
                    "bits_per_byte": s.bits_per_byte, "bits_per_char": s.bits_per_char,
                    "n_tokens": s.n_tokens, "n_bytes": s.n_bytes, "n_chars": s.n_chars,
                }
                for s in self.scores
            ]
        )


@dataclass(frozen=True)
class EvalCondition:
    """One experimental condition: the ``condition`` dict for records and how to apply it to a model.

    ``apply(model)`` must return a context manager that changes the model on entry and restores it on exit
    (``None``: the model is evaluated as it is, e.g. full precision).
    """

    condition: dict[str, Any]
    apply: Callable[[torch.nn.Module], contextlib.AbstractContextManager[Any]] | None = None

    @property
    def key(self) -> str:
        return json.dumps(self.condition, sort_keys=True)


def fp_condition() -> EvalCondition:
    """The full-precision reference condition (``scheme='fp32'``, nothing protected or pruned)."""
    return EvalCondition(dict(DEFAULT_CONDITION))


def quant_condition(scheme: Any, *, plan: Any = None) -> EvalCondition:
    """A fake-quantization condition from a ``QuantScheme`` (or its key) and an optional ``ProtectionPlan``.

    Uses :func:`qdmodels.quantization.quantized`, which restores the full-precision weights on exit.
    """
    from qdmodels.quantization import QuantScheme, quantized

    if isinstance(scheme, str):
        scheme = QuantScheme.parse(scheme)
    cond = dict(DEFAULT_CONDITION)
    cond["scheme"] = scheme.key
    cond["protect"] = plan.key if plan is not None else "none"

    def _apply(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return quantized(model, scheme, plan=plan)

    return EvalCondition(cond, _apply)


def text_items(
    texts: Mapping[str, Sequence[str]], *, corpus: CorpusRef | None = None, prefix: str = "text"
) -> list[ParallelItem]:
    """Wrap plain strings as :class:`ParallelItem` (item ``k`` of every language shares ``item_id``).

    Texts are NFC-normalized. Each item is its own document. For examples and tests; corpus loaders
    (:mod:`qdmodels.corpora`) give real items.
    """
    out: list[ParallelItem] = []
    for lang, seq in texts.items():
        for k, text in enumerate(seq):
            out.append(
                ParallelItem(
                    item_id=f"{prefix}:{k}", line=k, document_id=f"{prefix}:{k}", language=lang,
                    source_code=lang, text=unicodedata.normalize("NFC", text), split=None, corpus=corpus,
                )
            )
    return out


# ----------------------------------------------------------------------------- tokenization
@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's ``bytes_to_unicode`` (byte-level BPE alphabet -> byte value)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _decoder_types(tokenizer: Any) -> set[str]:
    try:
        spec = json.loads(tokenizer.backend_tokenizer.to_str()).get("decoder") or {}
    except Exception:  # slow tokenizer or no backend
        return set()
    types: set[str] = set()

    def walk(d: Any) -> None:
        if isinstance(d, dict):
            if "type" in d:
                types.add(str(d["type"]))
            for v in d.values():
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(spec)
    return types


def _raw_token_bytes(tokenizer: Any, ids: Sequence[int]) -> list[bytes] | None:
    """Raw bytes of each token for byte-level BPE or SentencePiece byte-fallback vocabularies (else None)."""
    tokens = tokenizer.convert_ids_to_tokens(list(ids))
    types = _decoder_types(tokenizer)
    if "ByteLevel" in types:
        dec = _byte_decoder()
        try:
            return [bytes(dec[ch] for ch in tok) for tok in tokens]
        except KeyError:
            return None
    out: list[bytes] = []
    for tok in tokens:
        if len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            try:
                out.append(bytes([int(tok[3:5], 16)]))
                continue
            except ValueError:
                pass
        out.append(tok.replace("\u2581", " ").encode("utf-8"))
    return out


def token_byte_spans(
    tokenizer: Any, text: str, ids: Sequence[int], offsets: Sequence[tuple[int, int]] | None = None
) -> tuple[tuple[tuple[int, int], ...], Literal["token-bytes", "offsets"]]:
    """UTF-8 byte span of every token of ``text``.

    Parameters
    ----------
    tokenizer
        A ``transformers`` tokenizer.
    text : str
        The text that was tokenized (without special tokens).
    ids : sequence of int
        Its token ids.
    offsets : sequence of (int, int), optional
        Character offsets from the tokenizer (``return_offsets_mapping``), used when raw token bytes
        cannot be reconstructed.

    Returns
    -------
    (spans, method)
        ``method='token-bytes'``: spans are cumulative sums of each token's raw bytes (byte-level BPE via the
        inverse ``bytes_to_unicode`` map, or SentencePiece ``▁``/``<0xNN>`` pieces), verified to concatenate
        exactly to the text (a SentencePiece dummy-prefix space is allowed and removed). This is exact even
        when a multi-byte character is split across tokens. ``method='offsets'``: character offsets converted
        to bytes; a character covered by several tokens is given to the first, later ones get empty spans.

    Raises
    ------
    ValueError
        When neither method applies (no reconstructable bytes and no offsets).
    """
    data = text.encode("utf-8")
    raw = _raw_token_bytes(tokenizer, ids)
    if raw is not None:
        joined = b"".join(raw)
        shift = 0
        if joined == data or (joined == b" " + data and len(raw) > 0):
            shift = len(joined) - len(data)
            spans, pos = [], 0
            for r in raw:
                s, e = pos, pos + len(r)
                spans.append((max(s - shift, 0), max(e - shift, 0)))
                pos = e
            return tuple(spans), "token-bytes"
    if offsets is None:
        raise ValueError(
            "`tokenizer` gives neither reconstructable token bytes nor offsets for this text; "
            "byte spans are needed for per-token log-probs."
        )
    char_to_byte = np.concatenate([[0], np.cumsum([len(c.encode("utf-8")) for c in text])]).astype(int)
    spans = []
    covered = 0
    for s, e in offsets:
        bs, be = int(char_to_byte[s]), int(char_to_byte[e])
        bs = max(bs, covered)
        be = max(be, bs)
        spans.append((bs, be))
        covered = be
    return tuple(spans), "offsets"


@dataclass(frozen=True)
class EncodedItem:
    """An item's token ids with the context token prepended (``input_ids[0]`` is the context token)."""

    index: int
    item: ParallelItem
    input_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...] | None

    @property
    def n_tokens(self) -> int:
        return len(self.input_ids) - 1


def context_token(tokenizer: Any) -> tuple[int, str]:
    """The token prepended to every item: BOS if the tokenizer has one, else EOS.

    Raises
    ------
    ValueError
        The tokenizer has neither a BOS nor an EOS token.
    """
    if getattr(tokenizer, "bos_token_id", None) is not None:
        return int(tokenizer.bos_token_id), "bos"
    if getattr(tokenizer, "eos_token_id", None) is not None:
        return int(tokenizer.eos_token_id), "eos"
    raise ValueError(
        "`tokenizer` has neither a BOS nor an EOS token; one is needed as context so that the first "
        "text token is scored."
    )


def encode_item(tokenizer: Any, item: ParallelItem, *, index: int = 0) -> EncodedItem:
    """Tokenize ``item.text`` without special tokens and prepend the context token (see :func:`context_token`)."""
    ctx, _ = context_token(tokenizer)
    try:
        enc = tokenizer(item.text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = tuple((int(a), int(b)) for a, b in enc["offset_mapping"])
    except (NotImplementedError, TypeError, ValueError):
        enc = tokenizer(item.text, add_special_tokens=False)
        offsets = None
    ids = [int(i) for i in enc["input_ids"]]
    if not ids:
        raise ValueError(f"item {item.item_id!r} ({item.language}) tokenizes to zero tokens; empty texts cannot be scored.")
    return EncodedItem(index=index, item=item, input_ids=(ctx, *ids), offsets=offsets)


def _max_positions(model: torch.nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


# ----------------------------------------------------------------------------- batching and scoring
@dataclass
class Batch:
    """A right-padded batch: ``input_ids``/``attention_mask`` of shape (B, L) and the encoded items."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    encoded: list[EncodedItem]


def _chunks(lengths: Sequence[int], batch_size: int, max_tokens: int | None) -> list[list[int]]:
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if max_tokens is None:
        return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    out: list[list[int]] = []
    for i in order:  # longest first: a batch's padded length is its first item's length
        if out and len(out[-1]) < batch_size and (len(out[-1]) + 1) * lengths[out[-1][0]] <= max_tokens:
            out[-1].append(i)
        else:
            out.append([i])
    return out


def make_batches(encoded: Sequence[EncodedItem], *, batch_size: int, pad_id: int,
                 max_batch_tokens: int | None = None) -> list[Batch]:
    """Length-sorted (longest first), right-padded batches of at most ``batch_size`` items.

    With ``max_batch_tokens``, a batch also holds at most that many padded positions (rows x padded length), so
    long items go into small batches and short ones into large batches (an item longer than the budget gets a
    batch of its own). This cuts padding when lengths vary, e.g. across scripts.
    """
    if max_batch_tokens is not None:
        max_batch_tokens = check_int(max_batch_tokens, "max_batch_tokens", minimum=1)
    batches = []
    for idx in _chunks([len(e.input_ids) for e in encoded], batch_size, max_batch_tokens):
        chunk = [encoded[i] for i in idx]
        L = max(len(e.input_ids) for e in chunk)
        ids = torch.full((len(chunk), L), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), L), dtype=torch.long)
        for r, e in enumerate(chunk):
            n = len(e.input_ids)
            ids[r, :n] = torch.tensor(e.input_ids, dtype=torch.long)
            mask[r, :n] = 1
        batches.append(Batch(ids, mask, chunk))
    return batches


def logprobs_from_logits(logits: torch.Tensor, batch: Batch) -> list[np.ndarray]:
    """Per-item log-probabilities (float64) of each text token from logits of shape (B, L, V).

    Position ``t`` predicts token ``t + 1``; padding positions are never read.
    """
    out = []
    targets = batch.input_ids[:, 1:].to(logits.device)
    for r, e in enumerate(batch.encoded):
        n = e.n_tokens
        lg = logits[r, :n].float()
        lp = -torch.nn.functional.cross_entropy(lg, targets[r, :n], reduction="none")
        out.append(lp.double().cpu().numpy())
    return out


def _autocast(dtype: str) -> contextlib.AbstractContextManager[Any]:
    if dtype == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (inputs are moved there)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def run_batch(model: torch.nn.Module, batch: Batch) -> Any:
    """Forward a padded batch (no KV cache) on the model's device and return the model output."""
    dev = model_device(model)
    return model(input_ids=batch.input_ids.to(dev), attention_mask=batch.attention_mask.to(dev), use_cache=False)


def forward_logits(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Run the model on a batch (no KV cache) and return its logits."""
    return run_batch(model, batch).logits


def scored_mask(batch: Batch) -> torch.Tensor:
    """Boolean (B, L) mask of the positions whose next-token prediction is scored: ``t < n_tokens`` per row."""
    L = batch.input_ids.shape[1]
    n = torch.tensor([e.n_tokens for e in batch.encoded])
    return torch.arange(L).unsqueeze(0) < n.unsqueeze(1)


@contextlib.contextmanager
def scored_positions_only(model: torch.nn.Module, batch: Batch) -> Iterator[bool]:
    """Within the block, the model's output head sees only the scored positions of ``batch``.

    A forward pre-hook on ``model.get_output_embeddings()`` replaces its ``(B, L, H)`` input by the packed
    ``(1, N, H)`` rows of :func:`scored_mask`, so no logits are computed for padding or for each row's last
    position. Anything the model applies to the logits afterwards (e.g. Gemma's final soft-capping) is
    elementwise and unaffected. Yields ``True`` when the hook is active (``False`` when the model has no output
    embeddings: logits then stay ``(B, L, V)``). The hook is always removed.
    """
    getter = getattr(model, "get_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, torch.nn.Module):
        yield False
        return
    mask = scored_mask(batch)

    def pre(mod: Any, args: tuple) -> tuple | None:
        h = args[0]
        if h.ndim == 3 and tuple(h.shape[:2]) == tuple(mask.shape):
            return (h[mask.to(h.device)].unsqueeze(0), *args[1:])
        return None

    handle = head.register_forward_pre_hook(pre)
    try:
        yield True
    finally:
        handle.remove()


_LOGPROB_CHUNK = 256


def packed_logprobs(logits: torch.Tensor, batch: Batch) -> list[np.ndarray]:
    """Per-item log-probabilities (float64) from packed logits ``(1, N, V)`` of :func:`scored_positions_only`."""
    mask = scored_mask(batch)
    nxt = torch.roll(batch.input_ids, shifts=-1, dims=1)[mask].to(logits.device)
    if logits.ndim != 3 or logits.shape[0] != 1 or logits.shape[1] != nxt.shape[0]:
        raise ValueError(f"`logits` must be packed (1, {nxt.shape[0]}, V) for this batch; got {tuple(logits.shape)}.")
    x = logits[0]
    lp = torch.empty(x.shape[0], dtype=torch.float64)
    for s in range(0, x.shape[0], _LOGPROB_CHUNK):  # row chunks: the log-softmax never holds a second N x V copy
        c = x[s:s + _LOGPROB_CHUNK].float()
        t = nxt[s:s + _LOGPROB_CHUNK].unsqueeze(1)
        lp[s:s + _LOGPROB_CHUNK] = (c.gather(1, t).squeeze(1) - torch.logsumexp(c, dim=-1)).double().cpu()
    return list(np.split(lp.numpy(), np.cumsum([e.n_tokens for e in batch.encoded])[:-1]))


def batch_logprobs(model: torch.nn.Module, batch: Batch) -> list[np.ndarray]:
    """Per-item token log-probabilities of ``batch`` under ``model`` (one forward, no KV cache).

    The output head is evaluated only at scored positions (:func:`scored_positions_only`), which removes the
    padding and last-position share of the head and of the log-softmax, the largest per-token costs of small
    models with big vocabularies. Equal to :func:`logprobs_from_logits` on full logits within float round-off
    (tests/qdmodels/test_evaluation.py).
    """
    with scored_positions_only(model, batch) as packed:
        logits = run_batch(model, batch).logits
    return packed_logprobs(logits, batch) if packed else logprobs_from_logits(logits, batch)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False, unit="item")


def _unpack(loaded_or_model: Any, tokenizer: Any, model_ref: ModelRef | None) -> tuple[torch.nn.Module, Any, ModelRef]:
    if isinstance(loaded_or_model, torch.nn.Module):
        model = loaded_or_model
    else:
        model = getattr(loaded_or_model, "model", loaded_or_model)
        if tokenizer is None:
            tokenizer = getattr(loaded_or_model, "tokenizer", None)
        if model_ref is None:
            model_ref = getattr(loaded_or_model, "ref", None)
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`loaded_or_model` must be a LoadedModel or a torch.nn.Module; got {type(loaded_or_model).__name__}.")
    if tokenizer is None:
        raise ValueError("`tokenizer` is required when `loaded_or_model` is a bare module (a LoadedModel carries one).")
    if not isinstance(model_ref, ModelRef):
        raise ValueError("`model_ref` is required (a ModelRef pinning the weights) when `loaded_or_model` has no `.ref`.")
    return model, tokenizer, model_ref


def _flatten_items(items: Any) -> list[ParallelItem]:
    if isinstance(items, Mapping):
        flat = [it for seq in items.values() for it in seq]
    elif isinstance(items, Sequence) and not isinstance(items, (str, bytes)):
        flat = list(items)
    else:
        raise TypeError(f"`items` must be a sequence of ParallelItem or a dict language -> items; got {type(items).__name__}.")
    for it in flat:
        if not isinstance(it, ParallelItem):
            raise TypeError(f"`items` must contain ParallelItem objects; got {type(it).__name__}.")
    if not flat:
        raise ValueError("`items` is empty; nothing to evaluate.")
    keys = [(it.language, it.item_id) for it in flat]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"`items` contains the (language, item_id) pair {dup} more than once; pairing needs unique items.")
    return flat


def encode_items(
    model: torch.nn.Module, tokenizer: Any, items: Sequence[ParallelItem], *, long_policy: str = "error"
) -> list[EncodedItem]:
    """Encode every item and check it fits the model's context (never truncating silently)."""
    check_option(long_policy, "long_policy", ("error",))
    limit = _max_positions(model)
    enc = [encode_item(tokenizer, it, index=k) for k, it in enumerate(items)]
    if limit is not None:
        too_long = [e for e in enc if len(e.input_ids) > limit]
        if too_long:
            e = too_long[0]
            raise ValueError(
                f"{len(too_long)} item(s) exceed the model's context of {limit} positions, e.g. {e.item.item_id!r} "
                f"({e.item.language}) with {len(e.input_ids)} tokens including the context token. Items are never "
                "truncated silently: split long texts into sentences before evaluation."
            )
    return enc


def _records_for(
    e: EncodedItem, lp: np.ndarray, *, model_ref: ModelRef, condition: dict[str, Any], ctx_rule: str,
    compute_dtype: str, routine: str,
) -> tuple[ItemScore, list[Measurement]]:
    text = e.item.text
    nll = float(-lp.sum())
    score = ItemScore(
        item_id=e.item.item_id, language=e.item.language, nll_sum=nll, n_tokens=e.n_tokens,
        n_bytes=len(text.encode("utf-8")), n_chars=len(text),
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
        with torch.inference_mode(), _autocast(compute_dtype):
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
    max_batch_tokens: int | None = None,
    keep_token_logprobs: bool = False,
    compute_dtype: ComputeDtype = "float32",
    long_policy: Literal["error"] = "error",
    progress: bool = True,
) -> EvalResult:
    """Score every item: summed NLL, bits per byte, bits per char and counts, one record per quantity.

    Parameters
    ----------
    loaded_or_model : LoadedModel or torch.nn.Module
        The model (a :class:`~qdmodels.loading.LoadedModel` carries its tokenizer and ``ModelRef``).
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
    max_batch_tokens : int, optional
        Also cap each batch at this many padded positions (see :func:`make_batches`); less padding when lengths
        vary. Results agree with any other batching within float round-off.
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
        ``records`` (7 per item: ``eval.nll_sum``, ``eval.bits_per_byte``, ``eval.bits_per_char``,
        ``eval.nll_per_token``, ``eval.n_tokens``, ``eval.n_bytes``, ``eval.n_chars``; attributes
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
    ``model(ids).logits`` log-softmax computation within ``1e-5`` (tests/qdmodels/test_evaluation.py).

    References
    ----------
    Gao et al. (2020), "The Pile", §5 (bits per byte). arXiv:2101.00027.

    Examples
    --------
    >>> from qdmodels.testing import tiny_model
    >>> lm = tiny_model("gpt2")
    >>> res = evaluate(lm, None, text_items({"eng_Latn": ["Hello world."]}), progress=False)
    >>> [r.value for r in res.records if r.quantity == "eval.n_bytes"]
    [12.0]
    """
    model, tokenizer, model_ref = _unpack(loaded_or_model, tokenizer, model_ref)
    flat = _flatten_items(items)
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
            spans, method = token_byte_spans(tokenizer, e.item.text, e.input_ids[1:], e.offsets)
            toks.append(TokenLogprobs(item_id=e.item.item_id, language=e.item.language, condition=dict(condition),
                                      token_ids=tuple(e.input_ids[1:]), byte_spans=spans,
                                      logprobs=tuple(float(x) for x in lp), method=method))
    return EvalResult(records=records, scores=scores, token_logprobs=toks)


def _as_condition(c: Any) -> EvalCondition:
    if isinstance(c, EvalCondition):
        return c
    if c is None or (isinstance(c, str) and c in ("fp", "fp32", "none")):
        return fp_condition()
    if isinstance(c, tuple) and len(c) == 2:
        return quant_condition(c[0], plan=c[1])
    if type(c).__name__ == "QuantScheme" or isinstance(c, str):
        return quant_condition(c)
    raise TypeError(
        f"`conditions` entries must be EvalCondition, 'fp32', a QuantScheme (or its key) or (QuantScheme, ProtectionPlan); "
        f"got {type(c).__name__}."
    )


def evaluate_conditions(
    loaded: Any,
    items: Sequence[ParallelItem] | Mapping[str, Sequence[ParallelItem]],
    conditions: Sequence[Any],
    *,
    batch_size: int = 16,
    max_batch_tokens: int | None = None,
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
    model, tokenizer, model_ref = _unpack(loaded, None, None)
    flat = _flatten_items(items)
    conds = [_as_condition(c) for c in conditions]
    keys = [c.key for c in conds]
    if len(set(keys)) != len(keys):
        raise ValueError(f"`conditions` contains duplicates: {keys}.")
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


# ----------------------------------------------------------------------------- paired frame
def _condition_label(cond: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={cond[k]}" for k in sorted(cond))


def paired_frame(
    records: Sequence[Record],
    *,
    reference: Mapping[str, Any] | None = None,
    quantity: str = "eval.bits_per_byte",
) -> pd.DataFrame:
    """Tidy per-item frame pairing every compressed condition with the full-precision reference.

    Parameters
    ----------
    records : sequence of Measurement
        Evaluation records (other quantities and failures are ignored).
    reference : dict, optional
        The reference condition; default :data:`DEFAULT_CONDITION` (``scheme='fp32'``...).
    quantity : str, default 'eval.bits_per_byte'
        The per-item quantity to pair.

    Returns
    -------
    pandas.DataFrame
        One row per (condition, language, item): ``language, item_id, document_id, condition`` (a stable
        ``k=v,...`` label), ``scheme, protect, prune``, ``full`` (reference value), ``compressed``, ``delta``
        (compressed minus reference), ``model_id``. Rows of one ``condition`` are the wide format that the
        :mod:`qdstats.disparity` estimands take with their defaults
        (``degradation(frame[frame.condition == c], cluster='document_id')``).

    Raises
    ------
    ValueError
        No reference records, an item that appears twice within one condition, or a compressed item
        without its reference (pairing must be complete: evaluate identical items).
    """
    ref = dict(DEFAULT_CONDITION if reference is None else reference)
    rows = []
    for r in records:
        if not isinstance(r, Measurement) or r.quantity != quantity:
            continue
        rows.append({
            "language": r.language, "item_id": r.item_id,
            "document_id": r.attributes.get("document_id", r.item_id),
            "cond": dict(r.condition), "value": r.value,
            "model_id": r.model.model_id if r.model else None,
            "model_key": r.model.sha256 or r.model.revision if r.model else None,
        })
    if not rows:
        raise ValueError(f"`records` has no {quantity!r} measurements.")
    df = pd.DataFrame(rows)
    df["condition"] = [_condition_label(c) for c in df["cond"]]
    is_ref = np.array([all(c.get(k) == v for k, v in ref.items()) and set(c) <= set(ref) | {"compute_dtype"} for c in df["cond"]])
    base = df[is_ref]
    if base.empty:
        raise ValueError(f"no reference records with condition {ref} among the {quantity!r} measurements.")
    keys = ["model_key", "language", "item_id"]
    if base.duplicated(keys).any():
        raise ValueError("the reference condition has an item measured twice; pass one run's records.")
    comp = df[~is_ref].copy()
    if comp.duplicated(keys + ["condition"]).any():
        raise ValueError("a compressed condition has an item measured twice; pass one run's records.")
    merged = comp.merge(base[keys + ["value"]].rename(columns={"value": "full"}), on=keys, how="left")
    merged = merged.rename(columns={"value": "compressed"})
    if merged["full"].isna().any():
        bad = merged[merged["full"].isna()].iloc[0]
        raise ValueError(
            f"item {bad['item_id']!r} ({bad['language']}) under {bad['condition']} has no reference measurement; "
            "evaluate identical items under every condition."
        )
    for k in DEFAULT_CONDITION:
        merged[k] = [c.get(k) for c in merged["cond"]]
    merged["delta"] = merged["compressed"] - merged["full"]
    cols = ["language", "item_id", "document_id", "condition", "scheme", "protect", "prune", "full", "compressed",
            "delta", "model_id"]
    return merged[cols].sort_values(["condition", "language", "item_id"], kind="stable").reset_index(drop=True)


def content_hash(items: Sequence[ParallelItem]) -> str:
    """sha256 over the (language, item_id, text) of items, for identifying a job's inputs."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda i: (i.language, i.item_id)):
        h.update(f"{it.language}\t{it.item_id}\t{it.text}\n".encode())
    return h.hexdigest()


def iter_languages(items: Sequence[ParallelItem]) -> Iterator[tuple[str, list[ParallelItem]]]:
    """Group items by language, in first-appearance order."""
    groups: dict[str, list[ParallelItem]] = {}
    for it in items:
        groups.setdefault(it.language, []).append(it)
    yield from groups.items()
