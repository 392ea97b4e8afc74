"""`python -m lib_lora_trainer ...`: the headless entry point."""

from __future__ import annotations

import argparse
import importlib
import sys

from lib_lora_trainer import __version__


# Modules only the trainer environment has. A UI environment without them (e.g. the gradio-4 one,
# .venv-ui4) still offers every command; those that train or render say where to run them.
TRAINER_MODULES = ("torch", "diffusers", "transformers", "peft", "accelerate")


def _trainer_only(sub: argparse._SubParsersAction, name: str, missing: str) -> None:
    def refuse(args) -> int:
        print(f"error: `{name}` needs {missing}, which this Python ({sys.executable}) does not have: run it "
              "with the trainer environment's python (e.g. .venv/bin/python -m lib_lora_trainer ...).",
              file=sys.stderr)
        return 2
    p = sub.add_parser(name, help=f"(needs {missing}: not installed in this environment)", add_help=False)
    p.set_defaults(func=refuse, any_arguments=True)


def build_parser() -> argparse.ArgumentParser:
    from lib_lora_trainer.dataset import cli as dataset_cli
    from lib_lora_trainer.engines import cli as engines_cli
    from lib_lora_trainer.evaluate import cli as evaluate_cli
    from lib_lora_trainer.generation import cli as generation_cli
    from lib_lora_trainer.jobs import cli as jobs_cli
    from lib_lora_trainer.models import cli as models_cli
    from lib_lora_trainer.ui import cli as ui_cli

    parser = argparse.ArgumentParser(prog="python -m lib_lora_trainer",
                                     description="Train LoRAs for Stable Diffusion (A1111 extension, headless).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    dataset_cli.add_parser(sub)
    for name, module in (("demo", "lib_lora_trainer.demo.cli"), ("demo-model", "lib_lora_trainer.demo.model_cli")):
        try:
            importlib.import_module(module).add_parser(sub)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] not in TRAINER_MODULES:
                raise
            _trainer_only(sub, name, exc.name)
    models_cli.add_parser(sub)
    generation_cli.add_parser(sub)
    jobs_cli.add_parsers(sub)
    ui_cli.add_parser(sub)
    evaluate_cli.add_parser(sub)
    engines_cli.add_parser(sub)
    importlib.import_module("lib_lora_trainer.lora_file.cli").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not getattr(args, "any_arguments", False):
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
