"""Records behind the seed claims (H1, H3, H4, H6, W2): one model, NTREX-128, eight languages, paired sentences.

Usage (the commands that produced the committed records are in ``analyses/seed_claims/COMMANDS.md``):

    QD_DATA_DIR=../shared/data python analyses/seed_claims/run_records.py --model smollm2-135m \\
        --per-language 200 --steps fp32,int4-g64-sym,int3-g64-sym

Steps (comma-separated; each writes its own file under ``analyses/records/<model>/`` and is skipped when that file
exists, so an interrupted run resumes where it stopped):

``fp32``, ``int4-g64-sym``, ...
    Per-sentence evaluation at full precision or under group RTN fake quantization (H1, and the reference of
    every other claim). Quantized steps also save ``quant.model_bits_per_weight`` / ``quant.bits_per_weight``.
``prune=unstructured-0.5`` and ``int4-g64-sym+prune=unstructured-0.5``
    Magnitude pruning alone and pruning followed by quantization (H6); also ``2:4`` and ``wanda-0.2``
    (activation-aware, calibrated on ``dataset_build`` text: ``--prune-calibration eng`` or ``multi``; the records
    carry ``prune_calibration``, ``prune_calib_tokens`` and ``prune_calib_seed``; files calibrated on ``multi`` or
    with ``--calib-seed N`` get ``_calmulti`` / ``_seed<N>``).
``sweep=int4-g64-sym@test`` / ``sweep=int4-g64-sym@dev``
    Single-layer sensitivity sweep (``qdmodels.eval.sensitivity.sweep_layers``, prefix-cached) on the test items (H3)
    or on the dev items (selection for H4). Resumable per (layer, language) unit. A dev sweep with another
    ``--dev-per-language`` than the first one's 24 writes ``..._dev_d<N>.jsonl`` (its records have ``n = N``), so
    sweeps of different sizes never share a file; the protect steps read the sweep of the given
    ``--dev-per-language``.
``protect=int4-g64-sym@k3`` / ``@k3:disparity`` / ``@k3:random7``
    H4: k layers are kept in full precision and the plan is evaluated on the test items. The rule picks them:
    ``mean`` (the default, no suffix) the k layers with the largest mean dev-split sensitivity over all languages
    English included (from the ``@dev`` sweep, the rule of ``search_protection(method='topk')``); ``disparity`` the
    k layers with the largest mean dev-split excess over English (language's Δ minus English's, averaged over the
    other languages); ``random<seed>`` k layers drawn uniformly without replacement with that seed (the control at
    matched bits per weight: every decoder layer has the same weights). Records carry ``protect_k``,
    ``selection_rule`` (``disparity``/``random``; absent for ``mean``) and ``selection_seed`` (the first records,
    ``eval_protect_int4-g64-sym_k3``, predate these keys and have none of them), and, for a model loaded from a
    GGUF file, the protected layers' source types (``attributes['source_gguf_types']``).
    Needs the dev sweep (not for random draws).
``bpw=int4-g64-sym``
    Only the storage cost (``quant.model_bits_per_weight``) of the unprotected scheme, for H4's cost column.
``gptq=int4-g64-sym@eng`` / ``@multi`` / ``@target``
    W2: GPTQ-style calibrated quantization (``qdmodels.compress.gptq``) with calibration text from ``dataset_build``
    (never NTREX test): English only, the eight languages balanced, or for each language a model calibrated on
    that language's own text (English's target model is calibrated on English). ``--calib-seed N`` draws other
    calibration sequences and ``--gptq-percdamp p`` changes the dampening (file names get ``_seed<N>`` /
    ``_damp<p>``; the records carry ``calib_seed`` and ``percdamp``), so W2 can be repeated over draws;
    ``--gptq-act-order`` / ``--gptq-true-sequential`` switch on the reference's options (``_actorder`` /
    ``_trueseq`` in the file name, ``act_order: true`` / ``true_sequential: true`` in the condition).

Sentences: the NTREX test split (documents alternately assigned to dev/test by ``DOCUMENT_IDS.tsv`` order),
``--per-language`` lines spread evenly over the split (every k-th line, so every test document contributes), the
same lines in every language (``--subset N``: N of those lines, spread the same way, for cheap controls; their
records carry ``test_subset: N`` in the condition); dev steps use ``--dev-per-language`` lines of the dev split chosen the same way.
Records keep ``eval.bits_per_byte``, ``eval.nll_sum``, ``eval.n_tokens`` and ``eval.n_bytes`` (the other
per-sentence quantities are derivable) and are stored as Parquet to keep the repository small.
Set ``QD_FIXED_TIMESTAMP`` to make provenance timestamps reproducible.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

KEEP = {"eval.bits_per_byte", "eval.nll_sum", "eval.n_tokens", "eval.n_bytes"}
LANGS = ["eng_Latn", "deu_Latn", "fin_Latn", "tur_Latn", "heb_Hebr", "arb_Arab", "kor_Hang", "zho_Hans"]
ROOT = Path(__file__).resolve().parents[2]


def spread(items: list[Any], k: int) -> list[Any]:
    """``k`` items spread evenly over ``items`` (first and last included), in order."""
    n = len(items)
    idx = sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(min(k, n))})
    return [items[i] for i in idx]


def load_items(split: str, per_language: int, langs: list[str]) -> dict[str, list[Any]]:
    from qdmodels.corpora.ntrex import load_ntrex

    pc = load_ntrex(langs, split=split)
    return {lang: spread(list(its), per_language) for lang, its in pc.items.items()}


def slug(step: str) -> str:
    return step.replace("=", "_").replace("@", "_").replace("+", "_").replace(":", "_")


DEV_SWEEP_ITEMS = 24  # the first dev sweeps' size; their files have no size suffix


def sweep_path(out_dir: Path, step: str, dev_per_language: int) -> Path:
    """File of a ``sweep=<scheme>@<split>`` step: dev sweeps of another size than 24 get ``_d<N>``."""
    sized = step.endswith("@dev") and dev_per_language != DEV_SWEEP_ITEMS
    return out_dir / f"{slug(step)}{f'_d{dev_per_language}' if sized else ''}.jsonl"


def _quant_summary(report: Any, model_ref: Any, cond: dict[str, Any]) -> list[Any]:
    """Model-level bits per weight of the quantized model, under the step's condition."""
    from qdstats.records import Measurement

    rep = getattr(report, "quantization", report)  # CompressionReport wraps a QuantizationReport
    if rep is None or not hasattr(rep, "to_records"):
        return []
    out = []
    for r in rep.to_records(model_ref):
        if r.site is None and r.quantity in ("quant.bits_per_weight", "quant.model_bits_per_weight"):
            out.append(Measurement(**{**r.model_dump(exclude={"provenance"}), "condition": cond}))
    return out


def eval_step(lm: Any, items: dict[str, list[Any]], cond: dict[str, Any], apply: Any, batch_size: int,
              quant_records: list[Any]) -> list[Any]:
    """Evaluate ``items`` with ``apply(model)`` (a context manager yielding a report or None) active."""
    from qdmodels.compress.conditions import EvalCondition
    from qdmodels.eval.scoring import evaluate_conditions

    reports: list[Any] = []

    @contextlib.contextmanager
    def _apply(model: Any):  # noqa: ANN202
        with apply(model) as rep:
            reports.append(rep)
            yield rep

    res = evaluate_conditions(lm, items, [EvalCondition(cond, _apply if apply else None)], batch_size=batch_size)
    recs = [r for x in res.values() for r in x.records if r.quantity in KEEP]
    for rep in reports:
        if rep is not None:
            quant_records.extend(_quant_summary(rep, lm.ref, cond))
    return recs


def dev_sensitivity(dev_file: Path, langs: list[str], step: str) -> dict[int, dict[str, float]]:
    """Layer -> {language: dev Δ bits per byte} from the single-layer dev sweep; complete or an error."""
    from qdstats.records import read_records

    if not dev_file.exists():
        raise SystemExit(f"{step}: run the dev sweep step first (missing {dev_file})")
    by_layer: dict[int, dict[str, float]] = {}
    for r in read_records(dev_file):
        if getattr(r, "quantity", None) == "sens.delta_bits_per_byte":
            by_layer.setdefault(int(str(r.condition["sites"]).split(".")[1]), {})[r.language] = r.value
    if {frozenset(v) for v in by_layer.values()} != {frozenset(langs)}:
        raise SystemExit(f"{step}: the dev sweep in {dev_file} does not cover every layer in every language")
    return by_layer


def protection_plan(lm: Any, dev_file: Path, k: int, rule: str, *, langs: list[str], step: str,
                    reference: str = "eng_Latn") -> tuple[Any, dict[str, Any]]:
    """The k layers ``rule`` picks (see the module docstring) and the condition keys that say how."""
    import numpy as np

    from qdmodels.compress.scheme import ProtectionPlan
    from qdmodels.models.blocks import decoder_layers

    n_layers = len(decoder_layers(lm.model))
    if not 1 <= k <= n_layers:
        raise SystemExit(f"{step}: k must be between 1 and the number of decoder layers ({n_layers}); got {k}")
    if rule.startswith("random"):
        seed = int(rule[len("random"):] or 0)
        layers = np.random.default_rng(seed).choice(n_layers, size=k, replace=False)
        sel: dict[str, Any] = {"selection_rule": "random", "selection_seed": seed}
    elif rule in ("mean", "disparity"):
        sens = dev_sensitivity(dev_file, langs, step)
        if rule == "mean":
            score = {layer: float(np.mean(list(v.values()))) for layer, v in sens.items()}
            sel = {"selection_split": "dev"}
        else:
            score = {layer: float(np.mean([d - v[reference] for lang, d in v.items() if lang != reference]))
                     for layer, v in sens.items()}
            sel = {"selection_split": "dev", "selection_rule": "disparity"}
        layers = sorted(score, key=lambda layer: (-score[layer], layer))[:k]
    else:
        raise SystemExit(f"{step}: the selection rule must be 'mean', 'disparity' or 'random<seed>'; got {rule!r}")
    plan = ProtectionPlan(layers=tuple(sorted(int(x) for x in layers)))
    print(f"{step}: protecting layers {plan.layers} (rule {rule})", file=sys.stderr)
    return plan, sel


def with_source_types(lm: Any, recs: list[Any], plan: Any) -> list[Any]:
    """Records annotated with the protected layers' types in the source GGUF file (unchanged for other models)."""
    from qdmodels.compress.gguf_files import describe_layer_source_types, site_source_types

    desc = describe_layer_source_types(site_source_types(lm), plan.layers)
    if desc is None:
        return recs
    return [r.model_copy(update={"attributes": {**r.attributes, "source_gguf_types": desc}}) for r in recs]


def run_step(step: str, lm: Any, args: argparse.Namespace, out_dir: Path) -> None:
    from qdmodels.compress.pruning import PruneSpec, compressed
    from qdmodels.compress.rtn import quantized
    from qdmodels.compress.scheme import QuantScheme
    from qdstats.records import read_parquet, write_parquet

    base = {"scheme": "fp32", "protect": "none", "prune": "none"}
    if args.subset:  # the evaluation sample is part of the design: claims tell subset records apart by this key
        base["test_subset"] = args.subset
    test = load_items("test", args.per_language, args.langs)
    if args.subset:  # a subset of the same test items (cheap controls such as the random-k draws)
        test = {lang: spread(its, args.subset) for lang, its in test.items()}
    extra: list[Any] = []
    if args.subset and (step.startswith(("sweep=", "bpw=")) or step == "fp32"):
        raise SystemExit(f"{step}: --subset is for cheap controls evaluated against the full test records; the sweep, "
                         "storage and fp32 steps always use every --per-language item")
    if step.startswith("sweep="):
        from qdmodels.eval.sensitivity import sweep_layers

        scheme, split = step[len("sweep="):].split("@")
        items = test if split == "test" else load_items("dev", args.dev_per_language, args.langs)
        out = sweep_path(out_dir, step, args.dev_per_language)
        res = sweep_layers(lm, items, scheme, granularity="layer", out=out, batch_size=args.batch_size,
                           n_resamples=2000, rng=0)
        print(f"{step}: {len(res.records)} new records, {len(res.skipped)} units skipped -> {out}", file=sys.stderr)
        return
    if step.startswith("bpw="):  # storage cost only (no evaluation): quantize, record bits per weight, restore
        path = out_dir / f"{slug(step)}.parquet"
        sch = QuantScheme.parse(step[len("bpw="):])
        with quantized(lm.model, sch) as rep:
            extra = _quant_summary(rep, lm.ref, {**base, "scheme": sch.key})
        write_parquet(path, extra)
        print(f"{step}: {len(extra)} quant records -> {path}", file=sys.stderr)
        return
    suffix = f"_n{args.subset}" if args.subset else ""
    if step.startswith("gptq="):  # other calibration draws / dampening than the first records' get their own files
        suffix = (f"_seed{args.calib_seed}" if args.calib_seed else "") + (
            f"_damp{args.gptq_percdamp:g}" if args.gptq_percdamp != 0.1 else "") + (
            "_actorder" if args.gptq_act_order else "") + ("_trueseq" if args.gptq_true_sequential else "") + suffix
    elif "prune=" in step and PruneSpec.parse(step.split("prune=")[1]).needs_calibration:
        # activation-aware pruning calibrated on other text / another draw than the first records' gets its own file
        suffix = ("_calmulti" if args.prune_calibration != "eng" else "") + (
            f"_seed{args.calib_seed}" if args.calib_seed else "") + suffix
    if (step.startswith("protect=") and ":random" not in step and args.dev_per_language != DEV_SWEEP_ITEMS):
        suffix = f"_d{args.dev_per_language}" + suffix  # chosen on a dev sweep of another size
    path = out_dir / f"eval_{slug(step)}{suffix}.parquet"
    if path.exists():
        print(f"{step}: already done ({path})", file=sys.stderr)
        return
    if step == "fp32":
        recs = eval_step(lm, test, base, None, args.batch_size, extra)
    elif step.startswith("protect="):
        scheme, kk = step[len("protect="):].split("@k")
        k, _, rule = kk.partition(":")
        sch = QuantScheme.parse(scheme)
        plan, sel = protection_plan(lm, sweep_path(out_dir, f"sweep={scheme}@dev", args.dev_per_language), int(k), rule or "mean",
                                    langs=args.langs, step=step)
        cond = {**base, "scheme": sch.key, "protect": plan.key, "protect_k": int(k), **sel}
        recs = eval_step(lm, test, cond, lambda m: quantized(m, sch, plan=plan), args.batch_size, extra)
        recs = with_source_types(lm, recs, plan)
    elif step.startswith("gptq="):
        from qdmodels.compress.calibration_sets import (
            build_calibration,
            calibration_pool,
        )
        from qdmodels.compress.gptq import gptq_quantized, gptq_scheme_key

        scheme, comp = step[len("gptq="):].split("@")
        sch = QuantScheme.parse(scheme)
        pool = calibration_pool(args.langs, sources=("dataset_build",))
        targets = [None] if comp != "target" else args.langs
        recs = []
        for target in targets:
            # one GPTQ model per target language takes minutes: keep each target's records in a partial file so
            # an interrupted run resumes at the next target (deleted once the step's file is written)
            partial = path.with_name(f"{path.stem}.{target}.partial.parquet") if target else None
            if partial is not None and partial.exists():
                done = read_parquet(partial)
                recs += [r for r in done if r.quantity in KEEP]
                extra += [r for r in done if r.quantity not in KEEP]
                print(f"{step} target={target}: resumed from {partial}", file=sys.stderr)
                continue
            n_extra = len(extra)
            if comp == "target":
                cal = build_calibration(lm.tokenizer, pool, composition="target", target=target,
                                        n_sequences=args.calib_sequences, seq_len=args.calib_len, seed=args.calib_seed)
                items = {target: test[target]}
            else:
                cal = build_calibration(lm.tokenizer, pool, composition=comp, languages=args.langs if comp == "multi" else None,
                                        n_sequences=args.calib_sequences, seq_len=args.calib_len, seed=args.calib_seed)
                items = test
            cal.check_disjoint([it for v in items.values() for it in v])
            cond = {**base, "scheme": gptq_scheme_key(sch), "method": "gptq", **cal.condition()}
            t0 = time.time()
            cond.update({"percdamp": args.gptq_percdamp, "skip_positions": args.gptq_skip_positions})
            cond.update({k: True for k, on in (("act_order", args.gptq_act_order),
                                               ("true_sequential", args.gptq_true_sequential)) if on})
            recs_t = eval_step(lm, items, cond, lambda m, cal=cal: gptq_quantized(
                m, sch, cal, percdamp=args.gptq_percdamp, skip_positions=args.gptq_skip_positions,
                act_order=args.gptq_act_order, true_sequential=args.gptq_true_sequential),
                args.batch_size, extra)
            recs += recs_t
            if partial is not None:
                write_parquet(partial, recs_t + extra[n_extra:])  # atomic
            print(f"{step} target={target}: {time.time() - t0:.0f} s", file=sys.stderr)
    else:
        scheme, prune = step, None
        if "prune=" in step:
            head, prune = step.split("prune=")
            scheme = head.rstrip("+") or None
        sch = QuantScheme.parse(scheme) if scheme else None
        pr = PruneSpec.parse(prune) if prune else None
        cond = {**base, "scheme": sch.key if sch else "fp32", "prune": pr.key if pr else "none"}
        cal = None
        if pr is not None and pr.needs_calibration:  # Wanda-style: input norms from calibration text, never NTREX test
            from qdmodels.compress.calibration_sets import build_calibration, calibration_pool

            cal = build_calibration(lm.tokenizer, calibration_pool(args.langs, sources=("dataset_build",)),
                                    composition=args.prune_calibration,
                                    languages=args.langs if args.prune_calibration == "multi" else None,
                                    n_sequences=args.calib_sequences, seq_len=args.calib_len, seed=args.calib_seed)
            cal.check_disjoint([it for v in test.values() for it in v])
            cond.update({f"prune_{k}": v for k, v in cal.condition().items()})
        if pr is None:
            recs = eval_step(lm, test, cond, lambda m: quantized(m, sch), args.batch_size, extra)
        else:
            recs = eval_step(lm, test, cond, lambda m: compressed(m, scheme=sch, prune=pr, calibration=cal),
                             args.batch_size, extra)
    write_parquet(path, recs + extra)  # atomic
    for partial in path.parent.glob(f"{path.stem}.*.partial.parquet"):
        partial.unlink()
    print(f"{step}: {len(recs)} eval records (+{len(extra)} quant) -> {path}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--per-language", type=int, default=200)
    ap.add_argument("--dev-per-language", type=int, default=24)
    ap.add_argument("--subset", type=int, default=0,
                    help="evaluate only this many of the --per-language test items (spread over them, so a subset of "
                         "the same sentences); the file name gets _n<subset>")
    ap.add_argument("--langs", default=",".join(LANGS))
    ap.add_argument("--steps", default="fp32,int4-g64-sym,int3-g64-sym")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--calib-sequences", type=int, default=64)
    ap.add_argument("--calib-len", type=int, default=256)
    ap.add_argument("--gptq-percdamp", type=float, default=0.1,
                    help="GPTQ dampening (fraction of mean diag H); 0.1 chosen on NTREX dev, see README; files get "
                         "_damp<p> when not 0.1")
    ap.add_argument("--prune-calibration", choices=("eng", "multi"), default="eng",
                    help="calibration text of Wanda-style pruning (prune=wanda-<s>): English, as the reference "
                         "implementation's C4, or the languages balanced")
    ap.add_argument("--calib-seed", type=int, default=0,
                    help="seed of the calibration draw (which dataset_build sequences); files get _seed<N> when not 0")
    ap.add_argument("--gptq-skip-positions", type=int, default=0,
                    help="leading positions of each calibration row left out of the Hessians")
    ap.add_argument("--gptq-act-order", action="store_true",
                    help="GPTQ columns by decreasing Hessian diagonal (static groups); files get _actorder")
    ap.add_argument("--gptq-true-sequential", action="store_true",
                    help="GPTQ group by group inside each block (q/k/v, o, gate/up, down); files get _trueseq")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    args.langs = args.langs.split(",")

    from qdmodels.cli._common import (
        load as load_model,  # also accepts tiny:<family> (smoke runs)
    )

    out_dir = args.out_dir or ROOT / "analyses" / "records" / args.model
    out_dir.mkdir(parents=True, exist_ok=True)
    lm = load_model(args.model, None)
    for step in args.steps.split(","):
        t0 = time.time()
        run_step(step.strip(), lm, args, out_dir)
        print(f"[{step}] {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
