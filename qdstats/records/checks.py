"""Integrity checks on a set of records before they are analysed together: duplicates and mixed corpora.

A record file written twice, or two runs concatenated, measure the same item twice; two corpora (or two splits of
one) pooled into one table mix populations. Both used to pass silently into a report. :func:`duplicate_keys` and
:func:`corpora` find them; :func:`drop_duplicates` is the explicit opt-in to keep the first measurement of each key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from qdstats.records.measurement import Measurement

__all__ = ["corpora", "corpus_label", "drop_duplicates", "duplicate_keys", "measurement_key", "mixed_corpora"]


def measurement_key(r: Measurement) -> tuple[Any, ...]:
    """What identifies one measurement: quantity, model, condition, language, item, site and corpus split."""
    model = (r.model.model_id, r.model.sha256 or r.model.revision) if r.model is not None else None
    corpus = (r.corpus.corpus_id, r.corpus.split) if r.corpus is not None else None
    return (r.quantity, model, tuple(sorted((k, str(v)) for k, v in r.condition.items())), r.language, r.item_id,
            r.site, corpus)


def duplicate_keys(records: Sequence[Any]) -> dict[tuple[Any, ...], int]:
    """Keys of per-item measurements (``item_id`` set) that occur more than once, with their counts."""
    counts = Counter(measurement_key(r) for r in records if isinstance(r, Measurement) and r.item_id is not None)
    return {k: n for k, n in counts.items() if n > 1}


def drop_duplicates(records: Sequence[Any]) -> tuple[list[Any], int]:
    """Keep the first per-item measurement of every key; return the records and how many were dropped."""
    seen: set[tuple[Any, ...]] = set()
    out, dropped = [], 0
    for r in records:
        if isinstance(r, Measurement) and r.item_id is not None:
            key = measurement_key(r)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        out.append(r)
    return out, dropped


def corpus_label(r: Measurement) -> str | None:
    """``corpus_id:split`` (plus any normalization beyond NFC) of a record, or None without a corpus."""
    if r.corpus is None:
        return None
    extra = [s for s in r.corpus.normalization if s != "NFC"]
    return f"{r.corpus.corpus_id}:{r.corpus.split or 'all'}" + (f" ({'+'.join(extra)})" if extra else "")


def corpora(records: Sequence[Any]) -> dict[str, int]:
    """Per-item measurements per corpus label (see :func:`corpus_label`).

    Examples
    --------
    >>> from qdstats.records import CorpusRef, Measurement
    >>> ref = CorpusRef(corpus_id="ntrex128", split="test", sha256="0" * 64)
    >>> recs = [Measurement(quantity="eval.bits_per_byte", value=1.0, item_id="s1", corpus=ref)]
    >>> corpora(recs)
    {'ntrex128:test': 1}
    """
    counts: Counter[str] = Counter()
    for r in records:
        if isinstance(r, Measurement) and r.item_id is not None:
            label = corpus_label(r)
            if label is not None:
                counts[label] += 1
    return dict(counts)


def mixed_corpora(records: Sequence[Any]) -> dict[tuple[str, str | None], dict[str, int]]:
    """``(quantity, language) -> {corpus label: count}`` wherever one quantity of one language comes from several
    corpora or splits: the cases a per-language summary would pool. Different corpora for different quantities
    (an evaluation on NTREX, an alignment on UD) are not mixed."""
    by: dict[tuple[str, str | None], Counter[str]] = {}
    for r in records:
        if isinstance(r, Measurement) and r.item_id is not None:
            label = corpus_label(r)
            if label is not None:
                by.setdefault((r.quantity, r.language), Counter())[label] += 1
    return {k: dict(v) for k, v in by.items() if len(v) > 1}
