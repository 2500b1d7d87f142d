#!/usr/bin/env bash
# "Your own text" walkthrough: UD PUD sentences -> pud.tsv -> qd eval (fp32 + INT4) -> qd report (DiD vs English).
# Needs QD_DATA_DIR (the data directory with ud/) and the embedded model (`qd models fetch smollm2-135m`).
# Writes pud.tsv and eval.jsonl (not committed), eval.parquet, report/ and run.log here.
set -euo pipefail
cd "$(dirname "$0")"
: "${QD_DATA_DIR:?set QD_DATA_DIR to the data directory, e.g. QD_DATA_DIR=../shared/data}"
PY=${PYTHON:-python}
QD=${QD:-qd}
TIME=(/usr/bin/time -f "  (%e s wall, %U s user + %S s system CPU, %M KiB peak RSS)")
exec > >(tee run.log) 2>&1

# 1. your text: a long-format TSV (language, item_id, document_id, text) of the 1,000 PUD sentences in English,
#    Arabic and Korean; the UD codes en/ar/ko in it are normalized on load (eng_Latn, arb_Arab, kor_Hang)
"${TIME[@]}" $PY make_pud_tsv.py --langs en,ar,ko --out pud.tsv

# 2. evaluate it: 100 parallel sentences per language spread over the 1,000, full precision and INT4 RTN
"${TIME[@]}" $QD eval -m smollm2-135m --corpus pud.tsv --langs eng,arb,kor --limit 100 --sample spread \
  --quant int4-g64-sym --max-batch-tokens 512 --out eval.jsonl --overwrite --no-progress

# 3. report: per-language degradation and the difference in differences vs English, document-cluster CIs
"${TIME[@]}" $QD report eval.jsonl --reference eng --title "SmolLM2-135M, INT4 g64 RTN, on UD PUD (your own text)" \
  --out report

# the records as Parquet (60 KB, committed; eval.jsonl holds the same records in 5.4 MB)
$PY -c "from qdstats.records import read_records, write_parquet; write_parquet('eval.parquet', read_records('eval.jsonl'))"
