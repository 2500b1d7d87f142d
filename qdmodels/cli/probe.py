"""`qd probe repr` and `qd probe ablate`: representation damage and head-ablation redundancy probes.

Thin commands over :mod:`qdmodels.representation` and :mod:`qdmodels.ablation`: load a model (embedded name such
as ``smollm2-135m``, a GGUF file, a directory, an HF id, or ``tiny:<family>``) and NTREX-128 items, call one
library function, append records to ``--out`` (JSONL) and print a summary to stderr.
Exit codes: 0 ok, 1 failed run, 2 usage or validation error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["ablate_cmd", "app", "repr_cmd"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Mechanism probes: representation damage (CKA, cosines) and attention-head ablation.")

_CORPORA = ("ntrex128",)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Embedded name (smollm2-135m), .gguf file, directory, HF id, or tiny:<family>.")]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision (HF ids only).")]
CorpusOpt = Annotated[str, typer.Option("--corpus", help="Corpus id (ntrex128).")]
LangsOpt = Annotated[str, typer.Option("--langs", help="Comma-separated languages, e.g. eng_Latn,heb_Hebr.")]
SplitOpt = Annotated[str, typer.Option("--split", help="dev, test or all (document-level split).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="N items per language (see --sample).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output JSONL file (records are appended).")]
LayersOpt = Annotated[str | None, typer.Option("--layers", help="Comma-separated block indices (default all).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of token subsampling / bootstrap.")]
ResamplesOpt = Annotated[int, typer.Option("--n-resamples", help="Bootstrap resamples per CI.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Items per forward pass.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default QD_DATA_DIR or the cache).")]


from qdmodels.cli._common import err as _err
from qdmodels.cli._common import guard as _guard
from qdmodels.cli._common import load as _load
from qdmodels.cli._common import SampleOpt
from qdmodels.cli._common import ntrex_items as _items


def _ints(text: str | None, name: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"`{name}` must be comma-separated integers; got {text!r}.") from None


def _floats(text: str, name: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"`{name}` must be comma-separated numbers; got {text!r}.") from None


@app.command("repr")
def repr_cmd(
    model: ModelOpt,
    quant: Annotated[list[str], typer.Option("--quant", help="QuantScheme key of a compressed condition (repeatable).")],
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    layers: LayersOpt = None,
    measures: Annotated[str, typer.Option("--measures", help="cka, cosine_token, cosine_word (comma-separated).")] = "cka,cosine_token,cosine_word",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per language entering CKA (seeded subsample).")] = 2048,
    unspaced: Annotated[str, typer.Option("--unspaced", help="Word units for unspaced scripts: error, characters, skip.")] = "error",
    n_resamples: ResamplesOpt = 999,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    revision: RevisionOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Similarity of fp and quantized hidden states per layer x language (CKA, token and word cosines, CIs)."""

    def run() -> None:
        from qdmodels.representation import representation_damage
        from qdstats.records import write_records

        items = _items(corpus, langs, split, limit, data_dir, sample=sample)
        lm = _load(model, revision)
        res = representation_damage(lm, items, quant, layers=_ints(layers, "--layers"),
                                    measures=[m.strip() for m in measures.split(",") if m.strip()],  # type: ignore[misc]
                                    max_tokens=max_tokens, unspaced=unspaced, n_resamples=n_resamples,  # type: ignore[arg-type]
                                    rng=seed, batch_size=batch_size)
        n = write_records(out, res.records)
        fr = res.frame()
        if len(fr):
            table = fr.pivot_table(index=["condition", "quantity", "layer"], columns="language", values="value")
            _err(table.to_string(float_format=lambda v: f"{v:.4f}"))
        _err(f"wrote {n} records to {out}")

    _guard(run)


@app.command("ablate")
def ablate_cmd(
    model: ModelOpt,
    out: OutOpt,
    mode: Annotated[str, typer.Option("--mode", help="importance (one head at a time) or dose (growing fraction).")] = "dose",
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    layers: LayersOpt = None,
    fractions: Annotated[str, typer.Option("--fractions", help="Fractions of heads to ablate (dose mode).")] = "0.1,0.25,0.5",
    order: Annotated[str, typer.Option("--order", help="random or ranked (ranked: importance on the dev split).")] = "random",
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds of the random head orders.")] = "0,1,2",
    method: Annotated[str, typer.Option("--method", help="zero or mean (mean over the dev split).")] = "zero",
    quant: Annotated[list[str] | None, typer.Option("--quant", help="Also run on this quantized base (repeatable).")] = None,
    dev_limit: Annotated[int | None, typer.Option("--dev-limit", help="Dev-split items per language for ranking / means.")] = None,
    reference_language: Annotated[str, typer.Option("--reference", help="Reference language of the slope DiD.")] = "eng_Latn",
    n_resamples: ResamplesOpt = 999,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    revision: RevisionOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Head ablation per language: single-head importance, or dose-response curves with slopes and CIs."""

    def run() -> None:
        from qdmodels.ablation import ablation_means, dose_response, head_importance
        from qdstats._validation import check_option
        from qdstats.records import write_records

        check_option(mode, "mode", ("importance", "dose"))
        check_option(order, "order", ("random", "ranked"))
        check_option(method, "method", ("zero", "mean"))
        if (order == "ranked" or method == "mean") and split == "dev":
            raise ValueError("`--split` must not be 'dev' when ranking heads or taking means on the dev split.")
        layer_list = _ints(layers, "--layers")
        items = _items(corpus, langs, split, limit, data_dir, sample=sample)
        lm = _load(model, revision)
        dev = None
        if order == "ranked" or method == "mean":
            dev = _items(corpus, langs, "dev", dev_limit, data_dir, sample=sample)
        means = ablation_means(lm, dev, layers=layer_list, batch_size=batch_size) if method == "mean" else None
        if mode == "importance":
            res = head_importance(lm, items, layers=layer_list, method=method, means=means,  # type: ignore[arg-type]
                                  scheme=quant[0] if quant else None, n_resamples=n_resamples, rng=seed,
                                  batch_size=batch_size)
            n = write_records(out, res.records)
            fr = res.frame()
            _err(fr.pivot_table(index=["layer", "head"], columns="language", values="delta")
                 .to_string(float_format=lambda v: f"{v:+.4f}"))
        else:
            importance = None
            if order == "ranked":
                importance = head_importance(lm, dev, layers=layer_list, method=method, means=means,  # type: ignore[arg-type]
                                             n_resamples=n_resamples, rng=seed, batch_size=batch_size)
                write_records(out, importance.records)
            schemes = ["fp32", *(quant or [])]
            res = dose_response(lm, items, fractions=_floats(fractions, "--fractions"), layers=layer_list,
                                order=order, seeds=_ints(seeds, "--seeds") or [0], importance=importance,  # type: ignore[arg-type]
                                method=method, means=means, schemes=schemes,  # type: ignore[arg-type]
                                reference_language=reference_language, n_resamples=n_resamples, rng=seed,
                                batch_size=batch_size)
            n = write_records(out, res.records)
            _err(res.curve().pivot_table(index=["scheme", "fraction"], columns="language", values="delta")
                 .to_string(float_format=lambda v: f"{v:+.4f}"))
            for r in res.records:
                if r.quantity != "ablation.delta_bits_per_byte":
                    _err(f"{r.quantity} [{r.condition.get('scheme')}] {r.language}: {r.value:+.4f} "
                         f"CI [{r.attributes.get('ci_low')}, {r.attributes.get('ci_high')}]")
        _err(f"wrote {n} records to {out}")

    _guard(run)
