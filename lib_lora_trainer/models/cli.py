"""`python -m lib_lora_trainer tiny-model --out DIR [--seed N]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tiny-model", help="write a tiny random SD1-architecture model (for tests and demos)")
    p.add_argument("--out", required=True, type=Path,
                   help="output folder (gets tiny-sd1.safetensors + tiny-sd1.config/)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same file (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .tiny import TINY_FILE_NAME, make_tiny_sd1

    path = make_tiny_sd1(Path(args.out) / TINY_FILE_NAME, seed=args.seed)
    print(path)
    return 0
