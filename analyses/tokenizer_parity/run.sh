#!/usr/bin/env bash
# Rebuild the NTREX-128 tokenizer parity tables (all 128 language files, all 1,997 lines, premium vs English
# source `eng`, 999 cluster-bootstrap resamples over documents, seed 0). Equivalent to `qd tokenize parity ...`
# once the lead mounts qdmodels.cli.tokenize in `qd`. Needs QD_DATA_DIR (the shared data directory).
set -euo pipefail
cd "$(dirname "$0")/../.."
QD="qd tokenize"
for t in gpt2 llama2 llama3 qwen3 gemma3; do
  eval "$QD" parity --tokenizer "$t" --corpus ntrex128 --split all --n-resamples 999 --seed 0 \
    --out "analyses/tokenizer_parity/$t.jsonl" --overwrite
done
# SmolLM2: its tokenizer lives only in the GGUF file of the embedded model (qdmodels.models.zoo 'smollm2-135m');
# transformers converts it to a tokenizer.json, which is then pinned by its own sha256.
SMOL_GGUF="${SMOL_GGUF:-$HOME/.cache/qd/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$SMOL_GGUF" ]; then
  tmp=$(mktemp -d)
  python - "$SMOL_GGUF" "$tmp/tokenizer.json" <<'PY'
import sys
from pathlib import Path
from transformers import AutoTokenizer
p = Path(sys.argv[1])
AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name).backend_tokenizer.save(sys.argv[2])
PY
  eval "$QD" parity --tokenizer "$tmp/tokenizer.json" --name smollm2 --corpus ntrex128 --split all \
    --n-resamples 999 --seed 0 --out analyses/tokenizer_parity/smollm2.jsonl --overwrite
fi
# the repository keeps Parquet (about 20x smaller than the JSONL; same records, read with qdstats.records.read_parquet)
python - <<'PY'
import glob
from pathlib import Path
from qdstats.records import read_records, write_parquet
for f in sorted(glob.glob("analyses/tokenizer_parity/*.jsonl")):
    write_parquet(Path(f).with_suffix(".parquet"), read_records(f))
    Path(f).unlink()
PY
python analyses/tokenizer_parity/summarize.py analyses/tokenizer_parity/*.parquet > analyses/tokenizer_parity/summary.csv
