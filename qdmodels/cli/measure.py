"""`qd eval`, `qd sweep layers`, `qd weights`, `qd activations`: thin commands over the measurement library.

Each command loads a model (an embedded name such as ``smollm2-135m``, a GGUF file, a local directory, or
``tiny:<family>`` for a random test model), loads items (NTREX-128 from the data directory, or ``--corpus`` a file,
folder, corpus id or ``hf:<repo>``: :func:`qdmodels.corpora.load_corpus`), calls one library
function, writes records to ``--out`` (JSONL) and prints a summary table to stdout (logs go to stderr).
Exit codes: 0 ok, 1 failed run, 2 usage or validation error.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from qdmodels.cli import _common as c
from qdmodels.cli._common import (
    AppendOpt,
    BatchOpt,
    CorpusOpt,
    DataDirOpt,
    DevSplitOpt,
    GranularityOpt,
    LangsOpt,
    LayersOpt,
    LimitOpt,
    MaxBatchTokensOpt,
    ModelOpt,
    NResamplesOpt,
    OutOpt,
    OverwriteOpt,
    ProgressOpt,
    QuantOpt,
    ResumeOutOpt,
    RevisionOpt,
    SampleOpt,
    SeedOpt,
    TestSplitOpt,
)

__all__ = ["activations_cmd", "eval_cmd", "register", "sweep_app", "sweep_layers_cmd", "weights_cmd"]

sweep_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                        help="Sensitivity sweeps (one site group quantized at a time).")


def eval_cmd(
    model: ModelOpt,
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: TestSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    quant: QuantOpt = None,
    protect: Annotated[str | None, typer.Option("--protect", help="ProtectionPlan key, e.g. 'layers=0,1'.")] = None,
    fp: Annotated[bool, typer.Option("--fp/--no-fp", help="Also evaluate the full-precision baseline (paired).")] = True,
    batch_size: BatchOpt = 16,
    max_batch_tokens: MaxBatchTokensOpt = 1024,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    compare: c.CompareOpt = None,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Bits per byte per sentence and language, full precision and/or quantized (paired items).

    With --compare OTHER (repeatable) the same items are scored under --model and every OTHER model as loaded
    (e.g. the GGUF or GPTQ release of --model); pair them with qd report or
    qdstats.records.paired_frame(records, across_models=True). --quant does not combine with --compare.

    Examples:

      qd eval -m smollm2-135m --langs eng_Latn,heb_Hebr --limit 50 --quant int4-g64-sym --out eval.jsonl
      qd eval -m smollm2-135m --quant int4-g64-sym --protect layers=0,1 --no-fp --out eval.jsonl --append
      qd eval -m smollm2-135m --corpus my_sentences.tsv --langs eng,heb --quant int4-g64-sym --out mine.jsonl
      qd eval -m ./SmolLM2-135M --compare ./SmolLM2-135M-Q4_0.gguf --langs eng,heb,kor --limit 100 --out ck.jsonl
    """

    def run() -> None:
        from qdmodels.compress.conditions import fp_condition, quant_condition
        from qdmodels.eval.scoring import evaluate_conditions

        mode = c.check_out(out, append=append, overwrite=overwrite)
        if compare:
            if quant is not None or protect is not None:
                raise ValueError("`--compare` scores the models as loaded; it does not combine with `--quant`/`--protect`.")
            from qdmodels.eval.compare import evaluate_checkpoints

            items = c.load_items(corpus, langs, c.corpus_split(corpus, split, "test"), limit, data_dir, sample=sample)
            models = [c.load(m, revision if m == model else None, device=device, dtype=dtype) for m in [model, *compare]]
            res = evaluate_checkpoints(models[0], models[1:], items, batch_size=batch_size,
                                       max_batch_tokens=max_batch_tokens or None, progress=progress)
            n = c.write_out(out, [r for er in res.values() for r in er.records], mode)
            _summary(res)
            c.err(f"wrote {n} records to {out}")
            return
        if protect is not None and quant is None:
            raise ValueError("`--protect` needs `--quant` (a protection plan only applies to a quantized model).")
        conds = [fp_condition()] if (fp or quant is None) else []
        if quant is not None:
            plan = None
            if protect is not None:
                from qdmodels.compress.scheme import ProtectionPlan

                plan = ProtectionPlan.parse(protect)
            conds.append(quant_condition(quant, plan=plan))
        items = c.load_items(corpus, langs, c.corpus_split(corpus, split, "test"), limit, data_dir, sample=sample)
        lm = c.load(model, revision, device=device, dtype=dtype)
        res = evaluate_conditions(lm, items, conds, batch_size=batch_size, max_batch_tokens=max_batch_tokens or None,
                                  progress=progress)
        n = c.write_out(out, [r for er in res.values() for r in er.records], mode)
        _summary(res)
        c.err(f"wrote {n} records to {out}")

    c.guard(run)


def _summary(res: dict[str, Any]) -> None:
    import numpy as np

    for er in res.values():
        if not er.records:
            continue
        cond = er.records[0].condition
        by: dict[str, list[float]] = {}
        for s in er.scores:
            by.setdefault(s.language, []).append(s.bits_per_byte)
        line = ", ".join(f"{k} {np.mean(v):.4f}" for k, v in by.items())
        if "checkpoint" in cond:
            label = f"checkpoint {cond['checkpoint']}"
        else:
            label = f"{cond.get('scheme')} protect={cond.get('protect')}"
        c.echo(f"[{label}] mean bits/byte: {line}")


@sweep_app.command("layers")
def sweep_layers_cmd(
    model: ModelOpt,
    quant: QuantOpt,
    out: ResumeOutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: DevSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    granularity: GranularityOpt = "layer",
    layers: LayersOpt = None,
    prefix_cache: Annotated[bool, typer.Option("--prefix-cache/--no-prefix-cache", help="Reuse fp prefix states.")] = True,
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 16,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Δ bits per byte per language when only one layer (or component) is quantized; resumable via --out.

    --quant is applied to one site group at a time.
    Units already in --out are skipped, so rerunning the same command resumes a killed sweep.

    Examples:

      qd sweep layers -m smollm2-135m --quant int3-g64-sym --langs eng_Latn,heb_Hebr --limit 20 --out sweep.jsonl
      qd sweep layers -m smollm2-135m --quant int4-g64-sym --granularity component --layers 0,1 --out sweep.jsonl
    """

    def run() -> None:
        from qdmodels.eval.sensitivity import sweep_layers

        c.check_resume_out(out)
        layer_list = c.ints(layers, "--layers")
        items = c.load_items(corpus, langs, c.corpus_split(corpus, split, "dev"), limit, data_dir, sample=sample)
        lm = c.load(model, revision, device=device, dtype=dtype)
        res = sweep_layers(lm, items, quant, granularity=granularity, layers=layer_list, out=out,  # type: ignore[arg-type]
                           prefix_cache=prefix_cache, n_resamples=n_resamples, rng=seed, batch_size=batch_size,
                           progress=progress)
        fr = res.frame()
        if len(fr):
            c.echo(fr.pivot(index="sites", columns="language", values="delta_bpb")
                   .to_string(float_format=lambda v: f"{v:+.4f}"))
        n_fail = sum(1 for r in res.records if getattr(r, "success", True) is False)
        c.err(f"{len(fr)} units computed, {len(res.skipped)} skipped (already in {out}), {n_fail} failed")
        if n_fail:
            raise RuntimeError(f"{n_fail} sweep unit(s) failed; see the FailedMeasurement records in {out}")

    c.guard(run)


def weights_cmd(
    out: OutOpt,
    model: ModelOpt = "",
    gguf_layout: Annotated[str | None, typer.Option(
        "--gguf-layout", help="Instead of weight statistics: the per-tensor types of this GGUF file (or embedded "
        "model name): layer, site, GGUF type, bits per weight.")] = None,
    sites: Annotated[str | None, typer.Option("--sites", help="Comma-separated site names/prefixes/globs.")] = None,
    k: Annotated[float, typer.Option("--k", help="Outlier threshold in standard deviations.")] = 3.0,
    super_weight_top: Annotated[int, typer.Option("--super-weight-top", help="Candidates per down_proj.")] = 1,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Exact per-site weight statistics (kurtosis, kσ outliers, max/σ, per-channel, super weights).

    Examples:

      qd weights -m smollm2-135m --out weights.jsonl
      qd weights -m smollm2-135m --sites layers.0.mlp --k 4 --out weights.jsonl --overwrite
      qd weights --gguf-layout gemma3-270m --out layout.jsonl
    """

    def run() -> None:
        from qdmodels.probes.weights import weight_stats

        if gguf_layout is not None:
            from qdmodels.compress.gguf_files import read_gguf_layout

            if model:
                raise ValueError("`--gguf-layout` reads a file's tensor types; give it without `--model`.")
            mode = c.check_out(out, append=append, overwrite=overwrite)
            layout = read_gguf_layout(gguf_layout)
            n = c.write_out(out, layout.to_records(), mode)
            frame = layout.to_frame()
            c.echo(frame[["layer", "site", "name", "gguf_type", "bits_per_weight"]].to_string(index=False))
            c.err(f"{layout.path}: {layout.type_counts()}, {layout.bits_per_weight:.4f} bit/weight over all tensors")
            c.err(f"wrote {n} records to {out}")
            return
        if not model:
            raise ValueError("`--model` is required (or `--gguf-layout FILE`).")
        mode = c.check_out(out, append=append, overwrite=overwrite)
        lm = c.load(model, revision, device=device, dtype=dtype)
        site_list = [s.strip() for s in sites.split(",") if s.strip()] if sites else None
        recs = weight_stats(lm, sites=site_list, k=k, super_weight_top=super_weight_top)
        n = c.write_out(out, recs, mode)
        kurt = sorted((r for r in recs if r.quantity == "weight.excess_kurtosis"), key=lambda r: -r.value)[:5]
        for r in kurt:
            c.echo(f"  {r.site}: excess kurtosis {r.value:.3f}")
        c.err(f"wrote {n} records to {out}")

    c.guard(run)


def activations_cmd(
    model: ModelOpt,
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: DevSplitOpt = None,
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    points: Annotated[str, typer.Option("--points", help="residual and/or down_proj_input, comma-separated.")] = "residual",
    threshold: Annotated[float, typer.Option("--threshold", help="Outlier-channel threshold (LLM.int8: 6).")] = 6.0,
    batch_size: BatchOpt = 16,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Per-language, per-layer activation statistics over real tokens (scoped hooks).

    Examples:

      qd activations -m smollm2-135m --langs eng_Latn,heb_Hebr --limit 20 --out act.jsonl
      qd activations -m smollm2-135m --points residual,down_proj_input --threshold 6 --out act.jsonl
    """

    def run() -> None:
        from qdmodels.probes.activations import activation_stats

        mode = c.check_out(out, append=append, overwrite=overwrite)
        pts = tuple(c.split_list(points, "--points"))
        items = c.load_items(corpus, langs, c.corpus_split(corpus, split, "dev"), limit, data_dir, sample=sample)
        lm = c.load(model, revision, device=device, dtype=dtype)
        recs = activation_stats(lm, items, points=pts, outlier_threshold=threshold, batch_size=batch_size,  # type: ignore[arg-type]
                                progress=progress)
        n = c.write_out(out, recs, mode)
        c.err(f"wrote {n} records to {out}")

    c.guard(run)


def register(app: typer.Typer) -> None:
    """Mount `eval`, `weights` and `activations` on the main `qd` app.

    ``qd sweep layers`` is mounted by :mod:`qdmodels.cli.sweep` (one ``sweep`` group holds plan/run/status/layers);
    ``sweep_app`` stays for running this module on its own.
    """
    app.command("eval")(eval_cmd)
    app.command("weights")(weights_cmd)
    app.command("activations")(activations_cmd)


if __name__ == "__main__":  # pragma: no cover
    _app = typer.Typer()
    register(_app)
    _app.add_typer(sweep_app, name="sweep")
    _app()
    sys.exit(0)
