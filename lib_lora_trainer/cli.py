"""`python -m lib_lora_trainer ...`: the headless entry point."""

from __future__ import annotations

import argparse
import sys

from lib_lora_trainer import __version__


def build_parser() -> argparse.ArgumentParser:
    from lib_lora_trainer.dataset import cli as dataset_cli
    from lib_lora_trainer.evaluate import cli as evaluate_cli
    from lib_lora_trainer.demo import cli as demo_cli
    from lib_lora_trainer.demo import model_cli as demo_model_cli
    from lib_lora_trainer.generation import cli as generation_cli
    from lib_lora_trainer.jobs import cli as jobs_cli
    from lib_lora_trainer.models import cli as models_cli
    from lib_lora_trainer.ui import cli as ui_cli

    parser = argparse.ArgumentParser(prog="python -m lib_lora_trainer",
                                     description="Train LoRAs for Stable Diffusion (A1111 extension, headless).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    dataset_cli.add_parser(sub)
    demo_cli.add_parser(sub)
    demo_model_cli.add_parser(sub)
    models_cli.add_parser(sub)
    generation_cli.add_parser(sub)
    jobs_cli.add_parsers(sub)
    ui_cli.add_parser(sub)
    evaluate_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
