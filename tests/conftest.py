"""Root test configuration: fixed seeds and the deterministic hypothesis profile (as in scipy)."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "deterministic",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("QD_HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    random.seed(42)
    np.random.seed(42)


def pytest_collection_modifyitems(config, items):  # noqa: D103
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA (no GPU on this machine)")
    skip_hub = pytest.mark.skip(reason="needs the Hugging Face hub (never run in CI)")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
        if "hub" in item.keywords and not os.environ.get("QD_ALLOW_HUB"):
            item.add_marker(skip_hub)
