"""Decoder blocks one at a time: the inputs entering each block, and running a block on its own.

Block-wise algorithms (GPTQ-style calibrated quantization, output-error sensitivity proxies) run the model block
by block: :func:`collect_layer_inputs` records, in one full-precision forward that stops at the last block,
the hidden states entering block 0 and every block's other call arguments; :func:`run_block` then calls a
block on any hidden states with those arguments. :func:`decoder_layers` lists the blocks.

Examples
--------
>>> import torch
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.models.blocks import collect_layer_inputs, decoder_layers, run_block
>>> lm = tiny_model("llama")
>>> hidden, calls = collect_layer_inputs(lm, torch.tensor([[1, 2, 3]]))
>>> run_block(decoder_layers(lm.model)[0], hidden[0], calls[0][0]).shape
torch.Size([1, 3, 32])
"""

from __future__ import annotations

from typing import Any

import torch

from qdmodels.models.hooks import HookSet
from qdmodels.models.sites import site_map
from qdmodels.runtime import unwrap_model
from qdstats.validation import check_int

__all__ = ["collect_layer_inputs", "decoder_layers", "run_block"]


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The decoder blocks of a causal LM, in order (via :func:`qdmodels.models.sites.site_map`)."""
    return list(site_map(model).layers)


class _Stop(Exception):
    pass


def collect_layer_inputs(model: Any, input_ids: torch.Tensor, *, batch_size: int = 8,
                         attention_mask: torch.Tensor | None = None) -> tuple[list[torch.Tensor], list[list[tuple[tuple, dict]]]]:
    """Hidden states entering block 0 and every block's other call arguments, per batch (one fp forward).

    Returns
    -------
    (hidden, calls)
        ``hidden[b]``: the input hidden states of block 0 for batch ``b``; ``calls[b][i]``: ``(args[1:], kwargs)``
        of block ``i``'s call (attention masks, position embeddings, which may differ per block, e.g. Gemma-3's
        sliding-window layers). Blocks are called as ``block(h, *args, **kwargs)``.
    """
    mdl = unwrap_model(model)
    layers = site_map(mdl).layers
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    hidden: list[torch.Tensor] = []
    calls: list[list[tuple[tuple, dict]]] = []
    for start in range(0, input_ids.shape[0], batch_size):
        ids = input_ids[start:start + batch_size]
        am = torch.ones_like(ids) if attention_mask is None else attention_mask[start:start + batch_size]
        per_layer: list[Any] = [None] * len(layers)
        h0: list[torch.Tensor] = []

        def make(j: int, h0: list[torch.Tensor] = h0, per_layer: list[Any] = per_layer) -> Any:
            def pre(mod: Any, args: tuple, kwargs: dict) -> None:
                if args:
                    hs, rest = args[0], tuple(args[1:])
                else:
                    hs, rest = kwargs["hidden_states"], ()
                    kwargs = {k: v for k, v in kwargs.items() if k != "hidden_states"}
                if j == 0:
                    h0.append(hs.detach().clone())
                per_layer[j] = (rest, dict(kwargs))
                if j == len(layers) - 1:
                    raise _Stop
            return pre

        with torch.no_grad(), HookSet() as hs_:
            for j, layer in enumerate(layers):
                hs_.pre(layer, make(j), with_kwargs=True)
            try:
                mdl(input_ids=ids, attention_mask=am, use_cache=False)
            except _Stop:
                pass
        hidden.append(h0[0])
        calls.append(per_layer)
    return hidden, calls


def run_block(layer: torch.nn.Module, h: torch.Tensor, call: tuple[tuple, dict]) -> torch.Tensor:
    """Run one decoder block on hidden states ``h`` with the call arguments captured by :func:`collect_layer_inputs`."""
    args, kwargs = call
    out = layer(h, *args, **kwargs)
    return out[0] if isinstance(out, (tuple, list)) else out
