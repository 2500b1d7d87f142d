"""Cost of the per-layer sensitivity proxies vs a full single-layer sweep (same model, items, layers), one run.

Times output_error_proxies, fisher_proxies and sweep_layers (prefix-cached, no bootstrap) on identical items,
reports the sweep / proxy time ratios and the proxies' Spearman rho with the measured Δ bits per byte
(a screening check, not a replacement for the measurement), and writes a JSON result.

    python benchmarks/bench_proxies.py --model smollm2-135m --limit 4 --split dev
    python benchmarks/bench_proxies.py --model tiny:llama --limit 4 --split dev   # smoke run
"""

from __future__ import annotations

import time

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=4)
    p.add_argument("--scheme", default="int4-g64-sym")
    args = p.parse_args()
    if args.split == "test":
        p.error("use --split dev: proxies are a selection tool and never look at the test split")
    from qdmodels.eval.proxies import fisher_proxies, output_error_proxies, validate_proxies
    from qdmodels.models.blocks import decoder_layers
    from qdmodels.eval.sensitivity import sweep_layers

    info = c.machine()
    lm = c.load(args.model)
    its = c.items(args.langs, args.split, args.limit, args.data_dir)
    n_layers = len(decoder_layers(lm.model))
    output_error_proxies(lm, its[:1], args.scheme, layers=[0], batch_size=args.batch_size)  # warm-up
    times = {}
    t = time.perf_counter()
    rec_out = output_error_proxies(lm, its, args.scheme, batch_size=args.batch_size)
    times["output_error_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rec_fis = fisher_proxies(lm, its, args.scheme, batch_size=args.batch_size)
    times["fisher_s"] = time.perf_counter() - t
    t = time.perf_counter()
    sw = sweep_layers(lm, its, args.scheme, n_resamples=0, batch_size=args.batch_size, progress=False)
    times["sweep_s"] = time.perf_counter() - t
    val = validate_proxies(rec_out + rec_fis, sw.records)
    rhos = [{"language": r.language, "proxy": r.condition["proxy"], "rho": r.value, "ci_low": r.attributes.get("ci_low"),
             "ci_high": r.attributes.get("ci_high"), "n_layers": r.n} for r in val]
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "scheme": args.scheme,
        "languages": args.langs, "split": args.split, "items": len(its), "n_layers": n_layers, **times,
        "ratio_sweep_over_output_error": times["sweep_s"] / times["output_error_s"],
        "ratio_sweep_over_fisher": times["sweep_s"] / times["fisher_s"],
        "ratio_sweep_over_both": times["sweep_s"] / (times["output_error_s"] + times["fisher_s"]),
        "rank_correlations": rhos, **info,
    }
    print(f"{n_layers} layers x {len(its)} items: output-error {times['output_error_s']:.1f}s, fisher "
          f"{times['fisher_s']:.1f}s, sweep {times['sweep_s']:.1f}s; sweep/both = {result['ratio_sweep_over_both']:.2f}x")
    for r in rhos:
        print(f"  {r['language']} {r['proxy']}: rho={r['rho']:.3f} [{r['ci_low']}, {r['ci_high']}] n={r['n_layers']}")
    c.write("bench_proxies", result, args.out)


if __name__ == "__main__":
    main()
