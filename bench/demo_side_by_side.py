"""`make demo` of two checkouts on one machine, alternated, median of N runs each, with the split.

    .venv/bin/python bench/demo_side_by_side.py OLD_CHECKOUT NEW_CHECKOUT [--runs 3]

Each checkout runs its own `python -m lib_lora_trainer demo` with this Python (the same packages),
so the difference is the code and the shipped model. Machines differ by 2x (issue 14: 60 s on one
2-core machine, 107 s on another), so only a side-by-side comparison says "slower" or "faster".
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("checkouts", type=Path, nargs=2)
p.add_argument("--runs", type=int, default=3)
args = p.parse_args()

times: dict[str, list[dict]] = {str(c): [] for c in args.checkouts}
with tempfile.TemporaryDirectory() as tmp:
    for run in range(args.runs):
        for checkout in args.checkouts:
            out = Path(tmp) / f"{checkout.name}-{run}"
            env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "lib_lora_trainer", "demo", "--out", str(out)],
                                  cwd=checkout, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode:
                sys.exit(f"{checkout}: demo failed\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
            t = json.loads((out / "timings.json").read_text())
            t["wall"] = wall
            verdict = next((ln for ln in proc.stdout.splitlines() if "which weight to use" in ln), "").strip()
            times[str(checkout)].append(t)
            print(f"run {run + 1} {checkout}: {wall:.1f} s (check {t['check']:.1f}, train {t['train']:.1f}, "
                  f"test {t['test']:.1f}) {verdict}", flush=True)
for checkout, rows in times.items():
    med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "check", "train", "test")}
    print(f"median of {len(rows)} {checkout}: {med['wall']:.1f} s (check {med['check']:.1f}, "
          f"train {med['train']:.1f}, test {med['test']:.1f})")
