"""SYNTHETIC records for the report tests (helpers; fixtures in conftest.py): planted effects, generated here, never real measurements.

Every record names the model ``synthetic:toy`` (source 'config') and the corpus ``synthetic-parallel``, so a
report built from them can never be mistaken for a measurement. The planted truths are module constants
that the tests compare against.
"""

from __future__ import annotations

import numpy as np

from qdstats.records import (
    CorpusRef,
    ErrorInfo,
    FailedMeasurement,
    Measurement,
    ModelRef,
)

SYN_MODEL = ModelRef(model_id="synthetic:toy", source="config", sha256="a" * 64, family="synthetic",
                     note="SYNTHETIC test model: no weights")
SYN_TOKENIZER = ModelRef(model_id="synthetic:toy-tokenizer", source="config", sha256="b" * 64)
SYN_CORPUS = CorpusRef(corpus_id="synthetic-parallel", split="test", sha256="c" * 64, version="0",
                       license_flags=("non-commercial",))
SYN_CORPUS_FREE = CorpusRef(corpus_id="synthetic-free", split="test", sha256="d" * 64)

LANGUAGES = ("arb_Arab", "deu_Latn", "eng_Latn", "heb_Hebr", "zho_Hans")
# planted mean degradation (bits/byte) per condition and language
PLANTED_DELTA = {
    "int4-g64-sym": {"arb_Arab": 0.20, "deu_Latn": 0.08, "eng_Latn": 0.05, "heb_Hebr": 0.25, "zho_Hans": 0.15},
    "int3-g64-sym": {"arb_Arab": 0.60, "deu_Latn": 0.25, "eng_Latn": 0.15, "heb_Hebr": 0.70, "zho_Hans": 0.45},
}
N_LAYERS = 6
PLANTED_SLOPE = {"heb_Hebr": -0.8, "arb_Arab": -0.3}  # damage ~ alignment, nats per unit F1
PREMIUM = {"arb_Arab": 3.1, "deu_Latn": 1.4, "eng_Latn": 1.0, "heb_Hebr": 4.2, "zho_Hans": 2.6}


def _cond(scheme: str) -> dict[str, str]:
    return {"scheme": scheme, "protect": "none", "prune": "none"}


def sens_value(layer: int, lang: str) -> float:
    """Planted sensitivity: first and last layers hurt most, more so for non-English languages."""
    base = 0.02 + (0.3 if layer in (0, N_LAYERS - 1) else 0.0)
    return base * (1.0 if lang == "eng_Latn" else 1.0 + LANGUAGES.index(lang) * 0.2)


def make_eval_records(n_items: int = 24, n_docs: int = 6, seed: int = 0,
                      schemes: tuple[str, ...] = ("int4-g64-sym", "int3-g64-sym")) -> list[Measurement]:
    rng = np.random.default_rng(seed)
    out = []
    doc_effect = rng.normal(0, 0.02, n_docs)
    for lang in LANGUAGES:
        corpus = SYN_CORPUS if lang != "deu_Latn" else SYN_CORPUS_FREE
        for i in range(n_items):
            doc = i % n_docs
            fp = 1.0 + 0.1 * rng.standard_normal()
            common = {"model": SYN_MODEL, "language": lang, "corpus": corpus, "item_id": f"syn:{i}",
                      "attributes": {"document_id": f"doc{doc}"}, "routine": "tests.synthetic"}
            out.append(Measurement(quantity="eval.bits_per_byte", value=fp, condition=_cond("fp32"), **common))
            for s in schemes:
                d = PLANTED_DELTA[s][lang] + doc_effect[doc] + rng.normal(0, 0.03)
                out.append(Measurement(quantity="eval.bits_per_byte", value=fp + d, condition=_cond(s), **common))
    return out


def make_sensitivity_records(scheme: str = "int4-g64-sym") -> list[Measurement]:
    out = []
    for layer in range(N_LAYERS):
        for lang in LANGUAGES:
            out.append(Measurement(quantity="sens.delta_bits_per_byte", value=sens_value(layer, lang), n=24,
                                   model=SYN_MODEL, site=f"layers.{layer}", language=lang, corpus=SYN_CORPUS,
                                   condition=_cond(scheme), routine="tests.synthetic"))
    return out


def make_premium_records() -> list[Measurement]:
    out = []
    for lang in LANGUAGES:
        attrs: dict = {"reference": "eng_Latn"}
        if lang != "eng_Latn":
            attrs.update(ci_low=PREMIUM[lang] - 0.1, ci_high=PREMIUM[lang] + 0.15, ci_level=0.95,
                         ci_method="cluster-bootstrap-percentile")
        out.append(Measurement(quantity="tok.premium_vs_reference", value=PREMIUM[lang], n=24, model=SYN_TOKENIZER,
                               language=lang, corpus=SYN_CORPUS, attributes=attrs,
                               condition={"tokenizer_kind": "synthetic", "special_tokens": False},
                               routine="tests.synthetic"))
    return out


def make_word_records(n_sent: int = 15, words_per_sent: int = 6, seed: int = 1,
                      as_attribute: bool = False) -> list[Measurement]:
    """Word-level damage with a planted slope on alignment; alignment as align.* records or as an attribute."""
    rng = np.random.default_rng(seed)
    out = []
    for lang, slope in PLANTED_SLOPE.items():
        for s in range(n_sent):
            sent_effect = rng.normal(0, 0.05)
            for w in range(words_per_sent):
                iid = f"syn:{s}:{w}"
                f1 = float(rng.uniform(0, 1))
                dmg = 0.5 + slope * f1 + sent_effect + rng.normal(0, 0.05)
                attrs = {"sentence_id": f"syn:{s}", "word_length": int(rng.integers(1, 9))}
                if as_attribute:
                    attrs["boundary_f1"] = f1
                out.append(Measurement(quantity="eval.word_delta_nll", value=dmg, model=SYN_MODEL, language=lang,
                                       corpus=SYN_CORPUS, item_id=iid, attributes=attrs,
                                       condition=_cond("int4-g64-sym"), routine="tests.synthetic"))
                if not as_attribute:
                    out.append(Measurement(quantity="align.boundary_f1", value=f1, model=SYN_MODEL, language=lang,
                                           corpus=SYN_CORPUS, item_id=iid, routine="tests.synthetic"))
    return out


def make_failure() -> FailedMeasurement:
    return FailedMeasurement(quantity="eval.bits_per_byte", model=SYN_MODEL, language="kor_Hang",
                             error=ErrorInfo(error_type="RuntimeError", message="synthetic failure"),
                             routine="tests.synthetic")


def make_all_records() -> list:
    return (make_eval_records() + make_sensitivity_records() + make_premium_records() + make_word_records()
            + [make_failure()])
