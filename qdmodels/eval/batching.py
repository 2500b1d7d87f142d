"""Batches of encoded items and their token log-probabilities: padding, token budgets, the packed output head.

:func:`make_batches` sorts items by length (longest first) and right-pads them, optionally under a budget of
padded positions per batch; :func:`batch_logprobs` runs one forward pass and computes the output head only at
scored positions (:func:`scored_positions_only`), returning float64 log-probabilities of every text token.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.eval.encoding import encode_items, text_items
>>> from qdmodels.eval.batching import batch_logprobs, make_batches
>>> lm = tiny_model("llama")
>>> enc = encode_items(lm.model, lm.tokenizer, text_items({"eng_Latn": ["The fox.", "A dog ran."]}))
>>> [b.input_ids.shape[0] for b in make_batches(enc, batch_size=8, pad_id=0)]
[2]
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qdmodels.eval.encoding import EncodedItem
from qdmodels.runtime import model_device
from qdstats.validation import check_int

__all__ = [
    "DEFAULT_MAX_BATCH_TOKENS", "Batch", "autocast", "batch_logprobs", "forward_logits", "logprobs_from_logits", "make_batches", "packed_logprobs",
    "run_batch", "scored_mask", "scored_positions_only",
]


#: The default token budget of :func:`qdmodels.eval.scoring.evaluate` (padded positions per batch). On 320 NTREX-128
#: sentences over 8 languages it is at least as fast as fixed 16-item batches (benchmarks/results/bench_eval.json),
#: and the records equal the fixed-batch ones within float round-off (tests/qdmodels/eval/test_batching_defaults.py).
DEFAULT_MAX_BATCH_TOKENS = 1024


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


def autocast(dtype: str, device: torch.device | str = "cpu") -> contextlib.AbstractContextManager[Any]:
    """bf16/fp16 autocast on ``device``'s type for ``dtype`` ``'bfloat16'``/``'float16'``; nothing for ``'float32'``."""
    if dtype in ("bfloat16", "float16"):
        return torch.autocast(torch.device(device).type, dtype=getattr(torch, dtype))
    return contextlib.nullcontext()



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
    (tests/qdmodels/eval/test_scoring.py).
    """
    with scored_positions_only(model, batch) as packed:
        logits = run_batch(model, batch).logits
    return packed_logprobs(logits, batch) if packed else logprobs_from_logits(logits, batch)


