"""`python -m lib_lora_trainer ui`: serve the Train LoRA tab (and the HTTP API) without A1111."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_PORT = 7861


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ui", help="serve the Train LoRA tab and the HTTP API without A1111")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--lora-dir", type=Path, help="where trained LoRAs are installed (default <data dir>/Lora)")
    p.add_argument("--ckpt-dir", type=Path, help="folder of base checkpoints (.safetensors/.ckpt) to choose from")
    p.add_argument("--data-dir", type=Path, help="job database and folders (default LORA_TRAINER_DATA_DIR)")
    p.add_argument("--auth", metavar="USER:PASS[,USER:PASS]", help="require HTTP Basic credentials (tab and API)")
    p.set_defaults(func=run_ui)


def run_ui(args) -> int:
    from lib_lora_trainer.api.auth import parse_credentials

    from .standalone_app import serve

    try:
        auth = parse_credentials(args.auth) or None
        if args.ckpt_dir is not None and not args.ckpt_dir.is_dir():
            raise ValueError(f"--ckpt-dir {args.ckpt_dir}: no such folder. Give the folder holding your base "
                             ".safetensors/.ckpt files.")
        if not 0 < args.port < 65536:
            raise ValueError(f"--port {args.port}: use a port between 1 and 65535, e.g. {DEFAULT_PORT}.")
        serve(args.host, args.port, args.lora_dir, args.ckpt_dir, args.data_dir, auth)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
