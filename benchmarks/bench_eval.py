"""Tokens/s of batched evaluation vs a naive per-sentence transformers loop, in the same run.

The naive loop is what most scripts do: for each sentence, ``ids = [BOS] + tokenizer(text)``,
``model(ids, labels=ids).loss * n_tokens``. Both paths score the same tokens; the script checks that their
summed NLLs agree and reports the speed ratio (target >= 2x).

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


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=16)
    p.add_argument("--batch-sizes", default="1,4,16", help="also time these batch sizes (comma-separated)")
    args = p.parse_args()
    from qdmodels.evaluation import evaluate

    info = c.machine()
    t0 = time.perf_counter()
    lm = c.load(args.model)
    load_s = time.perf_counter() - t0
    its = c.items(args.langs, args.split, args.limit, args.data_dir)
    evaluate(lm, None, its[:2], batch_size=2, progress=False)  # warm-up (allocator, kernels)
    naive_loop(lm, its[:2])
    rounds = []
    for _ in range(2):  # alternate the order to spread machine-load drift over both paths
        t = time.perf_counter()
        res = evaluate(lm, None, its, batch_size=args.batch_size, progress=False)
        t_b = time.perf_counter() - t
        t = time.perf_counter()
        nll_naive, n_tok = naive_loop(lm, its)
        t_n = time.perf_counter() - t
        rounds.append((t_b, t_n))
    by_bs = {}
    for bs in [int(x) for x in args.batch_sizes.split(",") if x]:
        t = time.perf_counter()
        evaluate(lm, None, its, batch_size=bs, progress=False)
        by_bs[bs] = time.perf_counter() - t
    n_scored = sum(s.n_tokens for s in res.scores)
    assert n_scored == n_tok, "both paths must score the same tokens"
    max_diff = float(np.max(np.abs(np.array([s.nll_sum for s in res.scores]) - np.array(nll_naive))))
    t_b = min(r[0] for r in rounds)
    t_n = min(r[1] for r in rounds)
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "languages": args.langs,
        "items": len(its), "tokens": n_scored, "batch_size": args.batch_size, "load_s": load_s,
        "batched_s": t_b, "naive_s": t_n, "rounds": rounds,
        "batched_tokens_per_s": n_scored / t_b, "naive_tokens_per_s": n_scored / t_n,
        "speedup": t_n / t_b, "target_speedup": 2.0,
        "seconds_by_batch_size": by_bs, "speedup_by_batch_size": {k: t_n / v for k, v in by_bs.items()}, "max_abs_nll_diff_nats": max_diff, **info,
    }
    print(f"{len(its)} items, {n_scored} tokens: batched {n_scored / t_b:.1f} tok/s, naive {n_scored / t_n:.1f} tok/s, "
          f"speed-up {t_n / t_b:.2f}x (target >= 2x); max |ΔNLL| {max_diff:.2e} nats")
    print("speed-up by batch size: " + ", ".join(f"{k}: {t_n / v:.2f}x" for k, v in by_bs.items()))
    c.write("bench_eval", result, args.out)


if __name__ == "__main__":
    main()
