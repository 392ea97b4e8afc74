"""Benchmark: builtin-engine steps/s on the tiny SD1-architecture model on CPU (64 px, batch 1 and 4).

Run: .venv/bin/python bench/builtin_cpu.py [--steps 60]
Steady state is read from tqdm's own `steps:` updates, after the first 20% of steps.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from engine_helpers import make_dataset, run_training, write_configs  # noqa: E402

ELAPSED = re.compile(r"\| (\d+)/(\d+) \[(\d+):(\d+)(?::(\d+))?<")


def steady_rate(stderr: str) -> float:
    points = {}
    for update in re.split(r"[\r\n]", stderr):
        m = ELAPSED.search(update) if update.startswith("steps:") else None
        if m:
            parts = [int(x) for x in m.groups()[2:] if x is not None]
            seconds = parts[-1] + 60 * parts[-2] + (3600 * parts[-3] if len(parts) == 3 else 0)
            points[int(m.group(1))] = seconds
    total = max(points)
    start = max(1, total // 5)
    return (total - start) / max(1e-9, points[total] - points[start])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    from lib_lora_trainer.models.tiny import make_tiny_sd1

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_tiny_sd1(tmp / "tiny.safetensors")
        img = make_dataset(tmp / "ds", n=16, repeats=10)
        for batch in (1, 4):
            folder = tmp / f"b{batch}"
            folder.mkdir()
            run, ds = write_configs(folder, model, img, {"max_train_steps": args.steps, "train_batch_size": batch},
                                    ds_over={"batch_size": batch})
            t0 = time.perf_counter()
            r = run_training(run, ds, timeout=1800)
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                print(r.stderr[-2000:], file=sys.stderr)
                return 1
            rate = steady_rate(r.stderr)
            results.append({"batch": batch, "steps": args.steps, "steps_per_s": round(rate, 2),
                            "images_per_s": round(rate * batch, 2), "wall_s": round(wall, 1)})
    print(json.dumps({"model": "tiny SD1 (UNet 0.8M, 64 px)", "device": "cpu", "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
