"""Specification curve of H1 claims on the committed records (issue 15).

    python analyses/seed_claims/speccurve.py --claims H1.int4.llama.heb_Hebr,H1.int4.llama.kor_Hang \\
        --out analyses/seed_claims/speccurve_H1.csv

Loads the claim specs from ``analyses/claims``, the records of ``analyses/records/*/`` (eval + first_token files),
and writes one row per (claim, specification) plus a summary row per claim (full precision), and the
specification-curve figure next to it (same stem, ``.png``). The claims table draws the same figures for every row
whose spec declares ``specifications:`` (``analyses/claims_table/speccurve_<family>_<model>.png``).
Per-specification p-values are Bonferroni-adjusted over the claim's family size in the committed table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    import pandas as pd

    from qdstats.claims import load_specs
    from qdstats.claims.engine import load_record_files
    from qdstats.claims.speccurve import DEFAULT_SPECIFICATIONS, specification_curve
    from qdstats.records import to_frame

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claims", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--family-size", type=int, default=28)
    args = ap.parse_args(argv)
    specs = {s.id: s for s in load_specs(ROOT / "analyses" / "claims")}
    files = sorted((ROOT / "analyses" / "records").glob("*/eval_fp32.parquet")) + sorted(
        (ROOT / "analyses" / "records").glob("*/eval_int*-g64-sym.parquet")) + sorted(
        (ROOT / "analyses" / "records").glob("*/first_token_*.parquet"))
    frame = to_frame(load_record_files(files))
    out = []
    for cid in args.claims.split(","):
        curve = specification_curve(specs[cid], DEFAULT_SPECIFICATIONS, frame, family_size=args.family_size)
        out.append(curve.to_frame().assign(claim_id=cid))
        print(f"{cid}: {curve.n_agree}/{curve.n_specifications} agree, robust={curve.robust}", file=sys.stderr)
    df = pd.concat(out, ignore_index=True)
    df.to_csv(args.out, index=False)
    from qdstats.report.plots import figure_png, specification_curve_plot

    png = args.out.with_suffix(".png")
    png.write_bytes(figure_png(specification_curve_plot(df, title="Specification curves")))
    print(f"wrote {args.out} and {png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
