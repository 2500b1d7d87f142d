"""Root test configuration: fixed seeds and the deterministic hypothesis profile (as in scipy)."""

from __future__ import annotations

import os
import random
from pathlib import Path

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


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real data directory from ``QD_DATA_DIR``; skip with the reason when it is unset or missing."""
    env = os.environ.get("QD_DATA_DIR")
    if not env:
        reason = "QD_DATA_DIR is unset; integration tests need the real data directory (CI sets ../shared/data)"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    p = Path(env).expanduser().resolve()
    if not (p / "MANIFEST.tsv").is_file():
        reason = f"QD_DATA_DIR={env!r} does not exist or has no MANIFEST.tsv"
        print(f"SKIP: {reason}")
        pytest.skip(reason)
    return p


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
