"""Mechanisms: why a compressed model loses more on some languages.

* :mod:`~qdmodels.probes.weights`: weight statistics (exact kurtosis, outliers, super-weight candidates);
* :mod:`~qdmodels.probes.activations`: per-language activation statistics;
* :mod:`~qdmodels.probes.representation`: representation damage (linear CKA, token and word cosines);
* :mod:`~qdmodels.probes.ablation`: attention-head ablation (single-head importance, dose-response).

A new probe is a module here that takes a ``LoadedModel`` and items (:func:`qdmodels.runtime.resolve_model`,
:func:`qdmodels.runtime.flatten_items`), emits :class:`~qdstats.records.Measurement` records, and leaves
intervals and contrasts to :mod:`qdstats`.
"""

from qdmodels.probes.ablation import ablated, dose_response, head_importance
from qdmodels.probes.activations import activation_stats
from qdmodels.probes.representation import linear_cka, representation_damage
from qdmodels.probes.weights import tensor_stats, weight_stats

__all__ = [
    "ablated", "activation_stats", "dose_response", "head_importance", "linear_cka", "representation_damage",
    "tensor_stats", "weight_stats",
]
