#!/usr/bin/env bash
# GPU smoke test: the device-aware paths on CUDA, with SmolLM2-135M, in a few minutes.
#   bash scripts/gpu_smoke.sh            (needs a CUDA machine, the fetched model and QD_DATA_DIR or ../shared/data)
# Checks on CUDA: evaluation (fp32) agrees with the CPU within 1e-3 bit/byte per sentence, the INT4 condition,
# a layer-sensitivity sweep over 3 layers and a GPTQ-style INT4 condition run with every tensor on the GPU, and
# the weights are restored bit-exactly afterwards; then the `gpu`-marked tests. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${QD_DATA_DIR:-}" && -d ../shared/data ]]; then export QD_DATA_DIR="$(cd ../shared/data && pwd)"; fi
PY="${PYTHON:-python}"
"$PY" - <<'PY'
import time, torch
assert torch.cuda.is_available(), "no CUDA device: this smoke test is for GPU machines"
from qdmodels.corpora import load_ntrex
from qdmodels.models import load_model
from qdmodels.eval import evaluate_conditions, sweep_layers
from qdmodels.compress import build_calibration, gptq_condition
t0 = time.time()
torch.backends.cuda.matmul.allow_tf32 = False
items = load_ntrex(["eng_Latn", "heb_Hebr", "kor_Hang"], split="test", limit=20, sample="spread").items
cpu = load_model("smollm2-135m")
gpu = load_model("smollm2-135m", device="cuda")
print("device:", gpu.ref.device)
before = {n: p.detach().clone() for n, p in gpu.model.named_parameters()}
a = evaluate_conditions(cpu, items, ["fp32"], progress=False)
b = evaluate_conditions(gpu, items, ["fp32", "int4-g64-sym"], progress=False, batch_size=32)
ka = next(iter(a)); kb = next(iter(b))
va = {r.item_id + r.language: r.value for r in a[ka].records if r.quantity == "eval.bits_per_byte"}
vb = {r.item_id + r.language: r.value for r in b[kb].records if r.quantity == "eval.bits_per_byte"}
worst = max(abs(va[k] - vb[k]) for k in va)
print(f"fp32 CPU vs CUDA: max |Δ bit/byte| = {worst:.2e}")
assert worst < 1e-3, worst
sw = sweep_layers(gpu, items, "int4-g64-sym", layers=[0, 15, 29], n_resamples=199, rng=0, progress=False)
print("sweep records:", len(sw.records))
calib = build_calibration(gpu.tokenizer, {k: v for k, v in load_ntrex(["eng_Latn", "heb_Hebr"], split="dev", limit=40).items.items()},
                          composition="multi", n_sequences=16, seq_len=256, seed=0)
g = evaluate_conditions(gpu, items, [gptq_condition("int4-g64-sym", calib)], progress=False, batch_size=32)
print("gptq records:", sum(len(r.records) for r in g.values()))
assert all(torch.equal(before[n], p) for n, p in gpu.model.named_parameters()), "weights not restored"
print(f"ok in {time.time() - t0:.0f} s")
PY
# PyTorch backends (qdmodels.compress.backends) on CUDA weights: each library's round trip of a CUDA tensor comes back
# on the GPU, and bitsandbytes' CUDA kernels dequantize NF4 / INT8 like its CPU path (the CPU path is what the tests
# check on machines without a GPU). A backend whose package is missing is reported and skipped.
"$PY" - <<'PY'
import importlib, torch
from qdmodels.compress.backends import backend_roundtrip
g = torch.Generator().manual_seed(0)
w = torch.randn(256, 512, generator=g)
for key, mod in [("torchao-int8wo", "torchao"), ("torchao-int4wo-g64", "torchao"), ("quanto-qint4", "optimum.quanto"),
                 ("hqq-4bit-g64", "hqq"), ("bnb-nf4", "bitsandbytes"), ("bnb-int8", "bitsandbytes")]:
    try:
        importlib.import_module(mod)
    except ImportError as e:
        print(f"{key}: skipped ({e})"); continue
    out, bpw = backend_roundtrip(w.cuda(), key)
    ref, bpw_cpu = backend_roundtrip(w, key)
    assert out.is_cuda and bpw == bpw_cpu, key
    print(f"{key}: {bpw:.4f} bit/w, max |cuda-path - cpu-path| {float((out.cpu() - ref).abs().max()):.2e}")
try:
    import bitsandbytes.functional as F
    q, st = F.quantize_4bit(w.cuda(), blocksize=64, quant_type="nf4")
    cuda_nf4 = F.dequantize_4bit(q, st).cpu()
    cpu_nf4, _ = backend_roundtrip(w, "bnb-nf4")
    d = float((cuda_nf4 - cpu_nf4).abs().max())
    print(f"bnb nf4 CUDA kernel vs CPU path: max |diff| {d:.2e}")
    assert d < 1e-5, d
except ImportError as e:
    print(f"bitsandbytes CUDA check skipped ({e})")
PY
"$PY" -m pytest -q -p no:cacheprovider tests/qdmodels/compress/test_backends.py
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests
