"""Tokens/s of batched evaluation vs a naive per-sentence transformers loop, in the same run.

The naive loop is what most scripts do: for each sentence, ``ids = [BOS] + tokenizer(text)``,
``model(ids, labels=ids).loss * n_tokens``. Both paths score the same tokens; the script checks that their
summed NLLs agree and reports the speed ratio (target >= 2x) for fixed-size batches, token-budget batches
(``max_batch_tokens``) and, separately, bfloat16 autocast (a different numeric result, reported with its NLL
deviation, never used for records).

It also measures, in the same run, the machine's fp32 matrix-multiply throughput for every weight shape of the
model (a GEMM with 2,048 rows per distinct ``in x out`` shape, the output head included) and computes the time
the naive loop's matmuls would take if each ran at its shape's measured throughput (a shape-resolved roofline;
attention at the best measured rate). The ratio naive time / roofline time is the fp32 speed-up ceiling: a
batched fp32 evaluation performs the same matmuls, so it cannot beat the naive loop by more than that.

    python benchmarks/bench_eval.py --model smollm2-135m --limit 16
"""

from __future__ import annotations

import time

import numpy as np
import torch

import _common as c


def naive_loop(lm, items) -> tuple[list[float], int]:
    tok, model = lm.tokenizer, lm.model
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    nll, n_tok = [], 0
    with torch.no_grad():
        for it in items:
            ids = torch.tensor([[bos] + tok(it.text, add_special_tokens=False)["input_ids"]])
            out = model(input_ids=ids, labels=ids)
            n = ids.shape[1] - 1
            nll.append(float(out.loss) * n)
            n_tok += n
    return nll, n_tok


def gemm_gflops(k: int, n: int, rows: int = 2048, seconds: float = 2.0) -> float:
    """Sustained fp32 GFLOP/s of ``(rows x k) @ (k x n)`` on this machine (torch's threads)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(rows, k, generator=g), torch.randn(k, n, generator=g)
    a @ b  # warm-up
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2.0 * rows * k * n * reps / (time.perf_counter() - t0) / 1e9


def gemm_shapes(model) -> dict[tuple[int, int], int]:
    """``(in, out)`` of every matmul weight a forward pass uses (``nn.Linear``, GPT-2 ``Conv1D``, the output
    head), with how many layers have that shape; embeddings are lookups, not matmuls."""
    head = model.get_output_embeddings()
    out: dict[tuple[int, int], int] = {}
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            key = (m.in_features, m.out_features)
        elif type(m).__name__ == "Conv1D":  # transformers' GPT-2 Conv1D stores weight as (in, out)
            key = tuple(m.weight.shape)
        else:
            continue
        out[key] = out.get(key, 0) + 1
    if head is not None and not isinstance(head, torch.nn.Linear):
        key = (head.weight.shape[1], head.weight.shape[0])
        out[key] = out.get(key, 0) + 1
    return out


def roofline_seconds(model, seq_lens: list[int], seconds: float = 1.0) -> tuple[float, dict[str, float]]:
    """Seconds the naive loop's matmuls take at each shape's measured fp32 GEMM throughput (2,048 rows),
    attention scores and values at the best measured rate; also the GFLOP/s per ``in x out`` shape."""
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or cfg.n_embd
    n_layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    tokens = sum(seq_lens)
    shapes = gemm_shapes(model)
    rates = {k: gemm_gflops(k[0], k[1], seconds=seconds) for k in sorted(shapes)}
    t = sum(cnt * 2.0 * tokens * k[0] * k[1] / (rates[k] * 1e9) for k, cnt in shapes.items())
    t += n_layers * c.attention_flops(d, seq_lens) / (max(rates.values()) * 1e9)
    return t, {f"{k[0]}x{k[1]}": v for k, v in rates.items()}


def forward_flops(model, seq_lens: list[int]) -> float:
    """Matmul FLOPs of full forwards over sequences of the given lengths (2 x params x tokens for every 2-D
    weight, the output head at every position as ``labels=`` does, plus causal attention scores and values)."""
    cfg = model.config
    d = getattr(cfg, "hidden_size", None) or cfg.n_embd
    n_layers = getattr(cfg, "num_hidden_layers", None) or cfg.n_layer
    head = model.get_output_embeddings().weight
    mat = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "embed" not in n and p is not head)
    return 2.0 * (mat + head.numel()) * sum(seq_lens) + n_layers * c.attention_flops(d, seq_lens)


def float64_nll(lm, item) -> float:
    """Summed NLL of one item with every floating tensor of the model in float64 (our scoring path); the
    original float32 tensors are put back after (not copies: the same storage)."""
    from qdmodels.eval.scoring import evaluate

    import torch

    tensors = [*lm.model.parameters(), *lm.model.buffers()]
    saved = [t.data for t in tensors]
    try:
        for t in tensors:
            if t.is_floating_point():
                t.data = t.data.to(torch.float64)
        return evaluate(lm, None, [item], batch_size=1, progress=False).scores[0].nll_sum
    finally:
        for t, d in zip(tensors, saved):
            t.data = d


def padded(lm, its, batch_size: int, max_batch_tokens: int | None) -> tuple[int, int]:
    from qdmodels.runtime import context_token
    from qdmodels.eval.encoding import encode_items
    from qdmodels.eval.batching import make_batches

    enc = encode_items(lm.model, lm.tokenizer, its)
    bs = make_batches(enc, batch_size=batch_size, pad_id=context_token(lm.tokenizer)[0],
                      max_batch_tokens=max_batch_tokens)
    return sum(b.input_ids.numel() for b in bs), sum(len(e.input_ids) for e in enc)


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=16)
    p.add_argument("--batch-sizes", default="1,4,16", help="also time these batch sizes (comma-separated)")
    p.add_argument("--max-batch-tokens", type=int, default=1024, help="token budget of the token-budget variant")
    args = p.parse_args()
    from qdmodels.eval.scoring import evaluate

    info = c.machine()
    t0 = time.perf_counter()
    lm = c.load(args.model)
    load_s = time.perf_counter() - t0
    its = c.items(args.langs, args.split, args.limit, args.data_dir)
    evaluate(lm, None, its[:2], batch_size=2, progress=False)  # warm-up (allocator, kernels)
    naive_loop(lm, its[:2])
    variants = {
        "batched": dict(batch_size=args.batch_size),
        "token_budget": dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens),
        "bf16_token_budget": dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens,
                                  compute_dtype="bfloat16"),
    }
    times: dict[str, list[float]] = {k: [] for k in [*variants, "naive"]}
    results = {}
    for _ in range(2):  # alternate paths to spread machine-load drift over all of them
        for name, kw in variants.items():
            t = time.perf_counter()
            results[name] = evaluate(lm, None, its, progress=False, **kw)
            times[name].append(time.perf_counter() - t)
        t = time.perf_counter()
        nll_naive, n_tok = naive_loop(lm, its)
        times["naive"].append(time.perf_counter() - t)
    by_bs = {}
    for bs in [int(x) for x in args.batch_sizes.split(",") if x]:
        t = time.perf_counter()
        evaluate(lm, None, its, batch_size=bs, progress=False)
        by_bs[bs] = time.perf_counter() - t
    res = results["batched"]
    n_scored = sum(s.n_tokens for s in res.scores)
    assert n_scored == n_tok, "both paths must score the same tokens"
    nll_diff = {k: float(np.max(np.abs(np.array([s.nll_sum for s in r.scores]) - np.array(nll_naive))))
                for k, r in results.items()}
    best = {k: min(v) for k, v in times.items()}
    t_n = best["naive"]
    seq_lens = [s.n_tokens + 1 for s in res.scores]
    flops = forward_flops(lm.model, seq_lens)
    roof_s, rates = roofline_seconds(lm.model, seq_lens)
    naive_gflops = flops / t_n / 1e9
    worst = int(np.argmax(np.abs(np.array([s.nll_sum for s in res.scores]) - np.array(nll_naive))))
    ref64 = float64_nll(lm, its[worst])
    pad = {"fixed": padded(lm, its, args.batch_size, None),
           "token_budget": padded(lm, its, args.batch_size, args.max_batch_tokens)}
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "languages": args.langs,
        "items": len(its), "tokens": n_scored, "batch_size": args.batch_size,
        "max_batch_tokens": args.max_batch_tokens, "load_s": load_s, "seconds": times, "best_s": best,
        "naive_tokens_per_s": n_scored / t_n,
        "speedup": {k: t_n / v for k, v in best.items() if k != "naive"}, "target_speedup": 2.0,
        "max_abs_nll_diff_nats_vs_naive": nll_diff,
        "padded_positions": {k: v[0] for k, v in pad.items()}, "real_positions": pad["fixed"][1],
        "gemm_fp32_gflops_by_shape": rates, "naive_gflops": naive_gflops, "roofline_s": roof_s,
        "largest_gap_item": {"item_id": its[worst].item_id, "language": its[worst].language,
                             "n_tokens": res.scores[worst].n_tokens, "nll_float64": ref64,
                             "batched_minus_float64": res.scores[worst].nll_sum - ref64,
                             "naive_minus_float64": nll_naive[worst] - ref64},
        "fp32_speedup_ceiling": t_n / roof_s,
        "seconds_by_batch_size": by_bs, "speedup_by_batch_size": {k: t_n / v for k, v in by_bs.items()}, **info,
    }
    print(f"{len(its)} items, {n_scored} tokens; naive loop {n_scored / t_n:.1f} tok/s = {naive_gflops:.1f} GFLOP/s "
          f"; fp32 GEMM rate by in x out shape: "
          + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
          + f"; shape-resolved roofline {roof_s:.2f} s vs naive {t_n:.2f} s: fp32 speed-up ceiling {t_n / roof_s:.2f}x")
    for k, v in result["speedup"].items():
        print(f"  {k:18s} speed-up {v:.2f}x (target >= 2x); max |ΔNLL| vs naive {nll_diff[k]:.2e} nats")
    print(f"  largest gap ({its[worst].item_id}, {res.scores[worst].n_tokens} tokens) vs float64: batched "
          f"{res.scores[worst].nll_sum - ref64:+.2e}, naive {nll_naive[worst] - ref64:+.2e} nats")
    print(f"  padded positions: fixed batches {pad['fixed'][0]}, token budget {pad['token_budget'][0]} "
          f"(real {pad['fixed'][1]})")
    print("  speed-up by batch size: " + ", ".join(f"{k}: {t_n / v:.2f}x" for k, v in by_bs.items()))
    c.write("bench_eval", result, args.out)


if __name__ == "__main__":
    main()
