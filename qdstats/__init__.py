"""qdstats: statistics for quantization-disparity measurements (never imports torch or transformers).

The main public API is available at the top level and imported lazily (PEP 562 module ``__getattr__``),
so ``import qdstats`` stays fast and pulls in neither scipy/statsmodels nor anything from ``qdmodels``
until a function is used::

    >>> import qdstats
    >>> res = qdstats.corr([1.0, 2.0, 3.0, 4.0, 5.0], [1.1, 1.9, 3.2, 3.9, 5.3])
    >>> res.estimate_name
    'r'

Randomness: every resampling procedure takes ``rng=`` (an int seed or a ``numpy.random.Generator``) and
records an int seed in ``details['rng_seed']``. As in scipy, the default ``rng=None`` of the statistics
functions draws fresh OS entropy, so their bootstrap CIs and Monte-Carlo p-values are NOT reproducible
unless a seed is passed; the claims engine (spec ``seed``) and ``qd report`` (``rng=0``) always pass one.
Closed-form results (correlation p-values and Fisher-z CIs, VIF, Holm/BH, mixed models) do not depend on it.

Submodules: :mod:`qdstats.correlation`, :mod:`qdstats.collinearity`, :mod:`qdstats.multiplicity`,
:mod:`qdstats.resampling`, :mod:`qdstats.disparity`, :mod:`qdstats.within`, :mod:`qdstats.records`,
:mod:`qdstats.quantities`, :mod:`qdstats.claims`, :mod:`qdstats.report`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from qdstats.records.provenance import package_version as _pv

__version__ = _pv()

#: public name -> submodule that defines it (imported on first access).
_LAZY: dict[str, str] = {
    # correlation
    "corr": "qdstats.correlation",
    "partial_corr": "qdstats.correlation",
    "semipartial_corr": "qdstats.correlation",
    "fisher_z_ci": "qdstats.correlation",
    "fisher_z_se": "qdstats.correlation",
    "CorrelationResult": "qdstats.correlation",
    # collinearity
    "vif": "qdstats.collinearity",
    "condition_number": "qdstats.collinearity",
    "VIFResult": "qdstats.collinearity",
    "ConditionNumberResult": "qdstats.collinearity",
    "CollinearityWarning": "qdstats.collinearity",
    # multiplicity
    "adjust_pvalues": "qdstats.multiplicity",
    "AdjustedPValues": "qdstats.multiplicity",
    # resampling
    "Bootstrap": "qdstats.resampling",
    "bootstrap_ci": "qdstats.resampling",
    "cluster_bootstrap_ci": "qdstats.resampling",
    "paired_permutation_test": "qdstats.resampling",
    "permutation_test_two_groups": "qdstats.resampling",
    "BootstrapResult": "qdstats.resampling",
    "PermutationResult": "qdstats.resampling",
    # disparity
    "degradation": "qdstats.disparity",
    "disparity_ratio": "qdstats.disparity",
    "diff_in_diff": "qdstats.disparity",
    "DisparityResult": "qdstats.disparity",
    "LanguageEstimate": "qdstats.disparity",
    # within-language
    "corr_by_group": "qdstats.within",
    "pooled_within_corr": "qdstats.within",
    "rm_corr": "qdstats.within",
    "mixed_slope": "qdstats.within",
    "GroupCorrelationTable": "qdstats.within",
    "MixedModelResult": "qdstats.within",
    # results and warnings
    "StatResult": "qdstats.results",
    "ConfidenceInterval": "qdstats.results",
    "DegenerateDataWarning": "qdstats.validation",
    "SmallSampleWarning": "qdstats.validation",
    "UnknownNameError": "qdstats.validation",
}

__all__ = [
    "AdjustedPValues",
    "Bootstrap",
    "BootstrapResult",
    "CollinearityWarning",
    "ConditionNumberResult",
    "ConfidenceInterval",
    "CorrelationResult",
    "DegenerateDataWarning",
    "DisparityResult",
    "GroupCorrelationTable",
    "LanguageEstimate",
    "MixedModelResult",
    "PermutationResult",
    "SmallSampleWarning",
    "StatResult",
    "UnknownNameError",
    "VIFResult",
    "__version__",
    "adjust_pvalues",
    "bootstrap_ci",
    "cluster_bootstrap_ci",
    "condition_number",
    "corr",
    "corr_by_group",
    "degradation",
    "diff_in_diff",
    "disparity_ratio",
    "fisher_z_ci",
    "fisher_z_se",
    "mixed_slope",
    "paired_permutation_test",
    "partial_corr",
    "permutation_test_two_groups",
    "pooled_within_corr",
    "rm_corr",
    "semipartial_corr",
    "vif",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qdstats' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # static type checkers and IDEs see the real names
    from qdstats.validation import (
        DegenerateDataWarning,
        SmallSampleWarning,
        UnknownNameError,
    )
    from qdstats.collinearity import (
        CollinearityWarning,
        ConditionNumberResult,
        VIFResult,
        condition_number,
        vif,
    )
    from qdstats.correlation import (
        CorrelationResult,
        corr,
        fisher_z_ci,
        fisher_z_se,
        partial_corr,
        semipartial_corr,
    )
    from qdstats.disparity import (
        DisparityResult,
        LanguageEstimate,
        degradation,
        diff_in_diff,
        disparity_ratio,
    )
    from qdstats.multiplicity import AdjustedPValues, adjust_pvalues
    from qdstats.resampling import (
        Bootstrap,
        BootstrapResult,
        PermutationResult,
        bootstrap_ci,
        cluster_bootstrap_ci,
        paired_permutation_test,
        permutation_test_two_groups,
    )
    from qdstats.results import ConfidenceInterval, StatResult
    from qdstats.within import (
        GroupCorrelationTable,
        MixedModelResult,
        corr_by_group,
        mixed_slope,
        pooled_within_corr,
        rm_corr,
    )
