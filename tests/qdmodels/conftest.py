"""Shared fixtures for qdmodels tests: tiny random models (session-scoped, read-only) and the real SmolLM2.

Tiny models are shared across tests: a test that modifies weights must restore them (use
``qdmodels.compress.rtn.quantized`` / ``qdmodels.compress.pruning.pruned``, which restore bit-exactly) or build its
own model with ``tiny_model(...)``. ``tiny_state_guard`` checks this after every test that uses a tiny fixture.
"""

from __future__ import annotations

import os

import pytest
import torch

from qdmodels.models.tiny import FAMILIES, tiny_model


@pytest.fixture(scope="session")
def tiny_models() -> dict:
    """Dict family -> LoadedModel for every supported family (built lazily, cached for the session)."""

    class _Lazy(dict):
        def __missing__(self, family: str):
            lm = tiny_model(family)  # type: ignore[arg-type]
            self[family] = lm
            return lm

    return _Lazy()


@pytest.fixture(scope="session", params=FAMILIES)
def tiny_any(request, tiny_models):
    """Parametrized over all families (session-scoped, read-only)."""
    return tiny_models[request.param]


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_models):
    return tiny_models["gpt2"]


@pytest.fixture(scope="session")
def tiny_llama(tiny_models):
    return tiny_models["llama"]


def _snapshot(lm) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in lm.model.state_dict().items()}


@pytest.fixture()
def tiny_state_guard(tiny_models):
    """Fail a test that leaves any session tiny model modified."""
    snaps = {f: _snapshot(lm) for f, lm in list(tiny_models.items())}
    yield
    for f, snap in snaps.items():
        cur = tiny_models[f].model.state_dict()
        changed = [k for k, v in snap.items() if not torch.equal(v, cur[k])]
        assert not changed, f"test modified the shared tiny {f} model: {changed[:5]}"


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct (dequantized Q4_1 GGUF) from the model cache; skips when absent.

    Loading takes ~20 s on 2 cores. Session-scoped and read-only: restore any change you make.
    """
    from qdmodels.models import zoo

    if os.environ.get("QD_SKIP_REAL_MODELS"):
        pytest.skip("QD_SKIP_REAL_MODELS is set")
    path = zoo.model_path("smollm2-135m")
    if not path.is_file():
        msg = f"SmolLM2 GGUF not in the model cache ({path}); run `qd models fetch smollm2-135m`"
        print(msg)
        pytest.skip(msg)
    from qdmodels.models.loading import load_model

    return load_model("smollm2-135m")
