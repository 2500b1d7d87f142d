#!/usr/bin/env bash
# Per-language morpheme-boundary alignment aggregates (micro boundary P/R/F1, MorphScore-style, whole-word
# fraction, tokens per word; 999 cluster-bootstrap resamples with the sentence as the cluster, seed 0) for the
# shipped tokenizers against every gold segmentation in the data directory. Only aggregates are kept
# (--summary-only); rerun without it for per-word records. Equivalent to `qd align ...` once mounted.
# Needs QD_DATA_DIR. SmolLM2: set SMOL_TOKENIZER to a tokenizer.json converted from its GGUF (see
# analyses/tokenizer_parity/run.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
QD="qd align"
OUT=analyses/tokenizer_alignment
GOLDS=(
  "ud_hebrew_iahltwiki test context"
  "ud_hebrew_iahltwiki test isolated"
  "ud_korean_kaist test context"
  "ud_korean_pud test context"
  "morpho_challenge_2010:eng combined isolated"
  "morpho_challenge_2010:fin combined isolated"
  "morpho_challenge_2010:tur combined isolated"
  "sigmorphon2022:eng dev isolated"
  "sigmorphon2022:fra dev isolated"
)
TOKS=(gpt2 llama2 llama3 qwen3 gemma3)
[ -n "${SMOL_TOKENIZER:-}" ] && TOKS+=("$SMOL_TOKENIZER")
rm -f "$OUT"/summary_*.jsonl
for t in "${TOKS[@]}"; do
  name=$t; [ "$t" = "${SMOL_TOKENIZER:-}" ] && name=smollm2
  for g in "${GOLDS[@]}"; do
    read -r gold split mode <<<"$g"
    tmp=$(mktemp)
    eval "$QD" --tokenizer "$t" --name "$name" --gold "$gold" --split "$split" --mode "$mode" \
      --n-resamples 999 --seed 0 --summary-only --out "$tmp" --overwrite  # mktemp created the file
    cat "$tmp" >> "$OUT/summary_$name.jsonl"; rm -f "$tmp"
  done
done
python "$OUT/table.py" "$OUT"/summary_*.jsonl > "$OUT/summary.csv"
