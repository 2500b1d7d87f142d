"""Per-layer noise of the single-layer sweeps: median half-width of the 95% CI of each (layer, language) unit's mean
Δ bits per byte, per sweep file (H3's reason for 96 dev sentences instead of 24).

    python analyses/seed_claims/sweep_noise.py > analyses/seed_claims/sweep_noise.txt
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    for f in sorted(ROOT.glob("analyses/records/*/sweep_*.jsonl")):
        recs = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        hw = [(r["attributes"]["ci_high"] - r["attributes"]["ci_low"]) / 2 for r in recs]
        ns = sorted({r.get("n") for r in recs})
        print(f"{f.relative_to(ROOT)}: {len(recs)} units, n = {ns}, median CI half-width {statistics.median(hw):.4f}, "
              f"max {max(hw):.4f} bit/byte")


if __name__ == "__main__":
    main()
