"""Wall time of ``qd card`` with its defaults (fp32, INT8/INT4/INT3 RTN g64, GGUF Q8_0/Q4_0; 8 languages; NTREX test),
model load included, split by stage, with the load average recorded (the CPU is shared).

The model must already be in the cache (``qd models fetch smollm2-135m``) and NTREX in ``QD_DATA_DIR``. The card runs
in this process (so the stage times come back); the budget is the card's own ``--budget-minutes`` default unless
``--budget-minutes`` is given.

    QD_DATA_DIR=/work/shared/data python benchmarks/bench_card.py --model smollm2-135m
    QD_DATA_DIR=/work/shared/data python benchmarks/bench_card.py --model gemma3-270m --budget-minutes 40
"""

from __future__ import annotations

import os
import tempfile
import time

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=0)
    p.add_argument("--budget-minutes", type=float, default=None, help="Card budget (default: make_card's default).")
    args = p.parse_args()
    from qdmodels.workflows.card import make_card

    info = c.machine()
    load_start = os.getloadavg()
    kw = {} if args.budget_minutes is None else {"budget_minutes": args.budget_minutes}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = make_card(args.model, out_dir=f"{tmp}/card", log=print, **kw)
        wall = time.perf_counter() - t0
    load_end = os.getloadavg()
    budget = kw.get("budget_minutes")
    result = {
        "model": args.model,
        "command": "python benchmarks/bench_card.py --model " + args.model
                   + ("" if budget is None else f" --budget-minutes {budget:g}"),
        "wall_s": wall, "stages_s": run.stages, "rounds": run.rounds, "stop_reason": run.stop_reason,
        "precision": run.precision.to_dict(orient="records"), "headlines": run.headlines,
        "loadavg_at_start": list(load_start), "loadavg_at_end": list(load_end), **info,
    }
    print(f"qd card {args.model}: {wall:.0f} s wall; " + ", ".join(f"{k} {v:.0f} s" for k, v in run.stages.items()))
    c.write("bench_card" if args.model == "smollm2-135m" else f"bench_card_{args.model}", result, args.out)


if __name__ == "__main__":
    main()
