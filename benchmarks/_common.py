"""Shared helpers for the benchmark scripts (not tests: they print ratios and write a JSON result)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str, *, limit: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model", default="smollm2-135m", help="load_model name, or tiny:<family> for a smoke run")
    p.add_argument("--langs", default="eng_Latn,heb_Hebr,zho_Hans", help="NTREX languages (comma-separated)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=limit, help="items per language")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--data-dir", default=os.environ.get("QD_DATA_DIR"))
    p.add_argument("--out", type=Path, default=None, help="JSON result file (default benchmarks/results/<name>.json)")
    return p


def load(model: str) -> Any:
    if model.startswith("tiny:"):
        from qdmodels.models.tiny import tiny_model

        return tiny_model(model.split(":", 1)[1], n_layers=4)
    from qdmodels.models.loading import load_model

    return load_model(model)


def items(langs: str, split: str, limit: int, data_dir: str | None) -> list[Any]:
    from qdmodels.corpora.ntrex import load_ntrex

    pc = load_ntrex([x for x in langs.split(",") if x], split=split, limit=limit, data_dir=data_dir)  # type: ignore[arg-type]
    return [it for v in pc.items.values() for it in v]


def attention_flops(d_model: int, seq_lens: list[int]) -> float:
    """Matmul FLOPs of causal attention scores and values in one block over sequences of these lengths."""
    return sum(2 * 2 * d_model * L * (L + 1) / 2 for L in seq_lens)


def ru_maxrss_bytes(who: int) -> int:
    """Peak resident set size of ``resource.RUSAGE_SELF`` or ``RUSAGE_CHILDREN`` (Linux reports KiB)."""
    r = resource.getrusage(who).ru_maxrss
    return int(r * 1024) if sys.platform != "darwin" else int(r)


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far."""
    return ru_maxrss_bytes(resource.RUSAGE_SELF)


def machine() -> dict[str, Any]:
    import torch

    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    return {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "loadavg_1min_at_start": load1}


def write(name: str, result: dict[str, Any], out: Path | None) -> Path:
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **result}
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {path}")
    return path
