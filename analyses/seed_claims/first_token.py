"""Supplement the committed H1 records with ``eval.nll_first`` and ``eval.n_chars`` (issue 15).

The records in ``analyses/records/<model>/eval_<condition>.parquet`` were made before ``eval.nll_first`` (the NLL of
the first scored text token, predicted from the context token) and ``eval.n_chars`` existed. Both need only a
length-2 forward per item (context token + first text token) under the same condition
(:func:`qdmodels.eval.scoring.score_first_token`; ``tests/qdmodels/eval/test_first_token.py`` checks that it equals
the full pass), on the same sentences as ``run_records.py`` (same ``--per-language`` spread of the NTREX test split).

Usage (the command that produced the committed files is in ``analyses/seed_claims/README.md``)::

    QD_DATA_DIR=../shared/data QD_FIXED_TIMESTAMP=2026-12-02T00:00:00+00:00 \\
        python analyses/seed_claims/first_token.py --model smollm2-135m --steps fp32,int4-g64-sym,int3-g64-sym

A step is ``fp32``, a round-to-nearest key (``int4-g64-sym``) or a deployed format (``gguf-q4_0``, ``hqq-4bit-g64``, ...:
whatever ``--quant`` accepts, applied by :func:`qdmodels.compress.conditions.quant_condition` as
``analyses/formats/run.py`` applies it, so the supplement pairs with the format's ``eval_<format>.parquet``).
Each step writes ``first_token_<condition>.parquet`` next to the records and is skipped when it exists; a step whose
``eval_<condition>.parquet`` is missing is an error. The script checks that every supplement record pairs with an
``eval.nll_sum`` record of the committed file (same model, language, item, condition) and that the first-token NLL
is not larger than the whole sentence's.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_records import LANGS, ROOT, load_items, slug  # noqa: E402


def run(model: str, steps: list[str], per_language: int, langs: list[str], out_dir: Path) -> None:
    from qdmodels.cli._common import load as load_model
    from qdmodels.compress.conditions import quant_condition
    from qdmodels.eval.scoring import score_first_token
    from qdstats.records import read_parquet, to_frame, write_parquet

    lm = load_model(model, None)
    items = load_items("test", per_language, langs)
    for step in steps:
        src = out_dir / f"eval_{slug(step)}.parquet"
        out = out_dir / f"first_token_{slug(step)}.parquet"
        if out.exists():
            print(f"{step}: already done ({out})", file=sys.stderr)
            continue
        if not src.exists():
            raise SystemExit(f"{step}: no committed records {src}")
        t0 = time.time()
        if step == "fp32":
            cond, apply = {"scheme": "fp32", "protect": "none", "prune": "none"}, None
        else:  # RTN keys and every deployed format (the condition run_records.py / analyses/formats/run.py record)
            qc = quant_condition(step)
            if qc.check is not None:
                qc.check(lm.model)
            cond, apply = dict(qc.condition), qc.apply
        recs = score_first_token(lm, items, condition=cond, apply=apply)
        committed = to_frame(read_parquet(src))
        nll = committed[committed["quantity"] == "eval.nll_sum"].set_index(["language", "item_id"])["value"]
        first = {(r.language, r.item_id): r.value for r in recs if r.quantity == "eval.nll_first"}
        missing = sorted(set(first) ^ set(nll.index))
        if missing:
            raise SystemExit(f"{step}: supplement and committed records disagree on items, e.g. {missing[:3]}")
        bad = [k for k, v in first.items() if not v <= nll[k] + 1e-6]
        if bad:
            raise SystemExit(f"{step}: first-token NLL exceeds the sentence NLL for {bad[:3]}")
        write_parquet(out, recs)  # atomic
        print(f"{step}: {len(recs)} records -> {out} ({time.time() - t0:.0f} s)", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--per-language", type=int, default=200)
    ap.add_argument("--langs", default=",".join(LANGS))
    ap.add_argument("--steps", default="fp32,int4-g64-sym,int3-g64-sym")
    ap.add_argument("--out-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    out_dir = args.out_dir or ROOT / "analyses" / "records" / args.model
    run(args.model, [s.strip() for s in args.steps.split(",")], args.per_language, args.langs.split(","), out_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
