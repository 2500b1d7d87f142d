"""Tokens/s of `evaluate` on a representative workload vs a naive per-sentence HF loop and lm-evaluation-harness.

Workload: ``--limit`` NTREX-128 sentences per language (default 40 x 8 languages = 320 sentences), spread over the
documents of ``--split`` (``sample='spread'``). Every path scores the same tokens (the context token, then every text
token) and the script checks that their summed NLLs agree:

* ``naive``: what most scripts do, per sentence ``ids = [BOS] + tokenizer(text)``, ``model(ids, labels=ids).loss * n``;
* ``defaults``: :func:`qdmodels.eval.scoring.evaluate` with its defaults (recorded in the result);
* ``fixed_batches``: ``batch_size=16``, no token budget;
* ``token_budget``: ``batch_size=16, max_batch_tokens=--max-batch-tokens``;
* ``bf16_token_budget``: the same under bfloat16 CPU autocast (a different numeric result: its NLL deviation is
  reported; allowed only for validated screening, see analyses/bf16_screening/);
* ``lm_eval``: lm-evaluation-harness (``HFLM(pretrained=<the same module>, batch_size=16).loglikelihood_rolling``)
  on the same sentences, when it is installed.

Paths alternate within each of ``--repeats`` rounds (spreading machine-load drift over all of them); the result
holds every time, the median and min/max per path, and the ratio naive / path per round (median and range). The
1-minute load average is recorded at the start and after every round: other processes on the machine slow every
path, so compare ratios, which are measured in the same round.

    python benchmarks/bench_eval.py --model smollm2-135m --limit 40 --repeats 3
"""

from __future__ import annotations

import os
import statistics
import time

import _common as c
import numpy as np
import torch

LANGS = "eng_Latn,deu_Latn,fin_Latn,tur_Latn,heb_Hebr,arb_Arab,kor_Hang,zho_Hans"


def naive_loop(lm, items) -> list[float]:
    tok, model = lm.tokenizer, lm.model
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    nll = []
    with torch.no_grad():
        for it in items:
            ids = torch.tensor([[bos] + tok(it.text, add_special_tokens=False)["input_ids"]])
            out = model(input_ids=ids, labels=ids)
            nll.append(float(out.loss) * (ids.shape[1] - 1))
    return nll


def lm_eval_runner(lm, batch_size: int):
    """A callable scoring texts with lm-evaluation-harness ``loglikelihood_rolling`` (None when not installed)."""
    try:
        import lm_eval
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except Exception as exc:  # noqa: BLE001 - report why the peer is missing
        return None, f"{type(exc).__name__}: {exc}"
    hf = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=batch_size, device="cpu")

    def run(items) -> list[float]:
        reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(it.text,), idx=i)
                for i, it in enumerate(items)]
        return [-float(x) for x in hf.loglikelihood_rolling(reqs, disable_tqdm=True)]

    return run, lm_eval.__version__ if hasattr(lm_eval, "__version__") else "installed"


def padded(lm, its, batch_size: int, max_batch_tokens: int | None) -> tuple[int, int]:
    from qdmodels.eval.batching import make_batches
    from qdmodels.eval.encoding import encode_items
    from qdmodels.runtime import context_token

    enc = encode_items(lm.model, lm.tokenizer, its)
    bs = make_batches(enc, batch_size=batch_size, pad_id=context_token(lm.tokenizer)[0],
                      max_batch_tokens=max_batch_tokens)
    return sum(b.input_ids.numel() for b in bs), sum(len(e.input_ids) for e in enc)


def _load1() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=40)
    p.set_defaults(langs=LANGS, split="all")
    p.add_argument("--repeats", type=int, default=3, help="rounds (every path once per round)")
    p.add_argument("--max-batch-tokens", type=int, default=1024, help="token budget of the token-budget variants")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-lm-eval", action="store_true", help="skip the lm-evaluation-harness peer")
    args = p.parse_args()
    import inspect

    from qdmodels.corpora.ntrex import load_ntrex
    from qdmodels.eval.scoring import evaluate

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = c.machine()
    t0 = time.perf_counter()
    lm = c.load(args.model)
    load_s = time.perf_counter() - t0
    pc = load_ntrex([x for x in args.langs.split(",") if x], split=args.split, limit=args.limit, sample="spread",
                    data_dir=args.data_dir)
    its = [it for v in pc.items.values() for it in v]
    defaults = {k: v.default for k, v in inspect.signature(evaluate).parameters.items()
                if k in ("batch_size", "max_batch_tokens", "compute_dtype")}
    variants = {
        "defaults": {},
        "fixed_batches": dict(batch_size=args.batch_size, max_batch_tokens=None),
        "token_budget": dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens),
        "bf16_token_budget": dict(batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens,
                                  compute_dtype="bfloat16"),
    }
    runners = {k: (lambda kw=kw: [s.nll_sum for s in evaluate(lm, None, its, progress=False, **kw).scores])
               for k, kw in variants.items()}
    runners["naive"] = lambda: naive_loop(lm, its)
    lm_eval_status = "skipped (--no-lm-eval)"
    if not args.no_lm_eval:
        run_le, lm_eval_status = lm_eval_runner(lm, 16)
        if run_le is not None:
            runners["lm_eval"] = lambda: run_le(its)
    # warm-up of every path on a few items (allocator, kernels, lazy imports)
    few = its[:: max(1, len(its) // 8)][:8]
    for kw in variants.values():
        evaluate(lm, None, few, progress=False, **kw)
    naive_loop(lm, few)
    times: dict[str, list[float]] = {k: [] for k in runners}
    nll: dict[str, list[float]] = {}
    load_rounds = []
    for _ in range(args.repeats):
        for name, fn in runners.items():
            t = time.perf_counter()
            nll[name] = fn()
            times[name].append(time.perf_counter() - t)
        load_rounds.append(_load1())
    enc_tokens = evaluate(lm, None, its[:1], progress=False).scores  # noqa: F841 - keeps the API warm; not timed
    n_tok = sum(s.n_tokens for s in evaluate(lm, None, its, progress=False).scores)
    ref = np.array(nll["naive"])
    total_ref = float(ref.sum())
    nll_dev = {k: {"max_abs_item_nats": float(np.max(np.abs(np.array(v) - ref))),
                   "total_rel": float((np.sum(v) - total_ref) / total_ref)} for k, v in nll.items() if k != "naive"}
    summary = {}
    for k, v in times.items():
        ratios = [n / t for n, t in zip(times["naive"], v)]
        summary[k] = {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v),
                      "tokens_per_s_median": n_tok / statistics.median(v),
                      "speedup_vs_naive_median": statistics.median(ratios),
                      "speedup_vs_naive_min": min(ratios), "speedup_vs_naive_max": max(ratios)}
    pad = {"fixed": padded(lm, its, args.batch_size, None),
           "token_budget": padded(lm, its, args.batch_size, args.max_batch_tokens)}
    result = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "languages": args.langs,
        "split": args.split, "sample": "spread", "limit_per_language": args.limit, "items": len(its),
        "documents": len({it.document_id for it in its}), "tokens": n_tok, "repeats": args.repeats,
        "batch_size": args.batch_size, "max_batch_tokens": args.max_batch_tokens, "evaluate_defaults": defaults,
        "lm_eval": lm_eval_status, "load_s": load_s, "seconds": times, "summary": summary,
        "nll_deviation_vs_naive": nll_dev, "padded_positions": {k: v[0] for k, v in pad.items()},
        "real_positions": pad["fixed"][1], "loadavg_1min_after_each_round": load_rounds, **info,
    }
    print(f"{len(its)} items ({result['documents']} documents), {n_tok} tokens, {args.repeats} rounds; load avg at start "
          f"{info['loadavg_1min_at_start']}, after rounds {load_rounds}; lm-eval: {lm_eval_status}")
    for k, s in summary.items():
        dev = nll_dev.get(k, {})
        print(f"  {k:18s} median {s['median_s']:7.2f} s  {s['tokens_per_s_median']:6.0f} tok/s  vs naive "
              f"{s['speedup_vs_naive_median']:.2f}x [{s['speedup_vs_naive_min']:.2f}, {s['speedup_vs_naive_max']:.2f}]"
              + (f"  max |ΔNLL| {dev['max_abs_item_nats']:.1e} nats, total rel {dev['total_rel']:+.1e}" if dev else ""))
    c.write("bench_eval", result, args.out)


if __name__ == "__main__":
    main()
