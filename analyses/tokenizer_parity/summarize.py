"""Wide CSV (one row per tokenizer x NTREX language label) from parity record files; full precision.

Reads the Parquet record files (``.jsonl`` files are read too). NaN values (fertility of scripts without spaces)
carry a warning and stay NaN.
"""

import sys

from qdmodels.tokenization import parity_frame
from qdstats.records import read_parquet, read_records

recs = []
for path in sys.argv[1:]:
    recs.extend(read_parquet(path) if path.endswith(".parquet") else read_records(path))
parity_frame(recs).to_csv(sys.stdout, float_format="%.17g")
