"""`qd eval`, `qd sweep layers`, `qd weights`, `qd activations`: thin commands over the measurement library.

Each command loads a model (an embedded name such as ``smollm2-135m``, a GGUF file, a local directory, or
``tiny:<family>`` for a random test model), loads items (NTREX-128 from the data directory), calls one library
function, writes records to ``--out`` (JSONL) and prints a short summary to stderr.
Exit codes: 0 ok, 1 failed run, 2 usage or validation error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["activations_cmd", "eval_cmd", "register", "sweep_app", "sweep_layers_cmd", "weights_cmd"]

sweep_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                        help="Sensitivity sweeps (one site group quantized at a time).")

_CORPORA = ("ntrex128",)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Embedded name (smollm2-135m), .gguf file, directory, HF id, or tiny:<family>.")]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="Hub revision (HF ids only).")]
CorpusOpt = Annotated[str, typer.Option("--corpus", help="Corpus id (ntrex128).")]
LangsOpt = Annotated[str, typer.Option("--langs", help="Comma-separated languages, e.g. eng_Latn,heb_Hebr or eng,heb.")]
SplitOpt = Annotated[str, typer.Option("--split", help="dev, test or all (document-level split).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="N items per language (see --sample).")]
OutOpt = Annotated[Path, typer.Option("--out", help="Output JSONL file (records are appended).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Items per forward pass.")]
DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory (default QD_DATA_DIR or the cache).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")]


from qdmodels.cli._common import err as _err
from qdmodels.cli._common import guard as _guard
from qdmodels.cli._common import load as _load
from qdmodels.cli._common import SampleOpt
from qdmodels.cli._common import ntrex_items as _items


def eval_cmd(
    model: ModelOpt,
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: SplitOpt = "test",
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    quant: Annotated[str | None, typer.Option("--quant", help="QuantScheme key, e.g. int4-g128-sym.")] = None,
    protect: Annotated[str | None, typer.Option("--protect", help="ProtectionPlan key, e.g. 'layers=0,1'.")] = None,
    fp: Annotated[bool, typer.Option("--fp/--no-fp", help="Also evaluate the full-precision baseline (paired).")] = True,
    batch_size: BatchOpt = 16,
    max_batch_tokens: Annotated[int | None, typer.Option(
        "--max-batch-tokens", min=1, help="Also cap each batch at this many padded positions (less padding).")] = None,
    revision: RevisionOpt = None,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Bits per byte per sentence and language, full precision and/or quantized (paired items)."""

    def run() -> None:
        from qdmodels.evaluation import (
            evaluate_conditions,
            fp_condition,
            quant_condition,
        )
        from qdstats.records import write_records

        if protect is not None and quant is None:
            raise ValueError("`--protect` needs `--quant` (a protection plan only applies to a quantized model).")
        conds = [fp_condition()] if (fp or quant is None) else []
        if quant is not None:
            plan = None
            if protect is not None:
                from qdmodels.quantization import ProtectionPlan

                plan = ProtectionPlan.parse(protect)
            conds.append(quant_condition(quant, plan=plan))
        items = _items(corpus, langs, split, limit, data_dir, sample=sample)
        lm = _load(model, revision)
        res = evaluate_conditions(lm, items, conds, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                  progress=progress)
        n = sum(write_records(out, er.records) for er in res.values())
        _summary(res)
        _err(f"wrote {n} records to {out}")

    _guard(run)


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
        _err(f"[{cond.get('scheme')} protect={cond.get('protect')}] mean bits/byte: {line}")


@sweep_app.command("layers")
def sweep_layers_cmd(
    model: ModelOpt,
    quant: Annotated[str, typer.Option("--quant", help="QuantScheme key applied to one site group at a time.")],
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: SplitOpt = "dev",
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    granularity: Annotated[str, typer.Option("--granularity", help="layer or component.")] = "layer",
    layers: Annotated[str | None, typer.Option("--layers", help="Comma-separated block indices (default all).")] = None,
    prefix_cache: Annotated[bool, typer.Option("--prefix-cache/--no-prefix-cache", help="Reuse fp prefix states.")] = True,
    n_resamples: Annotated[int, typer.Option("--n-resamples", help="Cluster-bootstrap resamples per CI (0: none).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    batch_size: BatchOpt = 16,
    revision: RevisionOpt = None,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Δ bits per byte per language when only one layer (or component) is quantized; resumable via --out."""

    def run() -> None:
        from qdmodels.sensitivity import sweep_layers

        layer_list = None
        if layers:
            try:
                layer_list = [int(x) for x in layers.split(",") if x.strip()]
            except ValueError:
                raise ValueError(f"`--layers` must be comma-separated integers; got {layers!r}.") from None
        items = _items(corpus, langs, split, limit, data_dir, sample=sample)
        lm = _load(model, revision)
        res = sweep_layers(lm, items, quant, granularity=granularity, layers=layer_list, out=out,  # type: ignore[arg-type]
                           prefix_cache=prefix_cache, n_resamples=n_resamples, rng=seed, batch_size=batch_size,
                           progress=progress)
        fr = res.frame()
        if len(fr):
            _err(fr.pivot(index="sites", columns="language", values="delta_bpb").to_string(float_format=lambda v: f"{v:+.4f}"))
        n_fail = sum(1 for r in res.records if getattr(r, "success", True) is False)
        _err(f"{len(fr)} units computed, {len(res.skipped)} skipped (already in {out}), {n_fail} failed")
        if n_fail:
            raise RuntimeError(f"{n_fail} sweep unit(s) failed; see the FailedMeasurement records in {out}")

    _guard(run)


def weights_cmd(
    model: ModelOpt,
    out: OutOpt,
    sites: Annotated[str | None, typer.Option("--sites", help="Comma-separated site names/prefixes/globs.")] = None,
    k: Annotated[float, typer.Option("--k", help="Outlier threshold in standard deviations.")] = 3.0,
    super_weight_top: Annotated[int, typer.Option("--super-weight-top", help="Candidates per down_proj.")] = 1,
    revision: RevisionOpt = None,
) -> None:
    """Exact per-site weight statistics (kurtosis, kσ outliers, max/σ, per-channel, super weights)."""

    def run() -> None:
        from qdmodels.weights import weight_stats
        from qdstats.records import write_records

        lm = _load(model, revision)
        site_list = [s.strip() for s in sites.split(",") if s.strip()] if sites else None
        recs = weight_stats(lm, sites=site_list, k=k, super_weight_top=super_weight_top)
        write_records(out, recs)
        kurt = sorted((r for r in recs if r.quantity == "weight.excess_kurtosis"), key=lambda r: -r.value)[:5]
        for r in kurt:
            _err(f"  {r.site}: excess kurtosis {r.value:.3f}")
        _err(f"wrote {len(recs)} records to {out}")

    _guard(run)


def activations_cmd(
    model: ModelOpt,
    out: OutOpt,
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    split: SplitOpt = "dev",
    limit: LimitOpt = None,
    sample: SampleOpt = "first",
    points: Annotated[str, typer.Option("--points", help="residual and/or down_proj_input, comma-separated.")] = "residual",
    threshold: Annotated[float, typer.Option("--threshold", help="Outlier-channel threshold (LLM.int8: 6).")] = 6.0,
    batch_size: BatchOpt = 16,
    revision: RevisionOpt = None,
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Per-language, per-layer activation statistics over real tokens (scoped hooks)."""

    def run() -> None:
        from qdmodels.activations import activation_stats
        from qdstats.records import write_records

        items = _items(corpus, langs, split, limit, data_dir, sample=sample)
        lm = _load(model, revision)
        pts = tuple(p.strip() for p in points.split(",") if p.strip())
        recs = activation_stats(lm, items, points=pts, outlier_threshold=threshold, batch_size=batch_size,  # type: ignore[arg-type]
                                progress=progress)
        write_records(out, recs)
        _err(f"wrote {len(recs)} records to {out}")

    _guard(run)


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
