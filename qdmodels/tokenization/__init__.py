"""Tokenizer measurements: parity across languages, morpheme-boundary alignment, word-level damage attribution.

All positions are UTF-8 byte offsets (byte-level BPE and byte fallback split characters).
"""

from qdmodels.tokenization.alignment import (
    AlignMode,
    WordAlignment,
    align_morphemes,
    align_sentence,
    align_word,
    alignment_records,
    alignment_summary,
    boundary_scores,
)
from qdmodels.tokenization.attribution import (
    TokenLogprobs,
    WordDamage,
    word_damage,
    word_damage_frame,
    word_damage_records,
    word_frequencies,
)
from qdmodels.tokenization.loading import (
    KNOWN_TOKENIZERS,
    LoadedTokenizer,
    load_tokenizer,
)
from qdmodels.tokenization.offsets import OffsetError, TokenSpans, token_byte_spans
from qdmodels.tokenization.parity import (
    NON_WHITESPACE_SCRIPTS,
    fertility,
    is_whitespace_delimited,
    parity_frame,
    parity_table,
    text_stats,
)

__all__ = [
    "KNOWN_TOKENIZERS", "NON_WHITESPACE_SCRIPTS", "AlignMode", "LoadedTokenizer", "OffsetError", "TokenLogprobs",
    "TokenSpans", "WordAlignment", "WordDamage", "align_morphemes", "align_sentence", "align_word",
    "alignment_records", "alignment_summary", "boundary_scores", "fertility", "is_whitespace_delimited",
    "load_tokenizer", "parity_frame", "parity_table", "text_stats", "token_byte_spans", "word_damage",
    "word_damage_frame", "word_damage_records", "word_frequencies",
]
