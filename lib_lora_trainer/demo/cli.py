"""`python -m lib_lora_trainer demo`: the main job on the embedded default.

For now: generate the sample dataset, check it, prepare it, and print both reports.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from lib_lora_trainer.dataset.check import check_dataset
from lib_lora_trainer.dataset.cli import print_prepare_summary
from lib_lora_trainer.dataset.prepare import PrepareOptions, prepare_dataset
from lib_lora_trainer.dataset.report_text import render_report

from .sample_dataset import DEMO_TRIGGER, write_sample_dataset


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole workflow on a generated sample dataset")
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="where everything is written")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)  # the demo folder is ours: start from a clean slate each run
    photos = write_sample_dataset(out / "photos")
    print(f"[1/2] dataset check {photos} --trigger {DEMO_TRIGGER}\n")
    report = check_dataset(photos, 512, DEMO_TRIGGER)
    sys.stdout.write(render_report(report))
    print(f"\n[2/2] dataset prepare {photos} --out {out / 'dataset'} --trigger {DEMO_TRIGGER} "
          "--class-token person --crop center --trigger-in-captions\n")
    result = prepare_dataset(photos, PrepareOptions(out=out / "dataset", trigger=DEMO_TRIGGER,
                                                    class_token="person", crop="center",
                                                    trigger_in_captions=True))
    print_prepare_summary(result)
    print(f"\nDone in {time.perf_counter() - start:.1f} s. Report: {out / 'dataset' / 'prepare.json'}")
    return 0
