"""How far bf16-computed Δ and DiD are from fp32-computed ones, per language and scheme (issue 18, bf16 screening).

For one model, the same NTREX-128 items (``--limit`` per language, spread over the documents of ``--split``) are
scored under fp32 and under RTN int8/int4/int3 (g64, symmetric), once with fp32 compute and once with bf16 CPU
autocast (:func:`qdmodels.eval.scoring.evaluate_conditions`, ``compute_dtype``). Per compute dtype, scheme and
language it computes Δ (:func:`qdstats.disparity.degradation`) and DiD vs English
(:func:`qdstats.disparity.diff_in_diff`), clustered by NTREX document, with the same seeds, and compares:

    error_l = |estimate_bf16 - estimate_fp32|,   ratio_l = error_l / half-width of the fp32 95% CI.

A (model, scheme) pair is *validated for bf16 screening* when ``max_l ratio_l < --fraction`` for both Δ and DiD.

    python analyses/bf16_screening/run.py --model smollm2-135m          # writes runs/smollm2-135m.json
    python analyses/bf16_screening/run.py --collect                     # result.json + summary.md from runs/*.json

``--collect`` also writes the verdicts that :mod:`qdmodels.jobs.bf16` reads (``qdmodels/jobs/bf16_validation.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LANGS = ("eng_Latn", "deu_Latn", "fin_Latn", "tur_Latn", "heb_Hebr", "arb_Arab", "kor_Hang", "zho_Hans")
SCHEMES = ("int8-g64-sym", "int4-g64-sym", "int3-g64-sym")
PACKAGE_FILE = ROOT / "qdmodels" / "jobs" / "bf16_validation.json"


def measure(args: argparse.Namespace) -> Path:
    import numpy as np
    import pandas as pd
    import torch

    from qdmodels.corpora.ntrex import load_ntrex
    from qdmodels.eval.scoring import evaluate_conditions
    from qdmodels.models.loading import load_model
    from qdstats.disparity import degradation, diff_in_diff
    from qdstats.records import paired_frame

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    load1 = os.getloadavg()[0]
    t0 = time.perf_counter()
    lm = load_model(args.model)
    pc = load_ntrex(list(LANGS), split=args.split, limit=args.limit, sample="spread", data_dir=os.environ.get("QD_DATA_DIR"))
    items = [it for v in pc.items.values() for it in v]
    frames, seconds, records_by_dtype = {}, {}, {}
    for dtype in ("float32", "bfloat16"):
        t = time.perf_counter()
        res = evaluate_conditions(lm, items, ["fp32", *SCHEMES], batch_size=16, max_batch_tokens=1024,
                                  compute_dtype=dtype, progress=False)
        seconds[dtype] = time.perf_counter() - t
        recs = [r for er in res.values() for r in er.records]
        assert {r.attributes["compute_dtype"] for r in recs} == {dtype}
        records_by_dtype[dtype] = recs
        frames[dtype] = paired_frame(recs)
    rows = []
    for scheme in SCHEMES:
        est = {}
        for dtype, pf in frames.items():
            sub = pf[pf["scheme"] == scheme]
            kw = dict(cluster="document_id", kind="percentile", n_resamples=args.n_resamples, rng=0)
            est[dtype] = (degradation(sub, **kw).to_frame(),
                          diff_in_diff(sub, reference="eng_Latn", permutation=False, **kw).to_frame())
        for k, measure_name in enumerate(("delta", "did")):
            f32, b16 = est["float32"][k], est["bfloat16"][k]
            for lang in LANGS:
                if measure_name == "did" and lang == "eng_Latn":
                    continue
                half = float(f32.loc[lang, "ci_high"] - f32.loc[lang, "ci_low"]) / 2
                err = abs(float(b16.loc[lang, "estimate"] - f32.loc[lang, "estimate"]))
                rows.append({"model": args.model, "scheme": scheme, "measure": measure_name, "language": lang,
                             "estimate_fp32": float(f32.loc[lang, "estimate"]),
                             "estimate_bf16": float(b16.loc[lang, "estimate"]), "abs_error": err,
                             "ci_half_width_fp32": half, "ratio": err / half, "n_items": int(f32.loc[lang, "n"])})
    # item-level agreement of the baseline itself (bits per byte, fp32 condition)
    base = {dtype: pf.drop_duplicates(["language", "item_id"]).set_index(["language", "item_id"])["full"]
            for dtype, pf in frames.items()}
    diff = (base["bfloat16"] - base["float32"].reindex(base["bfloat16"].index)).to_numpy()
    out = {
        "model": args.model, "model_ref": lm.ref.model_dump(mode="json"), "languages": list(LANGS),
        "schemes": list(SCHEMES), "split": args.split, "limit_per_language": args.limit, "sample": "spread",
        "n_items": len(items), "n_documents": int(pd.Series([it.document_id for it in items]).nunique()),
        "ci": {"method": "percentile cluster bootstrap (NTREX documents)", "level": 0.95,
               "n_resamples": args.n_resamples, "rng": 0},
        "eval": {"batch_size": 16, "max_batch_tokens": 1024, "threads": args.threads},
        "baseline_bpb_bf16_minus_fp32": {"mean": float(np.mean(diff)), "max_abs": float(np.max(np.abs(diff)))},
        "rows": rows, "seconds": seconds, "total_seconds": time.perf_counter() - t0, "loadavg_1min_at_start": load1,
        "torch": torch.__version__, "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = HERE / "runs" / f"{args.model}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({out['total_seconds']:.0f} s)")
    return path


def verdicts(runs: list[dict], fraction: float) -> list[dict]:
    """One verdict per (model, scheme): the largest ratio over languages for Δ and for DiD, and whether both are
    below ``fraction``."""
    out = []
    for run in runs:
        for scheme in run["schemes"]:
            rows = [r for r in run["rows"] if r["scheme"] == scheme]
            worst = {m: max((r for r in rows if r["measure"] == m), key=lambda r: r["ratio"]) for m in ("delta", "did")}
            out.append({
                "model": run["model"], "model_sha256": run["model_ref"].get("sha256"), "scheme": scheme,
                "max_ratio_delta": worst["delta"]["ratio"], "max_ratio_did": worst["did"]["ratio"],
                "worst_language_delta": worst["delta"]["language"], "worst_language_did": worst["did"]["language"],
                "max_abs_error_did": max(r["abs_error"] for r in rows if r["measure"] == "did"),
                "validated": bool(max(worst["delta"]["ratio"], worst["did"]["ratio"]) < fraction),
                "n_items_per_language": run["limit_per_language"], "source": f"analyses/bf16_screening/runs/{run['model']}.json",
            })
    return out


def collect(fraction: float) -> None:
    runs = [json.loads(p.read_text()) for p in sorted((HERE / "runs").glob("*.json"))]
    v = verdicts(runs, fraction)
    result = {"fraction_of_ci_half_width": fraction, "verdicts": v, "runs": runs}
    (HERE / "result.json").write_text(json.dumps(result, indent=1) + "\n")
    PACKAGE_FILE.write_text(json.dumps({
        "fraction_of_ci_half_width": fraction,
        "note": "written by analyses/bf16_screening/run.py --collect from analyses/bf16_screening/result.json",
        "verdicts": v}, indent=1) + "\n")
    lines = [
        "# bf16 screening: bf16-computed Δ and DiD vs fp32-computed ones", "",
        "Made by (per model, then collected):", "",
        *[f"    {r['command']}" for r in runs],
        f"    python analyses/bf16_screening/run.py --collect --fraction {fraction}", "",
        f"Rule: bf16 compute is allowed for screening a (model, scheme) when, for every language, "
        f"|estimate_bf16 - estimate_fp32| < {fraction} x the half-width of the fp32 95% CI, for both Δ "
        "(bits/byte, compressed - fp32) and DiD vs eng_Latn. `qdmodels.jobs.bf16.check_bf16` enforces it.", "",
        "| model | scheme | max err/half-width Δ (lang) | max err/half-width DiD (lang) | max abs err DiD | validated |",
        "|---|---|---|---|---|---|",
    ]
    for r in v:
        lines.append(f"| {r['model']} | {r['scheme']} | {r['max_ratio_delta']:.3f} ({r['worst_language_delta']}) | "
                     f"{r['max_ratio_did']:.3f} ({r['worst_language_did']}) | {r['max_abs_error_did']:.2e} | "
                     f"{'yes' if r['validated'] else 'no'} |")
    for run in runs:
        lines += ["", f"## {run['model']}", "",
                  f"{run['n_items']} NTREX-128 items ({run['limit_per_language']} per language, split {run['split']}, "
                  f"spread over {run['n_documents']} documents), {run['ci']['method']}, {run['ci']['n_resamples']} "
                  f"resamples. Load average at start {run['loadavg_1min_at_start']:.2f}; seconds per compute dtype "
                  + ", ".join(f"{k} {s:.0f}" for k, s in run["seconds"].items())
                  + f". Baseline bits/byte, bf16 - fp32 per item: mean {run['baseline_bpb_bf16_minus_fp32']['mean']:+.2e}, "
                  f"max |.| {run['baseline_bpb_bf16_minus_fp32']['max_abs']:.2e}.", "",
                  "| scheme | measure | language | fp32 | bf16 | abs err | fp32 CI half-width | ratio |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in run["rows"]:
            lines.append(f"| {r['scheme']} | {r['measure']} | {r['language']} | {r['estimate_fp32']:.4f} | "
                         f"{r['estimate_bf16']:.4f} | {r['abs_error']:.2e} | {r['ci_half_width_fp32']:.4f} | {r['ratio']:.3f} |")
    (HERE / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'result.json'}, {HERE / 'summary.md'}, {PACKAGE_FILE}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--limit", type=int, default=50, help="items per language")
    p.add_argument("--split", default="all")
    p.add_argument("--n-resamples", type=int, default=4000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--collect", action="store_true", help="merge runs/*.json into result.json and summary.md")
    p.add_argument("--fraction", type=float, default=0.25, help="declared fraction of the fp32 CI half-width")
    args = p.parse_args()
    if args.collect:
        collect(args.fraction)
    else:
        measure(args)


if __name__ == "__main__":
    main()
