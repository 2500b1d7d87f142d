"""Wall time and peak RSS of the README's main job, ``qd demo`` with its defaults, in a child process.

The model must already be in the cache (``qd models fetch smollm2-135m``), so the time is the job, not the
download. Peak RSS is the child's ``ru_maxrss``; the ratio is against the model's fp32 size.

    python benchmarks/bench_demo.py
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as c


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], limit=24)
    args = p.parse_args()
    info = c.machine()
    qd = shutil.which("qd", path=str(Path(sys.executable).parent)) or shutil.which("qd")
    if qd is None:
        raise SystemExit("the `qd` command is not installed in this environment")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.run([qd, "demo", "--model", args.model, "--limit", str(args.limit), "--out", f"{tmp}/qd-demo"],
                              capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"qd demo failed with exit code {proc.returncode}:\n{proc.stderr[-3000:]}")
    peak = c.ru_maxrss_bytes(resource.RUSAGE_CHILDREN)
    lm = c.load(args.model)
    fp32 = int(lm.ref.n_params) * 4
    result = {"model": args.model, "limit": args.limit, "command": f"qd demo --model {args.model} --limit {args.limit}",
              "wall_s": wall, "peak_rss_bytes": peak, "fp32_bytes": fp32, "ratio_peak_to_fp32": peak / fp32, **info}
    print(f"qd demo: {wall:.0f} s wall, peak RSS {peak / (1 << 20):.0f} MiB = {peak / fp32:.2f}x fp32 size")
    c.write("bench_demo", result, args.out)


if __name__ == "__main__":
    main()
