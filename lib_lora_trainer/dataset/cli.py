"""`python -m lib_lora_trainer dataset {check,prepare,sample}`."""

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

    smp = dsub.add_parser("sample", help="write the sample dataset (16 pictures of the demo character, with "
                                         "the mistakes real folders have) to try check and prepare on")
    smp.add_argument("out", type=Path, help="folder to write (new or empty)")
    smp.add_argument("--trigger", help="trigger word the captions start with (default: the sample's, zyrette)")
    smp.add_argument("--clean", action="store_true", help="only the 16 pictures and captions, without the mistakes")
    smp.set_defaults(func=run_sample)


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


def run_sample(args: argparse.Namespace) -> int:
    from lib_lora_trainer.demo.sample_dataset import (DEMO_CLASS, DEMO_TRIGGER, SAMPLE_FLAWS, SAMPLE_PICTURES,
                                                      write_sample_dataset)

    out: Path = args.out
    if out.exists() and not out.is_dir():
        return _usage_error(f"{out} is a file: give a new or empty folder.")
    if out.is_dir() and any(out.iterdir()):
        return _usage_error(f"{out} is not empty: give a new or empty folder (the sample never overwrites files).")
    trigger = (args.trigger or "").strip() or DEMO_TRIGGER
    if len(trigger.split()) != 1:
        return _usage_error(f"--trigger {args.trigger!r}: use one word, e.g. {DEMO_TRIGGER}.")
    try:
        write_sample_dataset(out, trigger, flaws=not args.clean)
    except OSError as exc:
        return _usage_error(str(exc))
    extra = "" if args.clean else f", with the mistakes real folders have ({SAMPLE_FLAWS})"
    print(f"Wrote the sample dataset into {out}: {SAMPLE_PICTURES} pictures of '{trigger}' (a {DEMO_CLASS}) with "
          f"captions{extra}.")
    print("Next:")
    print(f"  python -m lib_lora_trainer dataset check {out} --trigger {trigger}")
    print(f"  python -m lib_lora_trainer dataset prepare {out} --out PREPARED --trigger {trigger} "
          f"--class-token {DEMO_CLASS} --trigger-in-captions")
    return EXIT_OK


def print_prepare_summary(result) -> None:
    print(f"Prepared {len(result.images)} images into {result.image_dir}")
    for rel, why in sorted(result.skipped.items()):
        print(f"  skipped {rel}: {why}")
    changed = sum(1 for i in result.images if i.actions)
    print(f"  {changed} images changed (details in {result.out / 'prepare.json'})")
    print(f"  folders: {result.out / 'img'}, {result.out / 'log'}, {result.out / 'model'}")
    print(result.step_sentence())
