"""Does a layer's precision in the source GGUF file predict its INT4 sensitivity? (the H3/H4 confound, issue 14)

The embedded Gemma-3-270M file keeps ``attn_v`` in Q8_0 and ``ffn_down`` in Q6_K in blocks {0, 1, 4, 7, 10, 13,
15, 16, 17} and Q5_0/Q4_K elsewhere; SmolLM2-135M's file is Q4_1 throughout. Re-quantizing a layer stored at higher
precision moves its weights further, so the dev sweep's per-layer damage (which H3 tests and H4 selects on) can
follow the file's layout instead of the layer's role. This script joins a committed dev sweep
(``sweep_int4-g64-sym_dev.jsonl``, 24 sentences per language, on which the H4 plans were chosen, or
``sweep_int4-g64-sym_dev_d96.jsonl``, 96 sentences, which H3 tests) with each layer's source types
(``qdmodels.compress.gguf_files.site_source_types``) and compares layers by source precision with an exact
two-group permutation test (all label splits).

    QD_DATA_DIR=../shared/data python analyses/seed_claims/layer_source_confound.py --model gemma3-270m \
        --dev-per-language 96

Writes ``analyses/seed_claims/layer_source_<model>.{md,csv}`` (24 sentences) or ``layer_source_<model>_d<N>.{md,csv}``.
"""

from __future__ import annotations

import argparse
import sys
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = "eng_Latn"


sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_records import DEV_SWEEP_ITEMS, sweep_path  # the sweep files' naming rule


def sweep_file(model: str, dev_per_language: int) -> Path:
    """The committed dev sweep of ``dev_per_language`` sentences per language."""
    return sweep_path(ROOT / "analyses" / "records" / model, "sweep=int4-g64-sym@dev", dev_per_language)


def layer_table(model: str, dev_per_language: int) -> pd.DataFrame:
    """One row per decoder layer: source types, mean dev Δ bits per byte over languages, mean excess over English."""
    from qdmodels.compress.gguf_files import describe_source_types, site_source_types
    from qdmodels.models.loading import load_model
    from qdstats.records import read_records

    sweep = sweep_file(model, dev_per_language)
    if not sweep.exists():
        raise SystemExit(f"--dev-per-language {dev_per_language}: no committed dev sweep of that size ({sweep})")
    lm = load_model(model)
    types = site_source_types(lm)
    if types is None:
        raise SystemExit(f"{model} was not loaded from a GGUF file: it has no source types")
    rows = [{"layer": int(str(r.condition["sites"]).split(".")[1]), "language": r.language, "delta": r.value}
            for r in read_records(sweep) if getattr(r, "quantity", None) == "sens.delta_bits_per_byte"]
    w = pd.DataFrame(rows).pivot(index="layer", columns="language", values="delta")
    others = [c for c in w.columns if c != REFERENCE]
    out = pd.DataFrame({
        "source_types": [describe_source_types(types, [s for s in types if s.startswith(f"layers.{i}.")])
                         for i in w.index],
        "mean_delta": w.mean(axis=1),
        "excess_over_english": w[others].sub(w[REFERENCE], axis=0).mean(axis=1),
    }, index=w.index)
    out["source_precision"] = np.where(out["source_types"].str.contains("Q8_0|Q6_K"), "higher", "lower")
    return out


def compare(tab: pd.DataFrame, column: str) -> dict[str, float]:
    """Exact permutation test of the mean difference (higher minus lower source precision)."""
    from qdstats.resampling import permutation_test_two_groups

    hi = tab.loc[tab["source_precision"] == "higher", column].to_numpy()
    lo = tab.loc[tab["source_precision"] == "lower", column].to_numpy()
    if len(hi) == 0 or len(lo) == 0:
        return {"n_higher": len(hi), "n_lower": len(lo), "difference": float("nan"), "p_two_sided": float("nan")}
    res = permutation_test_two_groups(hi, lo, alternative="two-sided", n_resamples=comb(len(hi) + len(lo), len(hi)),
                                      rng=0)
    return {"n_higher": len(hi), "n_lower": len(lo), "mean_higher": float(hi.mean()), "mean_lower": float(lo.mean()),
            "difference": float(hi.mean() - lo.mean()), "p_two_sided": float(res.pvalue), "exact": bool(res.exact)}


def top_line(tab: pd.DataFrame, column: str, top: list[int]) -> str:
    """How many of the 3 layers ranked first by ``column`` (H4's choice) are stored at higher precision, and the
    hypergeometric chance of at least that many if the choice ignored the layout."""
    from scipy.stats import hypergeom

    n_hi = int((tab["source_precision"] == "higher").sum())
    m = int((tab.loc[top, "source_precision"] == "higher").sum())
    if n_hi in (0, len(tab)):
        return f"Top 3 layers by {column}: {top}; every layer has the same source precision."
    p = float(hypergeom(len(tab), n_hi, len(top)).sf(m - 1))
    return (f"Top 3 layers by {column}: {top}; {m} of them at higher source precision "
            f"(P(at least {m} of 3 | {n_hi} of {len(tab)} layers higher) = {p:.3f}, hypergeometric).")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--dev-per-language", type=int, default=DEV_SWEEP_ITEMS,
                    help="size of the dev sweep to read (24: the H4 selection sweep; 96: the sweep H3 tests)")
    args = ap.parse_args(argv)
    n = args.dev_per_language
    if not sweep_file(args.model, n).exists():  # a usage error (exit 2), before the model is loaded
        ap.error(f"--dev-per-language {n}: no committed dev sweep of that size for {args.model} "
                 f"({sweep_file(args.model, n).relative_to(ROOT)}); committed sizes are the files "
                 "sweep_int4-g64-sym_dev[_d<N>].jsonl in that folder")
    tab = layer_table(args.model, n)
    sized = f"_d{n}" if n != DEV_SWEEP_ITEMS else ""
    stem = ROOT / "analyses" / "seed_claims" / f"layer_source_{args.model}{sized}"
    tab.to_csv(stem.with_suffix(".csv"), float_format="%.17g")
    tests = {c: compare(tab, c) for c in ("mean_delta", "excess_over_english")}
    command = f"python analyses/seed_claims/layer_source_confound.py --model {args.model}" + (
        f" --dev-per-language {n}" if sized else "")
    lines = [f"# Source GGUF precision vs dev INT4 sensitivity per layer: {args.model}", "",
             (f"Generated by `{command}` from `{sweep_file(args.model, n).relative_to(ROOT)}` ({n} dev sentences per "
              "language, 8 languages) and the source file's tensor types. `higher` = the layer keeps a matrix in "
              "Q8_0 or Q6_K."),
             "", "| comparison | layers higher / lower | mean higher | mean lower | difference | exact p (two-sided) |",
             "|---|---|---|---|---|---|"]
    for c, t in tests.items():
        if t["n_higher"] and t["n_lower"]:
            lines.append(f"| {c} | {t['n_higher']} / {t['n_lower']} | {t['mean_higher']:.4f} | {t['mean_lower']:.4f} "
                         f"| {t['difference']:+.4f} | {t['p_two_sided']:.4f} |")
        else:
            lines.append(f"| {c} | {t['n_higher']} / {t['n_lower']} | | | | one source precision only: no contrast |")
    for c in ("mean_delta", "excess_over_english"):
        top = tab[c].sort_values(ascending=False, kind="stable").index[:3].tolist()
        lines += ["", top_line(tab, c, top)]
    lines += ["", "| layer | source types | mean Δ bpb (8 languages) | excess over English | source precision |",
              "|---|---|---|---|---|"]
    for i, r in tab.iterrows():
        lines.append(f"| {i} | {r['source_types']} | {r['mean_delta']:.4f} | {r['excess_over_english']:+.4f} "
                     f"| {r['source_precision']} |")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines[:8]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
