"""GGUF Q4_0 vs round-to-nearest INT4 at the same storage cost on SmolLM2-135M (NTREX-128 test).

    python analyses/gguf_formats/run.py          # writes analyses/gguf_formats/records.parquet and summary.md

Q4_0 (gguf-py's own round trip, blocks of 32 along the input dimension, one fp16 scale per block: 4.5 bit/weight)
against int4-g32-sym (round to nearest, groups of 32, one fp16 scale: 4.5 bit/weight) and Q8_0 (8.5 bit/weight).
Same 50 sentences per language spread over the test documents; per-language Δ and DiD vs English with
document-cluster bootstrap CIs (qdstats.disparity, seed 0).
"""

from __future__ import annotations

import time
from pathlib import Path

from qdmodels.corpora import load_ntrex
from qdmodels.eval import evaluate_conditions
from qdmodels.models import load_model
from qdstats.disparity import degradation, diff_in_diff
from qdstats.records import atomic_write_text, paired_frame, write_parquet

OUT = Path(__file__).resolve().parent
LANGS = ["eng_Latn", "heb_Hebr", "arb_Arab", "kor_Hang"]
CONDS = ["fp32", "gguf-q8_0", "gguf-q4_0", "int4-g32-sym"]

t0 = time.time()
lm = load_model("smollm2-135m")
items = load_ntrex(LANGS, split="test", limit=50, sample="spread").items
res = evaluate_conditions(lm, items, CONDS, batch_size=16, max_batch_tokens=512, progress=False)
records = [r for er in res.values() for r in er.records]
write_parquet(OUT / "records.parquet", records)
frame = paired_frame(records)
lines = ["# GGUF Q4_0 vs INT4 round-to-nearest at 4.5 bit/weight (SmolLM2-135M, NTREX-128 test, 50 sentences x 4 languages)",
         "", "Made by `python analyses/gguf_formats/run.py`; records in `records.parquet`.", "",
         "| condition | language | Δ bit/byte [95% CI] | DiD vs English [95% CI] |", "|---|---|---|---|"]
for cond in CONDS[1:]:
    sub = frame[frame.scheme == cond]
    deg = degradation(sub, cluster="document_id", rng=0, n_resamples=2000)
    did = diff_in_diff(sub, reference="eng_Latn", cluster="document_id", rng=0, n_resamples=2000)
    for lang in LANGS:
        d, e = deg[lang], did[lang]
        lines.append(f"| {cond} | {lang} | {d.estimate:+.3f} [{d.ci.low:+.3f}, {d.ci.high:+.3f}] | "
                     + ("—" if lang == "eng_Latn" else f"{e.estimate:+.3f} [{e.ci.low:+.3f}, {e.ci.high:+.3f}]") + " |")
lines += ["", f"Wall time {time.time() - t0:.0f} s on the shared 2-core machine (2026-12-06)."]
atomic_write_text(OUT / "summary.md", "\n".join(lines) + "\n")
print("\n".join(lines))
