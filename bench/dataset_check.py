"""Benchmark: images/s of `dataset check` on 1,000 generated 512-px JPEGs (target >= 200/s on 2 cores).

Run: make bench   (or .venv/bin/python bench/dataset_check.py [--n 1000] [--workers N])
The images are generated once into bench/out/ and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from imagegen import textured  # noqa: E402
from lib_lora_trainer.dataset.check import check_dataset  # noqa: E402


def make_images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = folder / f"img_{i:05d}.jpg"
        if not p.exists():
            textured(i, (512, 512)).save(p, quality=90)
            (folder / f"img_{i:05d}.txt").write_text(f"zkperson, photo {i}, a person in a park\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, os.cpu_count() or 1])
    args = ap.parse_args()
    folder = ROOT / "bench" / "out" / f"check_{args.n}"
    make_images(folder, args.n)
    results = {}
    for workers in args.workers:
        check_dataset(folder, 512, "zkperson", workers=workers)  # warm the page cache and tokenizer
        t = time.perf_counter()
        report = check_dataset(folder, 512, "zkperson", workers=workers)
        dt = time.perf_counter() - t
        results[f"workers={workers}"] = {"seconds": round(dt, 2), "images_per_s": round(args.n / dt, 1),
                                         "problems": len(report.problems)}
    print(json.dumps({"images": args.n, "cpus": os.cpu_count(), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
