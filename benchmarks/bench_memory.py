"""Peak RSS of loading + batched evaluation at fp32 and with every block quantized (+ a prefix-cached sweep of
one block) vs the model's fp32 size.

Target: peak RSS <= 3x the fp32 size (tied weights counted once). Run it in a fresh process: ``ru_maxrss`` is a
process-lifetime peak. The quantized evaluation keeps a copy of the full-precision weights for the exact
restore: ``--backup disk`` (the default) keeps it in a temporary file, ``--backup memory`` in RAM.

    python benchmarks/bench_memory.py --model smollm2-135m --limit 16
"""

from __future__ import annotations

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=16)
    p.add_argument("--scheme", default="int4-g64-sym")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="token budget per batch (default: none)")
    p.add_argument("--backup", choices=["memory", "disk"], default="disk", help="where the restore copy lives")
    args = p.parse_args()
    import torch  # noqa: F401  (count the framework in the baseline)

    from qdmodels.eval.scoring import evaluate
    from qdmodels.compress.rtn import quantized
    from qdmodels.eval.sensitivity import sweep_layers

    info = c.machine()
    base = c.peak_rss_bytes()
    lm = c.load(args.model)
    after_load = c.peak_rss_bytes()
    its = c.items(args.langs, args.split, args.limit, args.data_dir)
    kw = dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens, progress=False)
    evaluate(lm, None, its, **kw)
    after_eval = c.peak_rss_bytes()
    with quantized(lm.model, args.scheme, backup=args.backup):
        evaluate(lm, None, its, **kw)
    after_quant = c.peak_rss_bytes()
    sweep_layers(lm, its, args.scheme, layers=[0], n_resamples=0, batch_size=args.batch_size, progress=False)
    after_sweep = c.peak_rss_bytes()
    fp32 = int(lm.ref.n_params) * 4
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "items": len(its),
        "batch_size": args.batch_size, "max_batch_tokens": args.max_batch_tokens, "backup": args.backup,
        "scheme": args.scheme, "fp32_bytes": fp32, "peak_rss_import_bytes": base,
        "peak_rss_after_load_bytes": after_load, "peak_rss_after_eval_bytes": after_eval,
        "peak_rss_after_quantized_eval_bytes": after_quant,
        "peak_rss_after_sweep_bytes": after_sweep, "ratio_peak_to_fp32": after_sweep / fp32,
        "ratio_after_load_to_fp32": after_load / fp32, "target_ratio": 3.0, **info,
    }
    mb = 1 << 20
    print(f"fp32 size {fp32 / mb:.0f} MiB; peak RSS: import {base / mb:.0f}, load {after_load / mb:.0f}, "
          f"eval {after_eval / mb:.0f}, quantized eval ({args.backup} backup) {after_quant / mb:.0f}, sweep {after_sweep / mb:.0f} MiB -> {after_sweep / fp32:.2f}x fp32 (target <= 3x)")
    c.write("bench_memory", result, args.out)


if __name__ == "__main__":
    main()
