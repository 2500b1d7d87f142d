"""Generate the simulated data sets used as lme4 oracles for ``qdstats.within.mixed_slope``.

Run: python tests/reference/py/within_data.py   (numpy 2.x; seed fixed below)
Writes tests/reference/data/mixed_slope.csv and tests/reference/data/mixed_nested.csv; values are
rounded to 6 decimals so that R and Python read exactly the same numbers from the CSV.
The R fits are in tests/reference/r/within.R and frozen in tests/reference/within_oracles.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "data"


def main() -> None:
    rng = np.random.default_rng(20261123)
    # 1) random intercept + random slope per language, one covariate
    n_lang, n_per = 12, 25
    lang = np.repeat([f"l{i:02d}" for i in range(n_lang)], n_per)
    g = np.repeat(np.arange(n_lang), n_per)
    x = rng.normal(0.0, 1.0, n_lang * n_per) + rng.normal(0.0, 0.5, n_lang)[g]
    cov = rng.normal(0.0, 1.0, n_lang * n_per)
    b0 = rng.normal(0.0, 0.6, n_lang)
    b1 = rng.normal(0.0, 0.25, n_lang)
    y = 1.0 + b0[g] + (0.4 + b1[g]) * x + 0.3 * cov + rng.normal(0.0, 0.8, n_lang * n_per)
    df = pd.DataFrame({"language": lang, "x": x.round(6), "cov": cov.round(6), "y": y.round(6)})
    OUT.mkdir(parents=True, exist_ok=True)
    df.to_csv(OUT / "mixed_slope.csv", index=False)

    # 2) sentences nested in languages, 3 repeated measurements per (language, sentence)
    n_lang, n_sent, n_rep = 8, 12, 3
    lang = np.repeat([f"l{i:02d}" for i in range(n_lang)], n_sent * n_rep)
    g = np.repeat(np.arange(n_lang), n_sent * n_rep)
    sent_idx = np.tile(np.repeat(np.arange(n_sent), n_rep), n_lang)
    ls = g * n_sent + sent_idx
    x = rng.normal(0.0, 1.0, len(g))
    y = (0.5 + rng.normal(0.0, 0.7, n_lang)[g] + rng.normal(0.0, 0.5, n_lang * n_sent)[ls] + 0.25 * x
         + rng.normal(0.0, 0.6, len(g)))
    df2 = pd.DataFrame({"language": lang, "sentence": [f"s{i:02d}" for i in sent_idx], "x": x.round(6),
                        "y": y.round(6)})
    df2.to_csv(OUT / "mixed_nested.csv", index=False)


if __name__ == "__main__":
    main()
