"""Wide CSV from alignment aggregate records: one row per (tokenizer, gold source, language, mode), full precision."""

import json
import math
import sys

import pandas as pd

from qdstats.records import record_from_dict


def read(path):
    """Like read_records, but a NaN value (serialized by pydantic as null; reported to the lead) reads as NaN."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            if d.get("value", 0) is None and d.get("warnings"):
                d["value"] = math.nan
            yield record_from_dict(d)


rows = {}
for path in sys.argv[1:]:
    for r in read(path):
        key = (r.model.model_id, r.attributes["gold_source"], r.language, r.condition["mode"])
        row = rows.setdefault(key, {"n_words": r.attributes["n_words"]})
        q = r.quantity.split(".", 1)[1]
        row[q] = r.value
        row[f"{q}_ci_low"] = r.attributes.get("ci_low")
        row[f"{q}_ci_high"] = r.attributes.get("ci_high")
df = pd.DataFrame.from_dict(rows, orient="index")
df.index = pd.MultiIndex.from_tuples(df.index, names=["tokenizer", "gold", "language", "mode"])
df.sort_index().to_csv(sys.stdout, float_format="%.17g")
