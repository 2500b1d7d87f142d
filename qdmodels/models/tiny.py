"""Tiny random models of every supported family, built from a config in memory (no hub, no files).

They exist for unit tests and documentation examples: each is a real ``transformers`` model class with
random weights, a few layers and a small hidden size, paired with a byte-level BPE tokenizer trained in
memory on a fixed multilingual text (Latin, Hebrew, Arabic, Chinese, Korean, Cyrillic, Devanagari...), so
any Unicode text tokenizes (byte fallback) and its vocabulary matches the model's embedding table.

Examples
--------
>>> from qdmodels.models.tiny import tiny_model
>>> lm = tiny_model("llama", seed=0)
>>> lm.ref.source, lm.ref.family
('config', 'llama')
>>> lm.model.config.num_key_value_heads < lm.model.config.num_attention_heads
True
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any, Literal, get_args

import torch

from qdmodels.models.loading import LoadedModel, count_parameters
from qdmodels.runtime import describe_device, resolve_device
from qdstats.records import ModelRef
from qdstats.validation import check_int, check_option

__all__ = ["FAMILIES", "TINY_TEXT", "Family", "tiny_config", "tiny_model", "tiny_tokenizer"]

Family = Literal["gpt2", "llama", "gemma3", "opt", "bloom", "gpt_neox", "qwen2"]
FAMILIES: tuple[str, ...] = get_args(Family)

#: Fixed training text for the tiny tokenizer (several scripts, so merges exist for all of them).
TINY_TEXT: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog. Quantization hurts some languages more than others.",
    "Der schnelle braune Fuchs springt über den faulen Hund. Größere Modelle sind robuster.",
    "Hızlı kahverengi tilki tembel köpeğin üzerinden atlar. Türkçe eklemeli bir dildir.",
    "Nopea ruskea kettu hyppää laiskan koiran yli. Suomen kieli on agglutinoiva.",
    "השועל החום המהיר קופץ מעל הכלב העצלן. בבית הספר לומדים עברית.",
    "الثعلب البني السريع يقفز فوق الكلب الكسول. اللغة العربية غنية بالصرف.",
    "敏捷的棕色狐狸跳过了懒狗。量化会损害某些语言。",
    "빠른 갈색 여우가 게으른 개를 뛰어넘는다. 한국어는 교착어이다.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "Le renard brun rapide saute par-dessus le chien paresseux. ¿Qué tal? Ça va.",
    "0123456789 +-*/=()[]{}<>!?,.;:'\"@#$%^&_~`|\\",
)

_SPECIALS = ("<pad>", "<s>", "</s>")
_VOCAB_SIZE = 512


@lru_cache(maxsize=1)
def _tokenizer_json() -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=list(_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(TINY_TEXT) * 4, trainer=trainer)
    return tok.to_str()


def tiny_tokenizer() -> Any:
    """Return a fresh byte-level BPE ``PreTrainedTokenizerFast`` trained on :data:`TINY_TEXT`.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        Special tokens ``<pad>`` (id 0), ``<s>`` (bos, id 1), ``</s>`` (eos, id 2). Like GPT-2 it adds no BOS
        automatically; every byte is in the alphabet, so any text round-trips through encode/decode.

    Notes
    -----
    Deterministic: training on a fixed text with a fixed vocabulary size gives the same merges every time.
    Validated against: round-trip tests in ``tests/qdmodels/models/test_loading.py`` (exact equality).
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer.from_str(_tokenizer_json())
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", clean_up_tokenization_spaces=False
    )


def tiny_config(family: Family, *, n_layers: int = 2, vocab_size: int | None = None) -> Any:
    """Build the small ``transformers`` config used by :func:`tiny_model` (hidden 32, MLP 64, 4 heads).

    Parameters
    ----------
    family : {'gpt2', 'llama', 'gemma3', 'opt', 'bloom', 'gpt_neox', 'qwen2'}
        Architecture family.
    n_layers : int, default 2
        Number of decoder blocks (>= 1).
    vocab_size : int, optional
        Defaults to the tiny tokenizer's vocabulary size.

    Returns
    -------
    transformers.PretrainedConfig

    Raises
    ------
    ValueError
        Unknown ``family`` (did-you-mean message) or ``n_layers`` < 1.
    """
    check_option(family, "family", FAMILIES)
    n_layers = check_int(n_layers, "n_layers", minimum=1)
    if vocab_size is None:
        vocab_size = len(tiny_tokenizer())
    ids = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
    if family == "gpt2":
        from transformers import GPT2Config

        return GPT2Config(n_layer=n_layers, n_head=4, n_embd=32, n_inner=64, n_positions=256, vocab_size=vocab_size,
                          tie_word_embeddings=True, **ids)
    if family == "llama":
        from transformers import LlamaConfig

        # GQA (2 key/value heads for 4 query heads) and tied embeddings, as in SmolLM2.
        return LlamaConfig(num_hidden_layers=n_layers, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=8, max_position_embeddings=256, vocab_size=vocab_size,
                           tie_word_embeddings=True, **ids)
    if family == "gemma3":
        from transformers import Gemma3TextConfig

        return Gemma3TextConfig(num_hidden_layers=n_layers, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                num_key_value_heads=1, head_dim=8, query_pre_attn_scalar=8, sliding_window=16,
                                max_position_embeddings=256, vocab_size=vocab_size, tie_word_embeddings=True, **ids)
    if family == "opt":
        from transformers import OPTConfig

        return OPTConfig(num_hidden_layers=n_layers, hidden_size=32, ffn_dim=64, num_attention_heads=4,
                         word_embed_proj_dim=32, max_position_embeddings=256, vocab_size=vocab_size,
                         tie_word_embeddings=True, **ids)
    if family == "bloom":
        from transformers import BloomConfig

        return BloomConfig(n_layer=n_layers, hidden_size=32, n_head=4, vocab_size=vocab_size,
                           tie_word_embeddings=True, **ids)
    if family == "gpt_neox":
        from transformers import GPTNeoXConfig

        return GPTNeoXConfig(num_hidden_layers=n_layers, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                             rotary_pct=0.5, max_position_embeddings=256, vocab_size=vocab_size,
                             tie_word_embeddings=False, **ids)
    from transformers import Qwen2Config  # family == "qwen2"

    return Qwen2Config(num_hidden_layers=n_layers, hidden_size=32, intermediate_size=64, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=256, vocab_size=vocab_size,
                       tie_word_embeddings=False, **ids)


def _config_sha256(config: Any, family: str, seed: int) -> str:
    d = config.to_dict()
    d.pop("transformers_version", None)
    payload = json.dumps({"family": family, "seed": seed, "config": d}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def tiny_model(family: Family, *, seed: int = 0, n_layers: int = 2, device: str = "cpu") -> LoadedModel:
    """Build a tiny random causal LM of ``family`` with a matching in-memory tokenizer.

    Parameters
    ----------
    family : {'gpt2', 'llama', 'gemma3', 'opt', 'bloom', 'gpt_neox', 'qwen2'}
        Architecture family; Llama uses grouped-query attention and tied embeddings (like SmolLM2),
        GPT-NeoX and Qwen2 have untied output embeddings.
    seed : int, default 0
        Seed of the weight initialization (run in a forked torch RNG: the global RNG is untouched).
    n_layers : int, default 2
        Number of decoder blocks.
    device : str, default 'cpu'
        Where to put it (:func:`qdmodels.runtime.resolve_device`); recorded in ``ref.device``.

    Returns
    -------
    LoadedModel
        ``model`` (fp32, eval mode), ``tokenizer`` (:func:`tiny_tokenizer`) and ``ref``: a
        :class:`~qdstats.records.ModelRef` with ``source='config'``, ``model_id='tiny:<family>'`` and
        ``sha256`` of the config JSON plus the seed.

    Raises
    ------
    ValueError
        Unknown ``family`` or ``n_layers`` < 1.

    Notes
    -----
    After the library's own initialization, every norm gain is set to ``1 + 0.1 * N(0, 1)`` and every
    bias to ``0.02 * N(0, 1)`` (same forked RNG), so that norms and biases are not constant and tests of
    quantization/protection of those tensors can fail. The model is random: its outputs mean nothing.
    Validated against: not independently validated (a test fixture).

    Examples
    --------
    >>> lm = tiny_model("gpt2", seed=1)
    >>> ids = lm.tokenizer("שלום עולם", return_tensors="pt").input_ids
    >>> lm.model(ids).logits.shape[-1] == lm.model.config.vocab_size
    True
    """
    check_option(family, "family", FAMILIES)
    seed = check_int(seed, "seed")
    n_layers = check_int(n_layers, "n_layers", minimum=1)
    from transformers import AutoModelForCausalLM

    tokenizer = tiny_tokenizer()
    config = tiny_config(family, n_layers=n_layers, vocab_size=len(tokenizer))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        with torch.no_grad():
            for name, p in model.named_parameters():
                leaf = name.rsplit(".", 1)[-1]
                if leaf == "bias":
                    p.copy_(0.02 * torch.randn_like(p))
                elif p.ndim == 1 and leaf == "weight":  # norm gains (LayerNorm / RMSNorm)
                    if "gemma" in family:  # Gemma's RMSNorm computes x * (1 + w): keep w small
                        p.copy_(0.1 * torch.randn_like(p))
                    else:
                        p.copy_(1.0 + 0.1 * torch.randn_like(p))
    target = resolve_device(device)
    model.to(target)
    model.eval()
    ref = ModelRef(
        model_id=f"tiny:{family}",
        source="config",
        sha256=_config_sha256(config, family, seed),
        dtype="float32",
        n_params=count_parameters(model),
        family=family,
        note=f"random weights (seed={seed}, n_layers={n_layers}); for tests only",
        device=describe_device(target),
    )
    return LoadedModel(model=model, tokenizer=tokenizer, ref=ref)
