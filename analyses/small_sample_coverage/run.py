"""Coverage of 95% intervals for Δ with few documents: percentile, BCa, the small-sample 't' option, and the
percentile interval when the documents are ignored (cluster=None).

    python analyses/small_sample_coverage/run.py     # writes analyses/small_sample_coverage/result.json

1000 simulated data sets of 40 documents x 4 sentences, document effect SD 0.1 and sentence noise SD 0.1
(document ICC 0.5), true Δ = 0.2; qdstats.disparity.degradation(cluster='doc', n_resamples=999). The numbers are
cited in the `kind` documentation of qdstats.disparity; the test suite checks the 't' coverage on 800 data sets.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from qdstats.disparity import degradation

t0 = time.time()
rng = np.random.default_rng(11)
n_docs, per, n_sets = 40, 4, 1000
doc = np.repeat(np.arange(n_docs), per)
base = pd.DataFrame({"language": "heb_Hebr", "item_id": np.arange(n_docs * per), "doc": doc, "full": 0.0})
hits = {"percentile": 0, "bca": 0, "t": 0, "percentile_unclustered": 0}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(n_sets):
        df = base.assign(compressed=0.2 + rng.normal(0.0, 0.1, n_docs)[doc] + rng.normal(0.0, 0.1, n_docs * per))
        for kind in ("percentile", "bca", "t"):
            hits[kind] += degradation(df, cluster="doc", kind=kind, n_resamples=999, rng=rng)["heb_Hebr"].ci.contains(0.2)
        # the same data with cluster=None: sentences of a document resampled as independent items
        naive = degradation(df.drop(columns="doc"), kind="percentile", n_resamples=999, rng=rng)["heb_Hebr"]
        hits["percentile_unclustered"] += naive.ci.contains(0.2)
result = {"n_sets": n_sets, "n_docs": n_docs, "sentences_per_doc": per, "coverage": {k: v / n_sets for k, v in hits.items()},
          "mc_standard_error": float(np.sqrt(0.95 * 0.05 / n_sets)), "seconds": round(time.time() - t0, 1)}
(Path(__file__).resolve().parent / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
print(json.dumps(result, indent=2))
