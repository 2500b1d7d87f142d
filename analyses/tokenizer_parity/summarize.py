"""Wide CSV (one row per tokenizer x NTREX language label) from parity record files; full precision.

NaN values (fertility of scripts without spaces, which carry a warning) are written by pydantic as JSON
``null``, which ``read_records`` does not accept yet (reported to the lead); they are read back as NaN here.
"""

import json
import math
import sys

from qdmodels.tokenization import parity_frame
from qdstats.records import record_from_dict

recs = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            if d.get("value", 0) is None and d.get("warnings"):
                d["value"] = math.nan
            recs.append(record_from_dict(d))
parity_frame(recs).to_csv(sys.stdout, float_format="%.17g")
