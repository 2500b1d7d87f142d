"""Layer sweep with vs without prefix caching (same items, same layers, same numbers), in the same run.

Target: prefix caching >= 1.6x faster. Both runs quantize one block at a time with the same scheme; the
script checks that the Δ bits per byte agree within 1e-5.

The script also reports the FLOP ceiling of prefix caching for the swept layers: the cached path still runs
every block from the changed one on plus the output head (a log-softmax over the whole vocabulary at every
scored position), so with a large vocabulary no cache can save more than the blocks before the changed one.

    python benchmarks/bench_sweep.py --model smollm2-135m --limit 4 --layer-step 3
"""

from __future__ import annotations

import time

import numpy as np

import _common as c


def flop_ceiling(model, seq_lens: list[int], layers: list[int], n_layers: int) -> float:
    """Naive / cached matmul FLOPs of the sweep: one full-precision pass plus, per swept layer, a full forward
    (naive) or the blocks from that layer on (cached); the output head at every scored position in both."""
    from qdmodels.models.blocks import decoder_layers

    blocks = decoder_layers(model)
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or cfg.n_embd
    tokens = sum(seq_lens)
    attn = c.attention_flops(d, seq_lens)
    per_block = [2.0 * sum(p.numel() for p in b.parameters() if p.ndim == 2) * tokens + attn for b in blocks]
    head = 2.0 * model.get_output_embeddings().weight.numel() * (tokens - len(seq_lens))
    full = sum(per_block) + head
    naive = full * (1 + len(layers))
    cached = full + sum(sum(per_block[l:]) + head for l in layers)
    return naive / cached


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=4)
    p.add_argument("--scheme", default="int4-g64-sym")
    p.add_argument("--layer-step", type=int, default=3, help="sweep every k-th block (the mean saving is kept)")
    args = p.parse_args()
    from qdmodels.models.blocks import decoder_layers
    from qdmodels.eval.sensitivity import sweep_layers

    info = c.machine()
    lm = c.load(args.model)
    its = c.items(args.langs, args.split, args.limit, args.data_dir)
    n_layers = len(decoder_layers(lm.model))
    layers = list(range(0, n_layers, args.layer_step))
    kw = dict(layers=layers, n_resamples=0, batch_size=args.batch_size, progress=False)
    sweep_layers(lm, its[:1], args.scheme, prefix_cache=True, **{**kw, "layers": layers[:1]})  # warm-up
    sweep_layers(lm, its[:1], args.scheme, prefix_cache=False, **{**kw, "layers": layers[:1]})
    times = {}
    frames = {}
    for cached in (True, False):
        t = time.perf_counter()
        res = sweep_layers(lm, its, args.scheme, prefix_cache=cached, **kw)
        times[cached] = time.perf_counter() - t
        failed = [r for r in res.records if getattr(r, "success", True) is False]
        if failed:
            raise SystemExit(f"{len(failed)} sweep units failed, e.g. {failed[0].error.message}")
        frames[cached] = res.frame()
    from qdmodels.eval.encoding import encode_items

    seq_lens = [len(e.input_ids) for e in encode_items(lm.model, lm.tokenizer, its)]
    ceiling = flop_ceiling(lm.model, seq_lens, layers, n_layers)
    diff = float(np.max(np.abs(frames[True]["delta_bpb"].to_numpy() - frames[False]["delta_bpb"].to_numpy())))
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "scheme": args.scheme,
        "languages": args.langs, "items": len(its), "n_layers": n_layers, "layers_swept": layers,
        "cached_s": times[True], "naive_s": times[False], "speedup": times[False] / times[True],
        "target_speedup": 1.6, "flop_ceiling_speedup": ceiling, "max_abs_delta_bpb_diff": diff, **info,
    }
    print(f"{len(layers)} of {n_layers} blocks x {len(its)} items: cached {times[True]:.1f}s, naive {times[False]:.1f}s, "
          f"speed-up {times[False] / times[True]:.2f}x (target >= 1.6x; FLOP ceiling for these layers {ceiling:.2f}x); "
          f"max |Δ diff| {diff:.2e} bit/byte")
    c.write("bench_sweep", result, args.out)


if __name__ == "__main__":
    main()
