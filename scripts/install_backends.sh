#!/usr/bin/env bash
# Install the deployed-format backends into the active Python environment (run after `bash scripts/quickstart.sh setup`
# and `. .venv/bin/activate`, or with PYTHON=.venv/bin/python):
#   llama-cpp-python  llama.cpp's own quantizer for the k-quant presets (--quant gguf-q4_k_m, ...): PyPI has only the
#                     sdist, so pip builds it with cmake and g++ (about 7 to 16 minutes on 2 cores); the built wheel is
#                     kept in ${QD_WHEEL_CACHE:-~/.cache/qd/wheels} and reused.
#   torchao, optimum-quanto, hqq, bitsandbytes  the PyTorch libraries (--quant torchao-..., quanto-..., hqq-..., bnb-...),
#                     the versions run for real in docs/formats.md, installed with --no-deps (their dependency ranges
#                     would otherwise let pip replace the CPU torch with a CUDA build) plus the small packages they import.
set -euo pipefail
py="${PYTHON:-python}"
cache="${QD_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qd/wheels}"
LLAMA="llama-cpp-python==0.3.36"
mkdir -p "$cache"
if ! ls "$cache"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
  start=$SECONDS
  echo "building $LLAMA from its sdist (cmake + g++; several minutes) ..." >&2
  "$py" -m pip wheel -q --no-deps -w "$cache" "$LLAMA"
  echo "built $LLAMA in $((SECONDS - start)) s" >&2
fi
"$py" -m pip install -q "$cache"/llama_cpp_python-0.3.36-*.whl diskcache
"$py" -m pip install -q --no-deps torchao==0.18.0 optimum-quanto==0.2.7 hqq==0.2.8.post1 bitsandbytes==0.50.2 \
  ninja einops termcolor
"$py" - <<'PY'
import importlib
for m in ("llama_cpp", "torchao", "optimum.quanto", "hqq", "bitsandbytes"):
    importlib.import_module(m)
print("format backends importable: llama_cpp, torchao, optimum.quanto, hqq, bitsandbytes")
PY
