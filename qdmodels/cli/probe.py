"""`qd probe repr` and `qd probe ablate`: representation damage and head-ablation redundancy probes.

Thin commands over :mod:`qdmodels.probes.representation` and :mod:`qdmodels.probes.ablation`: load a model (embedded
name such as ``smollm2-135m``, a GGUF file, a directory, an HF id, or ``tiny:<family>``) and items (NTREX-128, or
``--corpus`` a file, folder, corpus id or ``hf:<repo>``), call
one library function, write records to ``--out`` (JSONL) and print a summary table to stdout (logs to stderr).
Exit codes: 0 ok, 1 failed run, 2 usage or validation error.
"""

from __future__ import annotations

from typing import Annotated

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import (
    AppendOpt,
    BatchOpt,
    CorpusOpt,
    DataDirOpt,
    LangsOpt,
    LayersOpt,
    LimitOpt,
    ModelOpt,
    NResamplesOpt,
    OutOpt,
    OverwriteOpt,
    ProgressOpt,
    QuantsOpt,
    ReferenceOpt,
    RevisionOpt,
    SampleOpt,
    SeedOpt,
    TestSplitOpt,
)

__all__ = ["ablate_cmd", "app", "repr_cmd"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Mechanism probes: representation damage (CKA, cosines) and attention-head ablation.")


@app.command("repr")
def repr_cmd(
    model: ModelOpt,
    quant: QuantsOpt,
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: TestSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    layers: LayersOpt = None,
    measures: Annotated[str, typer.Option("--measures", help="cka, cosine_token, cosine_word (comma-separated).")] = "cka,cosine_token,cosine_word",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens per language entering CKA (seeded subsample).")] = 2048,
    unspaced: Annotated[str, typer.Option("--unspaced", help="Word units for unspaced scripts: error, characters, skip.")] = "error",
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Similarity of fp and quantized hidden states per layer x language (CKA, token and word cosines, CIs).

    Each --quant scheme is one compressed condition compared with the full-precision model.

    Examples:

      qd probe repr -m smollm2-135m --quant int4-g64-sym --langs eng_Latn,heb_Hebr --limit 50 --layers 0,15,29 --out repr.jsonl
      qd probe repr -m smollm2-135m --quant int4-g64-sym,int3-g64-sym --unspaced skip --out repr.jsonl --overwrite
    """

    def run() -> None:
        from qdmodels.probes.representation import representation_damage

        mode = c.check_out(out, append=append, overwrite=overwrite)
        conditions = c.schemes(quant)
        if not conditions:
            raise ValueError("`--quant` must name at least one quantization scheme.")
        layer_list = c.ints(layers, "--layers")
        log = c.stage_logger(progress)
        log("loading items ...")
        items = c.load_items(corpus, langs, c.corpus_split(corpus, split, "test"), limit, data_dir, sample=sample)
        log(f"loading model {model} ...")
        lm = c.load(model, revision, device=device, dtype=dtype)
        log(f"representation damage under {', '.join(conditions)} ...")
        res = representation_damage(lm, items, conditions, layers=layer_list,
                                    measures=c.split_list(measures, "--measures"),  # type: ignore[arg-type]
                                    max_tokens=max_tokens, unspaced=unspaced, n_resamples=n_resamples,  # type: ignore[arg-type]
                                    rng=seed, batch_size=batch_size)
        n = c.write_out(out, res.records, mode)
        fr = res.frame()
        if len(fr):
            table = fr.pivot_table(index=["condition", "quantity", "layer"], columns="language", values="value")
            c.echo(table.to_string(float_format=lambda v: f"{v:.4f}"))
        c.err(f"wrote {n} records to {out}")

    c.guard(run)


@app.command("ablate")
def ablate_cmd(
    model: ModelOpt,
    out: OutOpt,
    mode: Annotated[str, typer.Option("--mode", help="importance (one head at a time) or dose (growing fraction).")] = "dose",
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: TestSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    layers: LayersOpt = None,
    fractions: Annotated[str, typer.Option("--fractions", help="Fractions of heads to ablate (dose mode).")] = "0.1,0.25,0.5",
    order: Annotated[str, typer.Option("--order", help="random or ranked (ranked: importance on the dev split).")] = "random",
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds of the random head orders.")] = "0,1,2",
    method: Annotated[str, typer.Option("--method", help="zero or mean (mean over the dev split).")] = "zero",
    quant: QuantsOpt = None,
    dev_limit: Annotated[int | None, typer.Option("--dev-limit", min=1, help="Dev-split items per language for ranking / means.")] = None,
    reference: ReferenceOpt = "eng_Latn",
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 8,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Head ablation per language: single-head importance, or dose-response curves with slopes and CIs.

    With --quant, dose mode also runs on each quantized base (importance mode uses the first scheme).
    --reference is the language the slope difference in differences is taken against.

    Examples:

      qd probe ablate -m smollm2-135m --mode importance --layers 10,11 --split dev --out imp.jsonl
      qd probe ablate -m smollm2-135m --mode dose --fractions 0.1,0.25 --seeds 0,1,2 --quant int4-g64-sym --out dose.jsonl
      qd probe ablate -m smollm2-135m --mode dose --order ranked --dev-limit 50 --out dose_ranked.jsonl
    """

    def run() -> None:
        from qdmodels.probes.ablation import (
            ablation_means,
            dose_response,
            head_importance,
        )
        from qdstats.validation import check_option

        out_mode = c.check_out(out, append=append, overwrite=overwrite)
        check_option(mode, "mode", ("importance", "dose"))
        check_option(order, "order", ("random", "ranked"))
        check_option(method, "method", ("zero", "mean"))
        eval_split = c.corpus_split(corpus, split, "test")
        if (order == "ranked" or method == "mean") and eval_split == "dev":
            raise ValueError("`--split` must not be 'dev' when ranking heads or taking means on the dev split.")
        if (order == "ranked" or method == "mean") and eval_split is None:
            raise ValueError("`--split` must name the evaluated split of the corpus (e.g. test) when ranking heads or "
                             "taking means on its dev split.")
        ref = c.language(reference)
        quants = c.schemes(quant)
        layer_list = c.ints(layers, "--layers")
        fracs = c.floats(fractions, "--fractions")
        seed_list = c.ints(seeds, "--seeds") or [0]
        log = c.stage_logger(progress)
        log("loading items ...")
        items = c.load_items(corpus, langs, eval_split, limit, data_dir, sample=sample)
        log(f"loading model {model} ...")
        lm = c.load(model, revision, device=device, dtype=dtype)
        dev = None
        if order == "ranked" or method == "mean":
            dev = c.load_items(corpus, langs, "dev", dev_limit, data_dir, sample=sample)
        if method == "mean":
            log("ablation means on the dev split ...")
        means = ablation_means(lm, dev, layers=layer_list, batch_size=batch_size) if method == "mean" else None
        recs = []
        if mode == "importance":
            log("single-head importance ...")
            res = head_importance(lm, items, layers=layer_list, method=method, means=means,  # type: ignore[arg-type]
                                  scheme=quants[0] if quants else None, n_resamples=n_resamples, rng=seed,
                                  batch_size=batch_size)
            recs.extend(res.records)
            table = res.frame().pivot_table(index=["layer", "head"], columns="language", values="delta")
            lines = [table.to_string(float_format=lambda v: f"{v:+.4f}")]
        else:
            importance = None
            if order == "ranked":
                log("single-head importance on the dev split (ranking) ...")
                importance = head_importance(lm, dev, layers=layer_list, method=method, means=means,  # type: ignore[arg-type]
                                             n_resamples=n_resamples, rng=seed, batch_size=batch_size)
                recs.extend(importance.records)
            schemes = ["fp32", *quants]
            log(f"dose-response curves ({', '.join(schemes)}) ...")
            res = dose_response(lm, items, fractions=fracs, layers=layer_list,
                                order=order, seeds=seed_list, importance=importance,  # type: ignore[arg-type]
                                method=method, means=means, schemes=schemes,  # type: ignore[arg-type]
                                reference_language=ref, n_resamples=n_resamples, rng=seed,
                                batch_size=batch_size)
            recs.extend(res.records)
            lines = [res.curve().pivot_table(index=["scheme", "fraction"], columns="language", values="delta")
                     .to_string(float_format=lambda v: f"{v:+.4f}")]
            for r in res.records:
                if r.quantity != "ablation.delta_bits_per_byte":
                    lines.append(f"{r.quantity} [{r.condition.get('scheme')}] {r.language}: {r.value:+.4f} "
                                 f"CI [{r.attributes.get('ci_low')}, {r.attributes.get('ci_high')}]")
        n = c.write_out(out, recs, out_mode)
        for line in lines:
            c.echo(line)
        c.err(f"wrote {n} records to {out}")

    c.guard(run)
