"""GPTQ vs RTN on SmolLM2-135M: effect of dampening and of leaving the BOS position out of the Hessians.

QD_DATA_DIR=../shared/data python analyses/gptq_dampening/run.py int3-g64-sym > analyses/gptq_dampening/results.txt

int3-g64-sym on blocks 0-9 (blocks 10-29 protected), English dataset_build calibration 64 x 256 tokens (seed 0),
held-out: 10 English + 10 Hebrew NTREX dev sentences. Prints the mean Δ bits per byte vs fp32 per setting.
"""
import sys, time, numpy as np, warnings
warnings.simplefilter("ignore")
from qdmodels.models.loading import load_model
from qdmodels.compress.gptq import gptq_quantized
from qdmodels.compress.calibration_sets import build_calibration, calibration_pool
from qdmodels.corpora import load_ntrex
from qdmodels.eval.scoring import evaluate
from qdmodels.compress.scheme import ProtectionPlan
from qdmodels.compress.rtn import quantized
scheme = sys.argv[1] if len(sys.argv) > 1 else "int3-g64-sym"
lm = load_model("smollm2-135m")
items = load_ntrex(["eng_Latn", "heb_Hebr"], split="dev", limit=10).items
flat = [it for v in items.values() for it in v]
pool = calibration_pool(["eng_Latn"], sources=("dataset_build",))
cal = build_calibration(lm.tokenizer, pool, composition="eng", n_sequences=64, seq_len=256, seed=0)
plan = ProtectionPlan(layers=tuple(range(10, 30)))
def bpb():
    r = evaluate(lm, None, flat, progress=False)
    return np.array([x.value for x in r.records if x.quantity == "eval.bits_per_byte"])
fp = bpb()
with quantized(lm, scheme, plan=plan):
    rtn = bpb()
print("RTN  Δ", (rtn - fp).mean(), flush=True)
for skip in (0, 1):
    for damp in (0.01, 0.1):
        t = time.time()
        with gptq_quantized(lm, scheme, cal, plan=plan, skip_positions=skip, percdamp=damp) as rep:
            g = bpb()
        print(f"GPTQ skip={skip} damp={damp} Δ", (g - fp).mean(), f"{time.time()-t:.0f}s", flush=True)
