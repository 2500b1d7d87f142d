"""Token byte spans: where each token of a text starts and ends in the text's UTF-8 bytes.

Byte-level BPE (GPT-2, Llama-3, Qwen) and SentencePiece byte fallback (Llama-2, Gemma) both produce tokens
that hold part of a UTF-8 character, so character offsets cannot describe them (GPT-2 splits ``東`` into
two tokens that the ``tokenizers`` library both reports at char span (0, 1), and gives ``Ġ×`` of ``" ש"`` a
span that overlaps the next token). This module decodes every token to its bytes instead and lays the
tokens end to end over the text's bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from qdmodels.tokenization.loading import LoadedTokenizer, load_tokenizer

__all__ = ["OffsetError", "TokenSpans", "byte_level_alphabet", "token_byte_spans", "token_bytes"]

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class OffsetError(ValueError):
    """Token bytes could not be laid over the text's bytes (e.g. a normalizer rewrote the text)."""


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """The GPT-2 byte-to-unicode table, inverted: printable stand-in character -> byte value.

    Returns
    -------
    dict[str, int]
        256 entries; e.g. ``'Ġ'`` (U+0120) -> 32 (space).

    Notes
    -----
    Same construction as OpenAI's ``bytes_to_unicode`` in ``gpt-2/src/encoder.py``: printable Latin-1 bytes
    map to themselves and the other 68 bytes to U+0100 onwards, in byte order.
    Validated against: ``tokenizers.pre_tokenizers.ByteLevel.alphabet()`` (same 256 characters), in the tests.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


@dataclass(frozen=True)
class TokenSpans:
    """The tokens of one text with their byte spans.

    Attributes
    ----------
    text : str
        The text as given.
    ids : tuple[int, ...]
        Token ids (no special tokens added).
    tokens : tuple[str, ...]
        Token strings as in the vocabulary.
    byte_spans : tuple[tuple[int, int], ...]
        ``(start, end)`` byte offsets into ``text.encode("utf-8")``, end exclusive, in order and non-overlapping
        (contiguous for method ``'bytes'``).
        A token made only of text the tokenizer added itself (SentencePiece's dummy-prefix ``▁``) gets an empty span.
    method : {'bytes', 'offsets'}
        ``'bytes'``: spans from the tokens' own bytes (exact); ``'offsets'``: from the tokenizer's char
        offsets, with tokens that share one character splitting its bytes in order.
    n_bytes : int
        UTF-8 length of ``text``.
    """

    text: str
    ids: tuple[int, ...]
    tokens: tuple[str, ...]
    byte_spans: tuple[tuple[int, int], ...]
    method: str
    n_bytes: int

    def __len__(self) -> int:
        return len(self.ids)

    def boundaries(self) -> tuple[int, ...]:
        """Internal token boundaries: byte offsets in ``(0, n_bytes)`` where one token ends and the next starts."""
        out = sorted({s for s, _ in self.byte_spans if 0 < s < self.n_bytes})
        return tuple(out)


def token_bytes(tokenizer: LoadedTokenizer, token: str) -> bytes:
    """The bytes a vocabulary token stands for.

    Parameters
    ----------
    tokenizer : LoadedTokenizer
        Decides the mapping through its ``kind``.
    token : str
        Token string as in the vocabulary.

    Returns
    -------
    bytes
        Byte-level: the GPT-2 alphabet decoded; SentencePiece: ``<0xNN>`` -> that byte, ``▁`` -> space;
        other: the token's UTF-8 encoding.

    Notes
    -----
    A byte-level token with a character outside the byte-level alphabet (an added token such as
    ``<|endoftext|>`` stored verbatim) is returned as its UTF-8 encoding. Results are cached per
    (kind, token). Validated against: GPT-2's ``東`` -> ``[30266, 109]`` (bytes ``e6 9d`` + ``b1``) and the
    property that each token's span slices exactly its bytes out of the text, exact.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models
    >>> sp = load_tokenizer(Tokenizer(models.BPE({"<0xD7>": 0, "▁a": 1}, [], byte_fallback=True)))
    >>> token_bytes(sp, "<0xD7>"), token_bytes(sp, "▁a")
    (b'\\xd7', b' a')
    """
    return _token_bytes(tokenizer.kind, token)


@lru_cache(maxsize=2**20)
def _token_bytes(kind: str, token: str) -> bytes:
    if kind == "byte_level":
        table = byte_level_alphabet()
        try:
            return bytes(table[c] for c in token)
        except KeyError:
            return token.encode("utf-8")  # added tokens (e.g. special tokens) are stored verbatim
    if kind == "sentencepiece":
        m = _BYTE_PIECE.match(token)
        if m:
            return bytes([int(m.group(1), 16)])
        return token.replace("\u2581", " ").encode("utf-8")
    return token.encode("utf-8")


def _char_to_byte(text: str) -> list[int]:
    out = [0]
    for ch in text:
        out.append(out[-1] + len(ch.encode("utf-8")))
    return out


def _spans_from_offsets(tokenizer: LoadedTokenizer, text: str, enc: Any) -> list[tuple[int, int]]:
    c2b = _char_to_byte(text)
    spans: list[tuple[int, int]] = []
    offs = list(enc.offsets)
    i = 0
    while i < len(offs):
        j = i
        while j + 1 < len(offs) and offs[j + 1] == offs[i]:
            j += 1
        s, e = c2b[offs[i][0]], c2b[offs[i][1]]
        if j == i:
            spans.append((s, e))
        else:  # several tokens share one char span: split its bytes in token order by their byte lengths
            lens = [len(token_bytes(tokenizer, t)) for t in enc.tokens[i : j + 1]]
            pos = s
            for ln in lens:
                end = min(pos + ln, e)
                spans.append((pos, end))
                pos = end
            if pos != e:
                spans[-1] = (spans[-1][0], e)
        i = j + 1
    return spans


def token_byte_spans(tokenizer: Any, text: str) -> TokenSpans:
    """Tokenize ``text`` and return each token's byte span.

    Parameters
    ----------
    tokenizer : LoadedTokenizer or anything :func:`load_tokenizer` accepts
        The tokenizer.
    text : str
        Text to tokenize (no special tokens are added).

    Returns
    -------
    TokenSpans
        ``ids``, ``tokens``, ``byte_spans`` (end exclusive), ``method``, ``n_bytes``.

    Raises
    ------
    TypeError
        ``text`` is not a string.
    OffsetError
        Neither method gives spans that tile the text's bytes.

    Notes
    -----
    Method ``'bytes'`` (byte-level BPE and SentencePiece): the tokens' decoded bytes must concatenate to
    ``text.encode('utf-8')``, or to a space followed by it (SentencePiece dummy prefix, whose space is then
    given to no text byte: the first token's span is shortened by one byte). Spans are cumulative byte
    lengths, so a token holding half a UTF-8 character gets exactly its bytes. When the concatenation does not
    match (a normalizer changed the text, e.g. NFKC, or the text contains a literal ``▁``), or for other
    tokenizers (WordLevel, WordPiece), method ``'offsets'`` converts the tokenizer's char offsets to bytes and
    splits a char shared by several tokens in token order by their byte lengths.
    Validated against: hand-computed spans for a WordLevel, a byte-level BPE and a byte-fallback tokenizer,
    and the invariant that spans tile ``[0, n_bytes)`` on all NTREX languages for the five shipped
    tokenizers (exact equality), in the tests.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models, pre_tokenizers
    >>> tok = Tokenizer(models.WordLevel({"ab": 0, "c": 1, "[UNK]": 2}, unk_token="[UNK]"))
    >>> tok.pre_tokenizer = pre_tokenizers.Whitespace()
    >>> token_byte_spans(tok, "ab c").byte_spans
    ((0, 2), (3, 4))
    """
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str; got {type(text).__name__}.")
    lt = load_tokenizer(tokenizer)
    enc = lt.tokenizer.encode(text, add_special_tokens=False)
    raw = text.encode("utf-8")
    n = len(raw)
    ids, toks = tuple(enc.ids), tuple(enc.tokens)
    if lt.kind in ("byte_level", "sentencepiece"):
        pieces = [token_bytes(lt, t) for t in toks]
        joined = b"".join(pieces)
        shift = 0
        if joined == raw:
            shift = 0
        elif joined == b" " + raw and lt.kind == "sentencepiece":
            shift = 1
        else:
            shift = -1
        if shift >= 0:
            spans: list[tuple[int, int]] = []
            pos = -shift
            for p in pieces:
                s, e = pos, pos + len(p)
                spans.append((max(s, 0), max(e, 0)))
                pos = e
            return TokenSpans(text=text, ids=ids, tokens=toks, byte_spans=tuple(spans), method="bytes", n_bytes=n)
    spans = _spans_from_offsets(lt, text, enc)
    _check_tiling(spans, n, text, lt.name)
    return TokenSpans(text=text, ids=ids, tokens=toks, byte_spans=tuple(spans), method="offsets", n_bytes=n)


def _check_tiling(spans: list[tuple[int, int]], n: int, text: str, name: str) -> None:
    prev = 0
    for s, e in spans:
        if s < prev or e < s or e > n:
            raise OffsetError(
                f"token spans of tokenizer {name!r} do not lie in order over the bytes of the text "
                f"{text[:40]!r}...; got span ({s}, {e}) after byte {prev}."
            )
        prev = e
