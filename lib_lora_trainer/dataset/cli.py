"""`python -m lib_lora_trainer dataset {check,prepare}`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .check import check_dataset
from .crop import CROP_MODES
from .prepare import PrepareOptions, prepare_dataset
from .report_text import render_report
from .source import open_source
from .zip_import import UnsafeArchiveError

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    ds = sub.add_parser("dataset", help="check and prepare a training dataset")
    dsub = ds.add_subparsers(dest="dataset_command", required=True)

    chk = dsub.add_parser("check", help="report what is wrong with a folder or .zip of images")
    chk.add_argument("src", help="folder or .zip of images (+ .txt captions)")
    chk.add_argument("--trigger", help="trigger word every caption should contain")
    chk.add_argument("--resolution", type=int, default=512, help="training resolution (default 512)")
    chk.add_argument("--json", action="store_true", help="print the report as JSON")
    chk.set_defaults(func=run_check)

    prep = dsub.add_parser("prepare", help="write a kohya dataset: img/<repeats>_<trigger>/, log/, model/")
    prep.add_argument("src", help="folder or .zip of images (+ .txt captions); never modified")
    prep.add_argument("--out", required=True, type=Path, help="output folder (empty, or use --force)")
    prep.add_argument("--trigger", required=True, help="trigger word, e.g. VadymPanchenko")
    prep.add_argument("--class-token", help="class word added to the folder name, e.g. man")
    prep.add_argument("--repeats", type=int, default=100, help="repeats per epoch (default 100)")
    prep.add_argument("--resolution", type=int, default=512, help="output size (default 512)")
    prep.add_argument("--crop", choices=CROP_MODES, default="center",
                      help="center: square centre crop; face: square crop centred on the largest face; "
                           "none: keep the aspect ratio (only shrink)")
    prep.add_argument("--trigger-in-captions", action="store_true",
                      help="put the trigger word first in every caption")
    prep.add_argument("--force", action="store_true", help="replace img/ in a non-empty --out")
    prep.add_argument("--json", action="store_true", help="print the result as JSON")
    prep.set_defaults(func=run_prepare)


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def run_check(args: argparse.Namespace) -> int:
    try:
        with open_source(args.src) as root:
            report = check_dataset(root, args.resolution, args.trigger, display_root=args.src)
    except (ValueError, OSError) as exc:  # includes unsafe archives and bad arguments
        return _usage_error(str(exc))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render_report(report))
    return EXIT_PROBLEMS if report.errors else EXIT_OK


def run_prepare(args: argparse.Namespace) -> int:
    opts = PrepareOptions(out=args.out, trigger=args.trigger, class_token=args.class_token,
                          repeats=args.repeats, resolution=args.resolution, crop=args.crop,
                          trigger_in_captions=args.trigger_in_captions, force=args.force)
    try:
        result = prepare_dataset(args.src, opts)
    except UnsafeArchiveError as exc:
        return _usage_error(str(exc))
    except (ValueError, OSError, RuntimeError) as exc:
        return _usage_error(str(exc))
    if args.json:
        print(json.dumps({
            "out": str(result.out), "image_dir": str(result.image_dir), "folder": result.folder.name,
            "images": len(result.images), "skipped": result.skipped,
            "steps_per_epoch": result.plan.steps_per_epoch, "problems": [p.to_dict() for p in result.report.problems],
        }, indent=2, ensure_ascii=False))
        return EXIT_OK
    print_prepare_summary(result)
    return EXIT_OK


def print_prepare_summary(result) -> None:
    print(f"Prepared {len(result.images)} images into {result.image_dir}")
    for rel, why in sorted(result.skipped.items()):
        print(f"  skipped {rel}: {why}")
    changed = sum(1 for i in result.images if i.actions)
    print(f"  {changed} images changed (details in {result.out / 'prepare.json'})")
    print(f"  folders: {result.out / 'img'}, {result.out / 'log'}, {result.out / 'model'}")
    print(result.step_sentence())
