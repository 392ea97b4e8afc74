"""`python -m lib_lora_trainer.engines.builtin.train --config_file run.toml [--dataset_config dataset.toml]`

Also under `accelerate launch [-m] ...`. Exit codes: 0 done, 1 training failed (e.g. NaN loss),
2 bad configuration, 130 / 143 stopped by SIGINT / SIGTERM after saving.
"""

from __future__ import annotations

import argparse
import os
import sys

# Model hubs are never contacted: every file comes from disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

EXIT_FAILED, EXIT_CONFIG = 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lib_lora_trainer.engines.builtin.train",
                                description="Train a kohya-format LoRA from sd-scripts TOML files.")
    p.add_argument("--config_file", required=True, help="run.toml with sd-scripts argument names")
    p.add_argument("--dataset_config", help="dataset.toml ([general] / [[datasets]] / [[datasets.subsets]])")
    p.add_argument("--console_log_simple", action="store_true", help="accepted for sd-scripts compatibility")
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    from .args import ArgsError, load_toml, parse_args
    from .errors import ConfigError, TrainingFailed, TrainingStopped

    try:
        args = parse_args(load_toml(ns.config_file, "config_file"), where=ns.config_file)
        dataset_raw = load_toml(ns.dataset_config, "dataset_config") if ns.dataset_config else None
        from .trainer import Trainer
        Trainer(args, dataset_raw, dataset_config_path=ns.dataset_config).run()
    except (ArgsError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG
    except TrainingStopped as exc:
        print(str(exc), flush=True)
        return exc.exit_code
    except TrainingFailed as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
