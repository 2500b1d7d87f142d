"""Is English-calibrated GPTQ worse than RTN on English because of the calibration domain?

QD_DATA_DIR=../shared/data python analyses/gptq_diagnostics/calib_domain.py > analyses/gptq_diagnostics/calib_domain.txt

SmolLM2-135M, int4-g64-sym on every block (the W2 setting), GPTQ percdamp 0.1, English calibration 64 x 256 tokens
(seed 0) from (a) dataset_build, (b) the NTREX-128 dev split (same news domain as the held-out text). Held-out:
60 English + 60 Hebrew NTREX *test* sentences (first 60 in split order). Prints mean Δ bits per byte vs fp32 per
language for RTN and both GPTQ calibrations, with the paired difference GPTQ - RTN and a t-based 95% CI.
"""
import time
import warnings

import numpy as np
from scipy import stats

warnings.simplefilter("ignore")
from qdmodels.compress.gptq import gptq_quantized
from qdmodels.compress.calibration_sets import build_calibration, calibration_pool  # noqa: E402
from qdmodels.corpora import load_ntrex  # noqa: E402
from qdmodels.eval.scoring import evaluate
from qdmodels.models.loading import load_model  # noqa: E402
from qdmodels.compress.rtn import quantized

SCHEME, LANGS, N = "int4-g64-sym", ["eng_Latn", "heb_Hebr"], 60
lm = load_model("smollm2-135m")
items = load_ntrex(LANGS, split="test", limit=N).items


def bpb() -> dict[str, np.ndarray]:
    out = {}
    for lang in LANGS:
        r = evaluate(lm, None, items[lang], progress=False)
        out[lang] = np.array([x.value for x in r.records if x.quantity == "eval.bits_per_byte"])
    return out


fp = bpb()
with quantized(lm, SCHEME):
    rtn = bpb()
cals = {}
for src in ("dataset_build", "ntrex_dev"):
    pool = calibration_pool(["eng_Latn"], sources=(src,))
    cals[src] = build_calibration(lm.tokenizer, pool, composition="eng", n_sequences=64, seq_len=256, seed=0)
res = {}
for src, cal in cals.items():
    t = time.time()
    with gptq_quantized(lm, SCHEME, cal, percdamp=0.1):
        res[src] = bpb()
    print(f"# GPTQ calibration {src}: {time.time() - t:.0f}s", flush=True)
print(f"{'language':10s} {'RTN Δ':>8s} " + " ".join(f"{'GPTQ[' + s + '] Δ':>22s} {'GPTQ-RTN [95% CI]':>26s}" for s in res))
for lang in LANGS:
    line = f"{lang:10s} {np.mean(rtn[lang] - fp[lang]):8.4f} "
    for s, r in res.items():
        d = r[lang] - rtn[lang]
        half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
        line += f"{np.mean(r[lang] - fp[lang]):22.4f} {d.mean():+9.4f} [{d.mean() - half:+.4f}, {d.mean() + half:+.4f}] "
    print(line, flush=True)
