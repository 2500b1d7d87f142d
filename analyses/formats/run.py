"""Deployed quantization formats on the claims-table sentences: per-language damage at each format's storage cost.

Usage (the commands that made the committed records are in ``analyses/formats/README.md``):

    QD_DATA_DIR=../shared/data QD_FIXED_TIMESTAMP=2026-12-06T00:00:00+00:00 \\
        python analyses/formats/run.py --model smollm2-135m --formats gguf-q4_0,gguf-q8_0,int4-g32-sym

Each format is one condition built by :func:`qdmodels.compress.conditions.quant_condition` (so every key that
``--quant`` accepts works: ``gguf-<type>``, RTN ``intN-gG-sym``, the other registered backends), evaluated on the
same sentences as the claims table's H1 records (``analyses/seed_claims/run_records.py``: NTREX test, 200 sentences
per language spread over the test documents, eight languages) with the same batching, so every file pairs by item
with the committed ``eval_fp32.parquet`` of that model. One file per format,
``analyses/records/<model>/eval_<format>.parquet``, skipped when it exists (an interrupted run resumes at the next
format). The storage cost of each format (per-site bits per weight, scales included, and the fraction of weights it
changed; model-level bits per weight of the converted tensors and of the whole model) goes to
``analyses/records/<model>/bpw_<format>.parquet``, as the RTN steps of ``run_records.py`` do.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _run_records() -> Any:
    """The claims table's record script (its sentence selection, kept quantities and evaluation step)."""
    spec = importlib.util.spec_from_file_location("run_records", ROOT / "analyses" / "seed_claims" / "run_records.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _storage_records(reports: list[Any], model_ref: Any, cond: dict[str, Any]) -> list[Any]:
    """Every record of the condition's report (per-site bits per weight, fraction changed, relative error, and the
    model-level bits per weight of the converted tensors and of the whole model), under the step's condition."""
    from qdstats.records import Measurement

    out = []
    for report in reports:
        rep = getattr(report, "quantization", report)
        if rep is None or not hasattr(rep, "to_records"):
            continue
        for r in rep.to_records(model_ref):
            out.append(Measurement(**{**r.model_dump(exclude={"provenance"}), "condition": cond}))
    return out


def run_format(key: str, lm: Any, items: dict[str, list[Any]], rr: Any, out_dir: Path, batch_size: int) -> None:
    """Evaluate one format; write ``eval_<key>.parquet`` (per sentence) and ``bpw_<key>.parquet`` (storage)."""
    from qdmodels.compress.conditions import quant_condition
    from qdstats.records import write_parquet

    path = out_dir / f"eval_{rr.slug(key)}.parquet"
    if path.exists():
        print(f"{key}: already done ({path})", file=sys.stderr)
        return
    cond = quant_condition(key)
    if cond.check is not None:  # refuses a format that cannot apply before any scoring
        cond.check(lm.model)
    reports: list[Any] = []

    @contextlib.contextmanager
    def _apply(model: Any):  # noqa: ANN202
        with cond.apply(model) as rep:
            reports.append(rep)
            yield rep

    condition = dict(cond.condition)
    recs = rr.eval_step(lm, items, condition, _apply, batch_size, [])
    write_parquet(out_dir / f"bpw_{rr.slug(key)}.parquet", _storage_records(reports, lm.ref, condition))
    write_parquet(path, recs)  # atomic, and last: its presence marks the format done
    print(f"{key}: {len(recs)} eval records -> {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--formats", required=True, help="comma-separated condition keys (what --quant accepts)")
    ap.add_argument("--per-language", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=8, help="as run_records.py, so records pair with its fp32 file")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from qdmodels.cli._common import load as load_model

    rr = _run_records()
    out_dir = args.out_dir or ROOT / "analyses" / "records" / args.model
    out_dir.mkdir(parents=True, exist_ok=True)
    items = rr.load_items("test", args.per_language, rr.LANGS)
    lm = load_model(args.model, None)
    for key in [k.strip() for k in args.formats.split(",") if k.strip()]:
        t0 = time.time()
        run_format(key, lm, items, rr, out_dir, args.batch_size)
        print(f"[{key}] {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
