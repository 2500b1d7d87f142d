"""Deterministic dev/test splits by document.

Selection steps (thresholds, layer choices, calibration decisions) use ``dev``; reported numbers use ``test``.
Splitting by *document*, not by line, keeps sentences of one news story on one side, so dev decisions do not leak
into test through shared content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from qdstats.validation import check_option

__all__ = ["SPLIT_RULES", "SplitRule", "document_split"]

SplitRule = Literal["alternate", "hash"]
SPLIT_RULES: dict[str, str] = {
    "alternate": "alternate-v1: distinct document ids sorted (Python str order); index 0, 2, 4, ... -> dev, 1, 3, 5, ... -> test",
    "hash": "hash-v1: sha256('qd-split-v1:' + document id); first byte even -> dev, odd -> test",
}


def document_split(document_ids: Sequence[str], *, rule: SplitRule = "alternate") -> dict[str, Literal["dev", "test"]]:
    """Assign every distinct document id to ``'dev'`` or ``'test'``.

    Parameters
    ----------
    document_ids : sequence of str
        Document id of each item (repeats allowed; order does not matter).
    rule : {'alternate', 'hash'}
        ``'alternate'`` (default): sort the distinct ids, alternate dev/test, so the two halves differ by at most one
        document. ``'hash'``: sha256 of the id, independent of which other documents exist (stable if documents are
        added), but the halves are only balanced in expectation.

    Returns
    -------
    dict
        ``{document_id: 'dev' | 'test'}``.

    Raises
    ------
    ValueError
        Unknown ``rule``; empty ``document_ids``.

    Notes
    -----
    Validated against: properties in ``tests/qdmodels/corpora/test_splits.py`` (every document on exactly one side,
    independence of input order, balance within one document for 'alternate'); not independently validated.

    Examples
    --------
    >>> document_split(["b", "a", "c", "a"])
    {'a': 'dev', 'b': 'test', 'c': 'dev'}
    """
    check_option(rule, "rule", tuple(SPLIT_RULES))
    docs = sorted(set(document_ids))
    if not docs:
        raise ValueError("`document_ids` must not be empty.")
    if rule == "alternate":
        return {d: ("dev" if i % 2 == 0 else "test") for i, d in enumerate(docs)}
    return {d: ("dev" if hashlib.sha256(f"qd-split-v1:{d}".encode()).digest()[0] % 2 == 0 else "test") for d in docs}
