"""Items to token ids: the context token prepended, nothing truncated, the UTF-8 byte span of every token.

:func:`encode_items` is the one encoder of every scorer (evaluation, sweeps, probes): each text is tokenized
without special tokens and the context token (:func:`qdmodels.runtime.context_token`) is prepended, so the first
text token is scored too; an item longer than the model's context raises. :func:`encoded_byte_spans` gives the
byte span of each token of an already-encoded text (for per-token log-probs); for a tokenizer file and a raw
text use :func:`qdmodels.tokenization.token_byte_spans`, which also tokenizes.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> from qdmodels.eval.encoding import encode_items, text_items
>>> lm = tiny_model("llama")
>>> enc = encode_items(lm.model, lm.tokenizer, text_items({"eng_Latn": ["The fox."]}))
>>> enc[0].input_ids[0] == lm.tokenizer.bos_token_id
True
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from qdmodels.corpora.types import ParallelItem
from qdmodels.runtime import context_token
from qdmodels.tokenization.offsets import byte_level_alphabet
from qdstats.records import CorpusRef
from qdstats.validation import check_option

__all__ = ["EncodedItem", "encode_item", "encode_items", "encoded_byte_spans", "text_items"]


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
        dec = byte_level_alphabet()
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


def encoded_byte_spans(
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


