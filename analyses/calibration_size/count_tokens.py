"""How much calibration text is there? Tokens per language in ``dataset_build`` and in ``dataset_build`` plus the
NTREX-128 dev split, under each embedded model's tokenizer (docs/calibration.md, "Calibration size").

    QD_DATA_DIR=../shared/data python analyses/calibration_size/count_tokens.py > analyses/calibration_size/tokens.md

Items come from :func:`qdmodels.compress.calibration_sets.calibration_pool` and are tokenized as
:func:`~qdmodels.compress.calibration_sets.build_calibration` tokenizes them (each item without special tokens).
``text tokens`` counts the items' tokens; ``stream tokens`` adds the one paragraph-break token the builder puts after
each item (the length of the stream the calibration windows are cut from). The reference GPTQ budget is
128 x 2048 = 262,144 tokens; every GPTQ record here uses 64 x 256 = 16,384.
"""
from __future__ import annotations

import warnings

warnings.simplefilter("ignore")

from qdmodels.compress.calibration_sets import calibration_pool
from qdmodels.models.loading import load_model

LANGS = ["eng_Latn", "deu_Latn", "fin_Latn", "tur_Latn", "heb_Hebr", "arb_Arab", "kor_Hang", "zho_Hans"]
SOURCES = {"dataset_build": ("dataset_build",), "dataset_build + ntrex_dev": ("dataset_build", "ntrex_dev")}


def main() -> None:
    print("| model | sources | language | items | text tokens | stream tokens | share of 128 x 2048 |")
    print("|---|---|---|---:|---:|---:|---:|")
    for model in ("smollm2-135m", "gemma3-270m"):
        tok = load_model(model).tokenizer
        for label, srcs in SOURCES.items():
            pool = calibration_pool(LANGS, sources=srcs)
            for lang in LANGS:
                n = [len(tok(it.text, add_special_tokens=False)["input_ids"]) for it in pool[lang]]
                text = sum(n)
                stream = text + sum(1 for k in n if k)
                print(f"| {model} | {label} | {lang} | {len(n)} | {text:,} | {stream:,} | {stream / 262144:.3f} |")


if __name__ == "__main__":
    main()
