"""H4 in one table: every protection plan measured, its storage cost, and the disparity as a difference (DiD) and as
a ratio side by side (issue 15: the two disagree when protection helps English more than the other languages).

    python analyses/seed_claims/h4_protection.py      # writes analyses/seed_claims/h4_protection.{md,csv,png}

Reads, per model, ``eval_fp32``, ``eval_int4-g64-sym`` (unprotected) and every ``eval_protect_int4-g64-sym_*``
file of ``analyses/records/<model>/`` (written by ``run_records.py --steps protect=...``: the selection rules
``mean`` and ``disparity`` chosen on the dev sweep, ``random<seed>`` draws, k = 1..6). For each plan, on the
test sentences it was evaluated on (all 200 per language, or the 40 of ``--subset 40``), per language L:
Δ_L = mean over sentences of (bits per byte under the plan − fp32); DiD_L = Δ_L − Δ_English; ratio_L =
Δ_L / Δ_English. The unprotected INT4 values on the same sentences are the "before" columns. The summary is the
mean over the seven non-English languages. Point estimates only (the claims H4.* rows carry the CIs and tests).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODELS = ("smollm2-135m", "gemma3-270m")
REF = "eng_Latn"


def _frame(path: Path) -> tuple[pd.DataFrame, dict]:
    from qdstats.records import read_parquet

    recs = read_parquet(path)
    ev = pd.DataFrame([{"language": r.language, "item_id": r.item_id, "value": r.value} for r in recs
                       if r.quantity == "eval.bits_per_byte"])
    cond = next(r.condition for r in recs if r.quantity == "eval.bits_per_byte")
    bpw = [r.value for r in recs if r.quantity == "quant.model_bits_per_weight"]
    return ev.set_index(["language", "item_id"])["value"], {**cond, "model_bits_per_weight": bpw[0] if bpw else np.nan}


def _frame_bpw(path: Path) -> float:
    from qdstats.records import read_parquet

    vals = [r.value for r in read_parquet(path) if r.quantity == "quant.model_bits_per_weight"] if path.exists() else []
    return vals[0] if vals else np.nan


def plan_rows(model: str) -> pd.DataFrame:
    d = ROOT / "analyses" / "records" / model
    fp, _ = _frame(d / "eval_fp32.parquet")
    unprot, ucond = _frame(d / "eval_int4-g64-sym.parquet")
    if not ucond["model_bits_per_weight"] == ucond["model_bits_per_weight"]:  # storage kept in its own file
        ucond["model_bits_per_weight"] = _frame_bpw(d / "bpw_int4-g64-sym.parquet")
    rows = []
    for f in sorted(d.glob("eval_protect_int4-g64-sym_*.parquet")):
        after, cond = _frame(f)
        idx = after.index.intersection(fp.index).intersection(unprot.index)  # the same sentences before and after
        after = after.reindex(idx)
        d_after = (after - fp.reindex(idx)).groupby(level="language").mean()
        d_before = (unprot.reindex(idx) - fp.reindex(idx)).groupby(level="language").mean()
        others = [lang for lang in d_after.index if lang != REF]
        rule = cond.get("selection_rule", "mean")
        rows.append({
            "model": model, "file": f.name, "rule": rule, "k": int(cond.get("protect_k", 3)),
            "seed": cond.get("selection_seed"), "protect": cond["protect"],
            "n_per_language": int(idx.get_level_values("item_id").nunique()),
            "model_bits_per_weight": cond["model_bits_per_weight"],
            "model_bits_per_weight_unprotected": ucond["model_bits_per_weight"],
            "delta_english_before": d_before[REF], "delta_english_after": d_after[REF],
            "did_before": float((d_before[others] - d_before[REF]).mean()),
            "did_after": float((d_after[others] - d_after[REF]).mean()),
            "ratio_before": float((d_before[others] / d_before[REF]).mean()),
            "ratio_after": float((d_after[others] / d_after[REF]).mean()),
            "source_gguf_types": _source_types(f),
        })
    return pd.DataFrame(rows)


def _source_types(path: Path) -> str:
    from qdstats.records import read_parquet

    recs = read_parquet(path)
    return str(next((r.attributes.get("source_gguf_types") for r in recs if r.quantity == "eval.bits_per_byte"),
                    None) or "")


def main() -> int:
    from qdstats.records import atomic_path, atomic_write_text
    from qdstats.report import plots

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tab = pd.concat([plan_rows(m) for m in MODELS if (ROOT / "analyses" / "records" / m).is_dir()],
                    ignore_index=True)
    tab["did_reduction"] = tab["did_before"] - tab["did_after"]
    tab["ratio_reduction"] = tab["ratio_before"] - tab["ratio_after"]
    atomic_write_text(HERE / "h4_protection.csv", tab.to_csv(index=False, float_format="%.17g"))
    md = ["# H4: every protection plan, its storage cost, the disparity as a difference and as a ratio", "",
          "Made by `python analyses/seed_claims/h4_protection.py` from the committed records (commands in "
          "`analyses/seed_claims/README.md`). NTREX-128 test sentences (n per language in the table), INT4 "
          "int4-g64-sym with k decoder layers kept at full precision; DiD = mean over the 7 non-English languages "
          "of (Δ_L − Δ_English), ratio = mean of Δ_L / Δ_English, before = unprotected INT4 on the same sentences. "
          "Random draws are summarized as mean [min, max] over the draws. Point estimates; the tests are the "
          "claims H4.protection, H4.disparity and H4.vs_random.", ""]
    for model, sub in tab.groupby("model", sort=False):
        md += [f"## {model}", "", f"Unprotected INT4: {sub['model_bits_per_weight_unprotected'].iloc[0]:.3f} bits per weight "
               "over the whole model (embedding and tensors left alone at 16 bits).", "",
               "| rule | k | layers | n/lang | bit/weight | English Δ after | DiD before → after | ratio before → after |",
               "|---|---|---|---|---|---|---|---|"]
        fixed = sub[sub["rule"] != "random"].sort_values(["rule", "k", "n_per_language"])
        for _, r in fixed.iterrows():
            md.append(f"| {r['rule']} | {r['k']} | {r['protect'].removeprefix('layers=')} | {r['n_per_language']} "
                      f"| {r['model_bits_per_weight']:.3f} | {r['delta_english_after']:+.4f} "
                      f"| {r['did_before']:+.4f} → {r['did_after']:+.4f} | {r['ratio_before']:.2f} → "
                      f"{r['ratio_after']:.2f} |")
        rnd = sub[sub["rule"] == "random"]
        for k, g in rnd.groupby("k"):
            md.append(f"| random ({len(g)} draws) | {k} | — | {g['n_per_language'].iloc[0]} "
                      f"| {g['model_bits_per_weight'].mean():.3f} | {g['delta_english_after'].mean():+.4f} "
                      f"| {g['did_before'].iloc[0]:+.4f} → {g['did_after'].mean():+.4f} "
                      f"[{g['did_after'].min():+.4f}, {g['did_after'].max():+.4f}] "
                      f"| {g['ratio_before'].iloc[0]:.2f} → {g['ratio_after'].mean():.2f} "
                      f"[{g['ratio_after'].min():.2f}, {g['ratio_after'].max():.2f}] |")
        md.append("")
        if sub["source_gguf_types"].str.len().gt(0).any():
            md += ["Source GGUF types of the protected layers (records' `attributes.source_gguf_types`): see "
                   f"`layer_source_{model}.md`.", ""]
    md.append("![Reduction of the DiD and of the ratio against k, per rule, with the random draws]"
              "(h4_protection.png)")
    atomic_write_text(HERE / "h4_protection.md", "\n".join(md) + "\n")
    models = list(tab["model"].unique())
    fig, axes = plt.subplots(2, len(models), figsize=(4.5 * len(models), 6), squeeze=False, constrained_layout=True)
    for j, model in enumerate(models):
        sub = tab[tab["model"] == model]
        for i, (col, label) in enumerate((("did_reduction", "DiD before − after (bit/byte)"),
                                          ("ratio_reduction", "ratio before − after"))):
            # reductions on each plan's own sentences: the 200-sentence and 40-sentence plans share one scale
            ax = axes[i][j]
            for rule, marker in (("mean", "o"), ("disparity", "s")):
                # one point per k: the plan measured on the most sentences (200 rather than the 40-sentence subset)
                g = sub[(sub["rule"] == rule)].sort_values(["k", "n_per_language"], kind="stable").drop_duplicates(
                    "k", keep="last")
                ax.plot(g["k"], g[col], marker=marker, label=f"rule: {rule}")
            rnd = sub[sub["rule"] == "random"]
            if not rnd.empty:
                ax.scatter(rnd["k"] + 0.1, rnd[col], s=10, color="grey", alpha=0.6, label="random draws")
            ax.axhline(0.0, ls="--", color="k", lw=0.8, label="no change")
            ax.set_xlabel("k protected layers")
            ax.set_ylabel(label)
            ax.set_title(model if i == 0 else "")
        axes[0][j].legend(fontsize=7)
    with atomic_path(HERE / "h4_protection.png") as tmp:
        Path(tmp).write_bytes(plots.figure_png(fig))
    print(f"wrote {HERE / 'h4_protection.md'} ({len(tab)} plans)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
