"""Shared helpers for the sweep-job tests: small inline specs on tiny models (seconds, no data files)."""

from __future__ import annotations

from typing import Any

import pytest

from qdmodels.jobs import SweepSpec

TEXTS: dict[str, list[str]] = {
    "eng_Latn": ["The quick brown fox jumps.", "Quantization hurts some languages.", "Hello there, world."],
    "heb_Hebr": ["השועל החום המהיר קופץ.", "בבית הספר לומדים עברית.", "שלום עולם."],
}
#: A text longer than the tiny models' 256 positions: every job of this language raises in encode_items.
TOO_LONG = {"fin_Latn": ["a " * 400]}


def make_spec(**kw: Any) -> SweepSpec:
    base: dict[str, Any] = {"name": "tiny-sweep", "models": ["tiny:gpt2"], "corpus": "inline", "texts": TEXTS,
                                "schemes": ["int4-g16-sym", "int3-ch-sym"], "protect": ["none", "layers=0"], "batch_size": 2}
    base.update(kw)
    return SweepSpec(**base)


def content_keys(records: list[Any]) -> list[str]:
    return sorted(r.content_key() for r in records if hasattr(r, "content_key"))


@pytest.fixture()
def spec() -> SweepSpec:
    return make_spec()
