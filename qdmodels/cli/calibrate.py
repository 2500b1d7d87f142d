"""`qd calibrate`: calibrated quantization (GPTQ) with a calibration composition, and cheap sensitivity proxies.

* ``qd calibrate gptq --model smollm2-135m --quant int4-g64-sym --calibration eng --langs eng_Latn,heb_Hebr
  --out F.jsonl``: evaluates fp32, RTN and GPTQ (calibration composition recorded in ``condition``) on NTREX
  items of ``--split`` (default test; calibration text comes from dataset_build and never from the test split;
  ``--corpus`` takes any corpus :func:`qdmodels.corpora.load_corpus` reads), and writes per-item evaluation records
  plus GPTQ layer-error records. ``--calibration target`` builds one calibration set per language.
* ``qd calibrate proxies --model ... --quant int4-g64-sym --langs ... --out F.jsonl``: output-error and Fisher
  proxies per layer and language, the measured single-layer sweep on the same items, and the proxies'
  Spearman correlations with the measurement.

Exit codes: 0 ok; 1 failed run; 2 usage or validation error. Records go to ``--out``; summaries to stdout, logs
to stderr.
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
    GranularityOpt,
    LangsOpt,
    LimitOpt,
    ModelOpt,
    NResamplesOpt,
    OutOpt,
    OverwriteOpt,
    ProgressOpt,
    QuantOpt,
    RevisionOpt,
    SeedOpt,
    TestSplitOpt,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Calibrated quantization (GPTQ), calibration composition, and sensitivity proxies.")


@app.command("gptq")
def gptq_cmd(
    model: ModelOpt,
    out: OutOpt,
    quant: QuantOpt = "int4-g128-sym",
    calibration: Annotated[str, typer.Option("--calibration", help="Composition: eng, multi, target, proportional.")] = "eng",
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    calib_langs: Annotated[str | None, typer.Option("--calib-langs", help="Languages of multi/proportional calibration (default: --langs).")] = None,
    corpus: CorpusOpt = "ntrex128",
    split: TestSplitOpt = None,
    limit: LimitOpt = None,
    n_sequences: Annotated[int, typer.Option("--n-sequences", min=1, help="Calibration sequences.")] = 128,
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Tokens per calibration sequence.")] = 512,
    seed: SeedOpt = 0,
    act_order: Annotated[bool, typer.Option("--act-order/--no-act-order", help="GPTQ activation order.")] = False,
    true_sequential: Annotated[bool, typer.Option(
        "--true-sequential/--no-true-sequential",
        help="Quantize each block's sites group by group (q/k/v, o, gate/up, down), each group's Hessians taken "
             "after the earlier groups are quantized (the reference's --true-sequential).")] = False,
    percdamp: Annotated[float, typer.Option("--percdamp", min=0.0, help="Dampening: this fraction of the mean "
                                            "Hessian diagonal is added to it (reference default 0.01).")] = 0.01,
    batch_size: BatchOpt = 16,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Evaluate fp32, RTN and GPTQ with a recorded calibration composition.

    --split is dev or test (the NTREX items evaluated; with another --corpus, the rows of its split column, default
    every row); calibration text comes from dataset_build and is checked to share no text with the evaluated items.
    --seed is the calibration sampling seed.

    Examples:

      qd calibrate gptq -m smollm2-135m --quant int4-g64-sym --calibration multi --langs eng_Latn,heb_Hebr --out w2.jsonl
      qd calibrate gptq -m smollm2-135m --quant int4-g64-sym --calibration target --limit 16 --out w2_target.jsonl
      qd calibrate gptq -m smollm2-135m --quant int4-g64-sym --corpus my_sentences.tsv --langs eng,heb --out mine.jsonl
    """

    def run() -> None:
        from qdmodels.compress.calibration_sets import (
            build_calibration,
            calibration_pool,
        )
        from qdmodels.compress.gptq import gptq_condition, gptq_quantized
        from qdmodels.compress.scheme import QuantScheme
        from qdmodels.eval.scoring import evaluate_conditions
        from qdstats.validation import check_option

        mode = c.check_out(out, append=append, overwrite=overwrite)
        opts = {"act_order": act_order, "true_sequential": true_sequential, "percdamp": percdamp}
        eval_split = c.corpus_split(corpus, split, "test")
        if corpus in c.CORPORA and eval_split not in ("dev", "test"):
            raise ValueError(f"`--split` must be 'dev' or 'test'; got {split!r}.")
        check_option(calibration, "--calibration", ("eng", "multi", "target", "proportional"))
        sch = QuantScheme.parse(str(quant))
        eval_langs = c.languages(langs) if corpus in c.CORPORA else c.corpus_languages(langs)
        if eval_langs is None:
            raise ValueError("`--langs` must name the languages (not `all`): they choose the calibration text.")
        c_langs = c.languages(calib_langs, "--calib-langs") if calib_langs else eval_langs
        log = c.stage_logger(progress)
        log("loading calibration text ...")
        pool_langs = sorted(set(c_langs) | ({"eng_Latn"} if calibration == "eng" else set()) |
                            (set(eval_langs) if calibration == "target" else set()))
        pool = calibration_pool(pool_langs, sources=("dataset_build",))
        items = c.load_items(corpus, ",".join(eval_langs), eval_split, limit, data_dir)
        log(f"loading model {model} ...")
        lm = c.load(model, revision, device=device, dtype=dtype)
        all_items = [it for lang in eval_langs for it in items[lang]]
        recs = []
        if calibration == "target":
            for lang in eval_langs:
                log(f"GPTQ calibrated on {lang} ...")
                cal = build_calibration(lm.tokenizer, pool, composition="target", target=lang,
                                        n_sequences=n_sequences, seq_len=seq_len, seed=seed)
                cal.check_disjoint(all_items)
                res = evaluate_conditions(lm, items[lang], ["fp32", sch, gptq_condition(sch, cal, **opts)],
                                          batch_size=batch_size, progress=progress)
                recs.extend(r for er in res.values() for r in er.records)
        else:
            cal = build_calibration(lm.tokenizer, pool, composition=calibration,  # type: ignore[arg-type]
                                    languages=c_langs if calibration in ("multi", "proportional") else None,
                                    n_sequences=n_sequences, seq_len=seq_len, seed=seed)
            cal.check_disjoint(all_items)
            log(f"GPTQ calibrated on '{calibration}' ...")
            res = evaluate_conditions(lm, all_items, ["fp32", sch, gptq_condition(sch, cal, **opts)],
                                      batch_size=batch_size, progress=progress)
            recs.extend(r for er in res.values() for r in er.records)
            with gptq_quantized(lm, sch, cal, **opts) as rep:
                recs.extend(rep.to_records(lm.ref))
        n = c.write_out(out, recs, mode)
        c.err(f"wrote {n} records to {out}")

    c.guard(run)


@app.command("proxies")
def proxies_cmd(
    model: ModelOpt,
    out: OutOpt,
    quant: QuantOpt = "int4-g128-sym",
    langs: LangsOpt = "eng_Latn,heb_Hebr",
    corpus: CorpusOpt = "ntrex128",
    limit: LimitOpt = None,
    granularity: GranularityOpt = "layer",
    n_resamples: NResamplesOpt = c.N_RESAMPLES,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 16,
    skip_sweep: Annotated[bool, typer.Option("--skip-sweep", help="Proxies only (no measured sweep, no validation).")] = False,
    revision: RevisionOpt = None,
    device: c.DeviceOpt = "auto",
    dtype: c.DTypeOpt = "float32",
    data_dir: DataDirOpt = None,
    progress: ProgressOpt = True,
    append: AppendOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Per-layer proxies, the measured sweep on the same items, and the proxies' rank correlation with it.

    Items: the first --limit NTREX dev sentences per language (another --corpus: its first --limit items).
    --n-resamples and --seed drive the measured sweep's cluster bootstrap.

    Examples:

      qd calibrate proxies -m smollm2-135m --quant int4-g64-sym --langs eng_Latn,heb_Hebr --limit 16 --out proxies.jsonl
      qd calibrate proxies -m smollm2-135m --quant int4-g64-sym --granularity component --skip-sweep --out proxies.jsonl
    """

    def run() -> None:
        from qdmodels.eval.proxies import (
            fisher_proxies,
            output_error_proxies,
            validate_proxies,
        )
        from qdmodels.eval.sensitivity import sweep_layers

        mode = c.check_out(out, append=append, overwrite=overwrite)
        if granularity not in ("layer", "component"):
            raise ValueError(f"`--granularity` must be 'layer' or 'component'; got {granularity!r}.")
        log = c.stage_logger(progress)
        items = c.load_items(corpus, langs, c.corpus_split(corpus, None, "dev"), limit, data_dir)
        log(f"loading model {model} ...")
        lm = c.load(model, revision, device=device, dtype=dtype)
        log("output-error proxies ...")
        recs = output_error_proxies(lm, items, quant, granularity=granularity, batch_size=batch_size)  # type: ignore[arg-type]
        log("Fisher proxies ...")
        recs += fisher_proxies(lm, items, quant, granularity=granularity, batch_size=batch_size)  # type: ignore[arg-type]
        lines = []
        if not skip_sweep:
            log("measured single-layer sweep ...")
            sw = sweep_layers(lm, items, quant, granularity=granularity, n_resamples=n_resamples,  # type: ignore[arg-type]
                              rng=seed, batch_size=batch_size, progress=progress)
            recs += list(sw.records)
            val = validate_proxies(recs, sw.records)
            recs += val
            for r in val:
                lines.append(f"{r.language} {r.condition['proxy']}: rho={r.value:.3f} "
                             f"[{r.attributes.get('ci_low')}, {r.attributes.get('ci_high')}] n={r.n}")
        n = c.write_out(out, recs, mode)
        for line in lines:
            c.echo(line)
        c.err(f"wrote {n} records to {out}")

    c.guard(run)
