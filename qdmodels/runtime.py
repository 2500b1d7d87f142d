"""What every measuring package shares: model and item resolution, the context token, the device.

These are the public building blocks that :mod:`qdmodels.compress`, :mod:`qdmodels.eval`, :mod:`qdmodels.probes`
and :mod:`qdmodels.jobs` all use, so none of them imports another's private helpers:

* :func:`unwrap_model` and :func:`resolve_model`: a ``LoadedModel`` or a bare ``torch.nn.Module`` to the module
  (and its tokenizer and :class:`~qdstats.records.ModelRef`), with one error message for a wrong type;
* :func:`flatten_items`: a list or a ``language -> items`` dict of :class:`~qdmodels.corpora.ParallelItem` to
  one validated list (unique ``(language, item_id)`` pairs);
* :func:`context_token`: the token prepended to every scored text (BOS, else EOS);
* :func:`model_device`, :func:`content_hash`, :func:`iter_languages` and :data:`LN2`.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.runtime import resolve_model, unwrap_model
>>> lm = tiny_model("llama")
>>> model, tokenizer, ref = resolve_model(lm)
>>> unwrap_model(lm) is model
True
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import torch

from qdmodels.corpora.types import ParallelItem
from qdstats.records import ModelRef

__all__ = [
    "DEVICES",
    "DeviceName",
    "LN2",
    "describe_device",
    "resolve_device",
    "content_hash",
    "context_token",
    "flatten_items",
    "iter_languages",
    "model_device",
    "resolve_model",
    "unwrap_model",
]

#: ln 2: nats per bit.
LN2 = math.log(2.0)
DeviceName = Literal["auto", "cpu", "cuda", "mps"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for a device option: ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'``,
    ``'cuda:N'`` or ``'mps'``.

    Raises
    ------
    ValueError
        An unknown device, or one this machine does not have (the message says what is available).

    Examples
    --------
    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(f"`device` must be one of {DEVICES} (or 'cuda:N'); got {device!r}.")
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise ValueError(f"`device` must be one of {DEVICES} or 'cuda:N'; got {device!r}.")
    have_cuda = torch.cuda.is_available()
    have_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if kind == "auto":
        return torch.device("cuda" if have_cuda else "cpu")
    if kind == "cuda" and not have_cuda:
        raise ValueError(f"`device` {device!r}: CUDA is not available on this machine (torch {torch.__version__}, "
                         "torch.cuda.is_available() is False); use 'cpu' or 'auto'.")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"`device` {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s).")
    if kind == "mps" and not have_mps:
        raise ValueError(f"`device` {device!r}: the Apple MPS backend is not available here; use 'cpu' or 'auto'.")
    return torch.device(device)


def describe_device(device: torch.device) -> str:
    """``'cpu'`` or ``'cuda:0 (NVIDIA H100 80GB HBM3)'``: what records store as ``ModelRef.device``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return str(device)


def _is_loaded(obj: Any) -> bool:
    return hasattr(obj, "tokenizer") and hasattr(obj, "ref") and isinstance(getattr(obj, "model", None), torch.nn.Module)


def unwrap_model(model: Any) -> torch.nn.Module:
    """The ``torch.nn.Module`` of a ``LoadedModel`` (or ``model`` itself when it is a module).

    Raises
    ------
    TypeError
        ``model`` is neither.
    """
    if _is_loaded(model):
        return model.model
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"`model` must be a torch.nn.Module or a LoadedModel; got {type(model).__name__}.")
    return model


def resolve_model(
    loaded_or_model: Any, tokenizer: Any = None, model_ref: ModelRef | None = None, *, need_tokenizer: bool = True
) -> tuple[torch.nn.Module, Any, ModelRef]:
    """``(module, tokenizer, model_ref)`` from a ``LoadedModel``, or from a bare module plus both of the others.

    With ``need_tokenizer=False`` (weight-only probes) a missing tokenizer is allowed and returned as ``None``.

    Raises
    ------
    TypeError
        ``loaded_or_model`` is neither a ``LoadedModel`` nor a module.
    ValueError
        A bare module without ``tokenizer`` (when needed) or ``model_ref``.
    """
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
    if tokenizer is None and need_tokenizer:
        raise ValueError("`tokenizer` is required when `loaded_or_model` is a bare module (a LoadedModel carries one).")
    if not isinstance(model_ref, ModelRef):
        raise ValueError("`model_ref` is required (a ModelRef pinning the weights) when `loaded_or_model` has no `.ref`.")
    return model, tokenizer, model_ref


def flatten_items(items: Any) -> list[ParallelItem]:
    """One list of items from a sequence or a ``language -> sequence`` dict, validated.

    Raises
    ------
    TypeError
        Not a sequence/dict, or an element that is not a :class:`ParallelItem`.
    ValueError
        No items, or a ``(language, item_id)`` pair that occurs twice (pairing needs unique items).
    """
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


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter (inputs are moved there)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


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
