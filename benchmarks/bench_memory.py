"""Peak RSS of loading + batched evaluation (+ a prefix-cached sweep of one block) vs the model's fp32 size.

Target: peak RSS <= 3x the fp32 size (tied weights counted once). Run it in a fresh process: ``ru_maxrss`` is a
process-lifetime peak.

    python benchmarks/bench_memory.py --model smollm2-135m --limit 16
"""

from __future__ import annotations

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=16)
    p.add_argument("--scheme", default="int4-g64-sym")
    args = p.parse_args()
    import torch  # noqa: F401  (count the framework in the baseline)

    from qdmodels.evaluation import evaluate
    from qdmodels.sensitivity import sweep_layers

    info = c.machine()
    base = c.peak_rss_bytes()
    lm = c.load(args.model)
    after_load = c.peak_rss_bytes()
    its = c.items(args.langs, args.split, args.limit, args.data_dir)
    evaluate(lm, None, its, batch_size=args.batch_size, progress=False)
    after_eval = c.peak_rss_bytes()
    sweep_layers(lm, its, args.scheme, layers=[0], n_resamples=0, batch_size=args.batch_size, progress=False)
    after_sweep = c.peak_rss_bytes()
    fp32 = int(lm.ref.n_params) * 4
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "items": len(its),
        "batch_size": args.batch_size, "fp32_bytes": fp32, "peak_rss_import_bytes": base,
        "peak_rss_after_load_bytes": after_load, "peak_rss_after_eval_bytes": after_eval,
        "peak_rss_after_sweep_bytes": after_sweep, "ratio_peak_to_fp32": after_sweep / fp32,
        "ratio_after_load_to_fp32": after_load / fp32, "target_ratio": 3.0, **info,
    }
    mb = 1 << 20
    print(f"fp32 size {fp32 / mb:.0f} MiB; peak RSS: import {base / mb:.0f}, load {after_load / mb:.0f}, "
          f"eval {after_eval / mb:.0f}, sweep {after_sweep / mb:.0f} MiB -> {after_sweep / fp32:.2f}x fp32 (target <= 3x)")
    c.write("bench_memory", result, args.out)


if __name__ == "__main__":
    main()
