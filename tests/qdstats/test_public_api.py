"""The top-level ``qdstats`` namespace: every exported name resolves, and the exports are lazy."""

from __future__ import annotations

import subprocess
import sys

import pytest

import qdstats

MAIN_API = ["corr", "partial_corr", "semipartial_corr", "vif", "condition_number", "adjust_pvalues", "bootstrap_ci",
            "cluster_bootstrap_ci", "paired_permutation_test", "permutation_test_two_groups", "degradation",
            "disparity_ratio", "diff_in_diff", "corr_by_group", "pooled_within_corr", "rm_corr", "mixed_slope",
            "StatResult", "ConfidenceInterval", "CorrelationResult", "VIFResult", "AdjustedPValues", "BootstrapResult",
            "PermutationResult", "DisparityResult", "MixedModelResult"]


def test_all_lists_exactly_the_lazy_names():
    assert set(qdstats.__all__) == {"__version__", *qdstats._LAZY}
    assert set(MAIN_API) <= set(qdstats.__all__)


@pytest.mark.parametrize("name", sorted(qdstats._LAZY))
def test_every_export_is_the_submodule_object(name):
    import importlib

    assert getattr(qdstats, name) is getattr(importlib.import_module(qdstats._LAZY[name]), name)


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'corrr'"):
        qdstats.corrr  # noqa: B018


def test_import_is_lazy_and_torch_free():
    """``import qdstats`` must not pull in scipy/statsmodels (lazy exports) nor torch/transformers/qdmodels;
    using one export then imports its submodule only."""
    code = ("import sys, qdstats; heavy = [m for m in ('scipy', 'statsmodels', 'torch', 'transformers', 'qdmodels') "
            "if m in sys.modules]; qdstats.adjust_pvalues; "
            "print(heavy, 'qdstats.multiplicity' in sys.modules, 'qdstats.within' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[] True False"
