"""`qd calibrate`: calibrated quantization (GPTQ) with a calibration composition, and cheap sensitivity proxies.

* ``qd calibrate gptq --model smollm2-135m --scheme int4-g128-sym --calibration eng --langs eng_Latn,heb_Hebr
  --out F.jsonl``: evaluates fp32, RTN and GPTQ (calibration composition recorded in ``condition``) on NTREX
  items of ``--split`` (default test; calibration text comes from dataset_build and never from the test split),
  and writes per-item evaluation records plus GPTQ layer-error records. ``--calibration target`` builds one
  calibration set per language.
* ``qd calibrate proxies --model ... --scheme int4-g128-sym --langs ... --out F.jsonl``: output-error and Fisher
  proxies per layer and language, the measured single-layer sweep on the same items, and the proxies'
  Spearman correlations with the measurement.

Exit codes: 0 ok; 1 failed run; 2 usage or validation error. Records go to ``--out``; summaries to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False,
                  help="Calibrated quantization (GPTQ), calibration composition, and sensitivity proxies.")


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _langs(text: str) -> list[str]:
    out = [s.strip() for s in text.split(",") if s.strip()]
    if not out:
        raise ValueError(f"`--langs` must list languages separated by commas; got {text!r}.")
    return out


@app.command("gptq")
def gptq_cmd(
    model: Annotated[str, typer.Option("--model", help="Model name or path (e.g. smollm2-135m).")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file (appended).")],
    scheme: Annotated[str, typer.Option("--scheme", help="Quantization scheme key, e.g. int4-g128-sym.")] = "int4-g128-sym",
    calibration: Annotated[str, typer.Option("--calibration", help="Composition: eng, multi, target, proportional.")] = "eng",
    langs: Annotated[str, typer.Option("--langs", help="Evaluation languages, comma separated (normalized codes).")] = "eng_Latn,heb_Hebr",
    calib_langs: Annotated[str | None, typer.Option("--calib-langs", help="Languages of multi/proportional calibration (default: --langs).")] = None,
    split: Annotated[str, typer.Option("--split", help="NTREX split evaluated: dev or test.")] = "test",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N evaluation items per language (smoke runs).")] = None,
    n_sequences: Annotated[int, typer.Option("--n-sequences", min=1, help="Calibration sequences.")] = 128,
    seq_len: Annotated[int, typer.Option("--seq-len", min=2, help="Tokens per calibration sequence.")] = 512,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Calibration sampling seed.")] = 0,
    act_order: Annotated[bool, typer.Option("--act-order/--no-act-order", help="GPTQ activation order.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per forward.")] = 16,
) -> None:
    """Evaluate fp32, RTN and GPTQ with a recorded calibration composition."""
    try:
        from qdmodels.calibrated import gptq_condition, gptq_quantized
        from qdmodels.calibration import build_calibration, calibration_pool
        from qdmodels.corpora import load_ntrex
        from qdmodels.evaluation import evaluate_conditions
        from qdmodels.loading import load_model
        from qdmodels.quantization import QuantScheme
        from qdstats.records import write_records

        if split not in ("dev", "test"):
            raise ValueError(f"`--split` must be 'dev' or 'test'; got {split!r}.")
        sch = QuantScheme.parse(scheme)
        eval_langs = _langs(langs)
        c_langs = _langs(calib_langs) if calib_langs else eval_langs
        pool_langs = sorted(set(c_langs) | ({"eng_Latn"} if calibration == "eng" else set()) |
                            (set(eval_langs) if calibration == "target" else set()))
        pool = calibration_pool(pool_langs, sources=("dataset_build",))
    except (ValueError, TypeError, KeyError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        lm = load_model(model)
        items = load_ntrex(eval_langs, split=split, limit=limit).items
        all_items = [it for lang in eval_langs for it in items[lang]]
        recs = []
        if calibration == "target":
            for lang in eval_langs:
                cal = build_calibration(lm.tokenizer, pool, composition="target", target=lang,
                                        n_sequences=n_sequences, seq_len=seq_len, seed=seed)
                cal.check_disjoint(all_items)
                res = evaluate_conditions(lm, items[lang], ["fp32", sch, gptq_condition(sch, cal, act_order=act_order)],
                                          batch_size=batch_size)
                recs.extend(r for er in res.values() for r in er.records)
        else:
            cal = build_calibration(lm.tokenizer, pool, composition=calibration,  # type: ignore[arg-type]
                                    languages=c_langs if calibration in ("multi", "proportional") else None,
                                    n_sequences=n_sequences, seq_len=seq_len, seed=seed)
            cal.check_disjoint(all_items)
            res = evaluate_conditions(lm, all_items, ["fp32", sch, gptq_condition(sch, cal, act_order=act_order)],
                                      batch_size=batch_size)
            recs.extend(r for er in res.values() for r in er.records)
            with gptq_quantized(lm, sch, cal, act_order=act_order) as rep:
                recs.extend(rep.to_records(lm.ref))
        write_records(out, recs)
        _err(f"wrote {len(recs)} records to {out}")
    except (ValueError, TypeError, KeyError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 -- any other failure is a failed run (exit 1)
        _err(f"failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None


@app.command("proxies")
def proxies_cmd(
    model: Annotated[str, typer.Option("--model", help="Model name or path (e.g. smollm2-135m).")],
    out: Annotated[Path, typer.Option("--out", help="Output JSONL file (appended).")],
    scheme: Annotated[str, typer.Option("--scheme", help="Quantization scheme key.")] = "int4-g128-sym",
    langs: Annotated[str, typer.Option("--langs", help="Languages, comma separated.")] = "eng_Latn,heb_Hebr",
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="First N NTREX dev items per language.")] = None,
    granularity: Annotated[str, typer.Option("--granularity", help="layer or component.")] = "layer",
    n_resamples: Annotated[int, typer.Option("--n-resamples", min=0, help="Sweep cluster-bootstrap resamples.")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per forward.")] = 16,
    skip_sweep: Annotated[bool, typer.Option("--skip-sweep", help="Proxies only (no measured sweep, no validation).")] = False,
) -> None:
    """Per-layer proxies, the measured sweep on the same items, and the proxies' rank correlation with it."""
    try:
        from qdmodels.corpora import load_ntrex
        from qdmodels.loading import load_model
        from qdmodels.proxies import (
            fisher_proxies,
            output_error_proxies,
            validate_proxies,
        )
        from qdmodels.sensitivity import sweep_layers
        from qdstats.records import write_records

        if granularity not in ("layer", "component"):
            raise ValueError(f"`--granularity` must be 'layer' or 'component'; got {granularity!r}.")
        eval_langs = _langs(langs)
    except (ValueError, TypeError, KeyError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    try:
        lm = load_model(model)
        items = load_ntrex(eval_langs, split="dev", limit=limit).items
        recs = output_error_proxies(lm, items, scheme, granularity=granularity, batch_size=batch_size)  # type: ignore[arg-type]
        recs += fisher_proxies(lm, items, scheme, granularity=granularity, batch_size=batch_size)  # type: ignore[arg-type]
        if not skip_sweep:
            sw = sweep_layers(lm, items, scheme, granularity=granularity, n_resamples=n_resamples,  # type: ignore[arg-type]
                              batch_size=batch_size)
            recs += list(sw.records)
            val = validate_proxies(recs, sw.records)
            recs += val
            for r in val:
                _err(f"{r.language} {r.condition['proxy']}: rho={r.value:.3f} "
                     f"[{r.attributes.get('ci_low')}, {r.attributes.get('ci_high')}] n={r.n}")
        write_records(out, recs)
        _err(f"wrote {len(recs)} records to {out}")
    except (ValueError, TypeError, KeyError) as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None
    except Exception as exc:  # noqa: BLE001 -- any other failure is a failed run (exit 1)
        _err(f"failed: {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from None
