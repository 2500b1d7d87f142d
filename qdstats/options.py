"""Shared option types (``Literal`` aliases) used across :mod:`qdstats`.

Every public function that takes one of these options validates it at run time with
:func:`qdstats.validation.check_option`, so a typo gets a did-you-mean error naming the parameter.
"""

from __future__ import annotations

from typing import Literal, get_args

Alternative = Literal["two-sided", "less", "greater"]
NanPolicy = Literal["raise", "omit", "propagate"]
CorrMethod = Literal["pearson", "spearman", "kendall"]
BootstrapKind = Literal["percentile", "basic", "bca"]
AdjustMethod = Literal["holm", "fdr_bh", "bonferroni"]

ALTERNATIVES: tuple[str, ...] = get_args(Alternative)
NAN_POLICIES: tuple[str, ...] = get_args(NanPolicy)
CORR_METHODS: tuple[str, ...] = get_args(CorrMethod)
BOOTSTRAP_KINDS: tuple[str, ...] = get_args(BootstrapKind)
ADJUST_METHODS: tuple[str, ...] = get_args(AdjustMethod)
