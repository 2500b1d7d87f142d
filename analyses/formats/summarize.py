"""Per-language damage of every measured format at its measured storage cost, from the saved records.

    python analyses/formats/summarize.py            # writes analyses/formats/summary.md, summary.csv, did_vs_bits_*.png

Reads, per model, ``analyses/records/<model>/eval_fp32.parquet`` (the claims table's baseline), every
``eval_<format>.parquet`` that has a ``bpw_<format>.parquet`` next to it (written by ``analyses/formats/run.py``),
the round-to-nearest files of the claims table that have storage records (``eval_int4-g64-sym`` with
``bpw_int4-g64-sym``, ...) and GPTQ-style INT4 calibrated on English (``eval_gptq_int4-g64-sym_eng``, W2's
records, which carry their own storage records; the multilingual and per-language calibrations are in the claims
table). Computes the report's degradation table (per-language Δ bits per byte and the
difference in differences vs English, joint cluster bootstrap over NTREX documents, 1999 resamples, seed 0) with
:func:`qdstats.report.data.summarize_records`, joins the measured bits per weight, and writes one table row per
(model, format, language) at full precision (CSV) and rounded (Markdown), and the DiD-vs-bits figure per model
(:func:`qdstats.report.plots.did_vs_bits`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MODELS = ("smollm2-135m", "gemma3-270m")
LANG_ORDER = ("eng_Latn", "deu_Latn", "fin_Latn", "tur_Latn", "heb_Hebr", "arb_Arab", "kor_Hang", "zho_Hans")


def _files(model: str) -> list[Path]:
    d = ROOT / "analyses" / "records" / model
    out = [d / "eval_fp32.parquet"]
    for bpw in sorted(d.glob("bpw_*.parquet")):
        ev = d / f"eval_{bpw.stem[len('bpw_'):]}.parquet"
        if ev.exists():
            out += [ev, bpw]
    gptq = d / "eval_gptq_int4-g64-sym_eng.parquet"  # GPTQ calibrated on English; its storage records are inside
    if gptq.exists():
        out.append(gptq)
    return out


def main() -> int:
    import pandas as pd

    from qdstats.records import atomic_path, atomic_write_text, read_parquet
    from qdstats.report import plots
    from qdstats.report.data import storage_key, summarize_records

    t0 = time.perf_counter()
    rows = []
    for model in MODELS:
        files = _files(model)
        if len(files) < 3:
            print(f"{model}: no format records yet", file=sys.stderr)
            continue
        recs = [r for f in files for r in read_parquet(f)]
        data = summarize_records(recs, n_resamples=1999, rng=0, strict=True)
        deg = data.degradation.assign(condition_key=data.degradation["condition"].map(storage_key)).merge(
            data.storage[["model_key", "condition_key", "scheme", "family", "bits_per_weight", "model_bits_per_weight"]],
            on=["model_key", "condition_key"])
        deg.insert(0, "model", model)
        rows.append(deg)
        fig = plots.did_vs_bits(deg, reference="eng_Latn", title=f"{model}: DiD vs English against bits per weight")
        with atomic_path(HERE / f"did_vs_bits_{model}.png") as tmp:
            Path(tmp).write_bytes(plots.figure_png(fig))
        print(f"{model}: {deg['scheme'].nunique()} formats from {len(files)} files", file=sys.stderr)
    if not rows:
        return 1
    table = pd.concat(rows, ignore_index=True)
    cols = ["model", "family", "scheme", "bits_per_weight", "model_bits_per_weight", "language", "n", "n_clusters",
            "estimate", "ci_low", "ci_high", "did", "did_ci_low", "did_ci_high", "did_pvalue"]
    table = table[cols].sort_values(["model", "model_bits_per_weight", "scheme", "language"], ignore_index=True)
    atomic_write_text(HERE / "summary.csv", table.to_csv(index=False))

    def ci(e: float, lo: float, hi: float) -> str:
        if pd.isna(e):
            return "—"
        return f"{e:+.3f} [{lo:+.3f}, {hi:+.3f}]".replace("-", "−")

    langs = [lang for lang in LANG_ORDER if lang in set(table["language"])]
    md = ["# Deployed formats vs round-to-nearest at their measured storage cost", "",
          "Made by `python analyses/formats/summarize.py` from the records that `analyses/formats/run.py` wrote "
          "(commands in `analyses/formats/README.md`). NTREX-128 test, 200 sentences per language spread over the "
          "test documents (the claims table's H1 items), fp32 baseline = the dequantized GGUF file of each model. "
          "Per format: measured bits per weight (scales included) of the tensors it converts and of the whole model "
          "(tensors it leaves alone counted at 16 bits; every format here converts the attention and MLP projections, "
          "the whole-model column is the x axis of the figures); English Δ bits per byte; for every other language the difference in differences vs English with its 95% joint cluster "
          "bootstrap CI (1999 resamples over documents).", ""]
    for model, sub in table.groupby("model", sort=False):
        md += [f"## {model}", "", f"![DiD vs bits per weight](did_vs_bits_{model}.png)", "",
               "| format | family | bit/weight (converted) | bit/weight (model) | English Δ | "
               + " | ".join(f"DiD {lang}" for lang in langs[1:]) + " |",
               "|---|---|---|---|---|" + "---|" * (len(langs) - 1)]
        for scheme, g in sub.groupby("scheme", sort=False):
            by = {r["language"]: r for r in g.to_dict(orient="records")}
            eng = by.get("eng_Latn")
            cells = [ci(by[lang]["did"], by[lang]["did_ci_low"], by[lang]["did_ci_high"]) if lang in by else "—"
                     for lang in langs[1:]]
            md.append(f"| `{scheme}` | {g['family'].iloc[0]} | {g['bits_per_weight'].iloc[0]:.3f} | "
                      f"{g['model_bits_per_weight'].iloc[0]:.3f} | "
                      f"{ci(eng['estimate'], eng['ci_low'], eng['ci_high']) if eng else '—'} | " + " | ".join(cells) + " |")
        md.append("")
    md.append(f"Computed in {time.perf_counter() - t0:.0f} s. Full precision in `summary.csv`.")
    atomic_write_text(HERE / "summary.md", "\n".join(md) + "\n")
    print(f"wrote {HERE / 'summary.md'} and summary.csv", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
