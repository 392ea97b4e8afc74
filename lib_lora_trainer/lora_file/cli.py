"""`python -m lib_lora_trainer lora reproduce FILE`: the training config a LoRA was made with."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    lora = sub.add_parser("lora", help="inspect LoRA files; reproduce the run that made one")
    lsub = lora.add_subparsers(dest="lora_command", required=True)
    rep = lsub.add_parser("reproduce", help="rebuild the training config of a kohya-format LoRA (ours or "
                                            "sd-scripts') from its metadata, and say what cannot be recovered")
    rep.add_argument("file", type=Path, help="the LoRA .safetensors")
    rep.add_argument("--continue", dest="continue_", action="store_true",
                     help="start from the LoRA's weights (network_weights) instead of training again from scratch")
    rep.add_argument("--models", action="append", type=Path, default=[], metavar="DIR",
                     help="folder of checkpoints to find the base model in (by name, then hash); repeatable")
    rep.add_argument("--base", help="the base checkpoint to use (skips the search)")
    rep.add_argument("--datasets", action="append", type=Path, default=[], metavar="DIR",
                     help="folder to search for the image folder by name; repeatable")
    rep.add_argument("--dataset", help="the dataset folder for the printed train command")
    rep.add_argument("--preset", help="preset id the printed train command names (a label: differing fields "
                                      "are --set)")
    rep.add_argument("--data-dir", type=Path, help="job store to look in (default LORA_TRAINER_DATA_DIR): the "
                                                   "job that made the LoRA and the base models jobs used")
    rep.add_argument("--write-config", type=Path, metavar="OUT",
                     help="write the TrainingConfig as .json (exact) or .toml (empty values left out)")
    rep.add_argument("--json", action="store_true", help="print the result as JSON")
    rep.set_defaults(func=run_reproduce)


def _job_hints(data_dir: Path | None, lora: Path) -> tuple[list[Path], list[str]]:
    """The job store is read only if it exists (this command never creates one)."""
    from .reproduce import hints_from_jobs

    chosen = data_dir or os.environ.get("LORA_TRAINER_DATA_DIR")
    if not chosen or not (Path(chosen) / "jobs.sqlite3").is_file():
        return [], []
    from lib_lora_trainer.jobs.store import JobStore

    return hints_from_jobs(JobStore(Path(chosen) / "jobs.sqlite3").list(), lora)


def write_config(path: Path, config: dict) -> list[str]:
    """Write the config; returns the fields a TOML file cannot hold (None) that are not None by default."""
    from lib_lora_trainer import atomic
    from lib_lora_trainer.config.training_config import TrainingConfig

    if path.suffix.lower() == ".toml":
        import tomli_w

        defaults = {f.name: f.default for f in TrainingConfig.fields_info()}
        lost = [k for k, v in config.items() if v is None and defaults.get(k) is not None]
        atomic.write_text(path, tomli_w.dumps({k: v for k, v in config.items() if v is not None}))
        return lost
    atomic.write_text(path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return []


def render(r, command: list[str]) -> str:
    lines = [f"LoRA: {r.source}", f"  made by {r.made_by}; model type {r.model_type or 'unknown'}; mode {r.mode}"]
    lines.append(f"Recovered ({len(r.recovered)} fields):")
    width = max((len(k) for k in r.recovered), default=0)
    for key, source in r.recovered.items():
        lines.append(f"  {key:<{width}} = {json.dumps(r.config.get(key))}   ({source})")
    if r.not_recovered:
        lines.append("Not recovered:")
        lines += [f"  {m.field}: {m.reason}" for m in r.not_recovered]
    if r.notes:
        lines.append("Notes:")
        lines += [f"  - {n}" for n in r.notes]
    lines.append(f"Defaults (not in the metadata): {', '.join(r.defaults)}")
    lines.append("Train " + ("on from this LoRA:" if r.mode == "continue" else "again:"))
    lines.append("  " + shlex.join(command))
    return "\n".join(lines)


def run_reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce, scan_checkpoints

    if not args.file.is_file():
        print(f"error: {args.file} is not a file", file=sys.stderr)
        return EXIT_USAGE
    roots, bases = _job_hints(args.data_dir, args.file)
    try:
        r = reproduce(args.file, mode="continue" if args.continue_ else "again", base_model=args.base,
                      checkpoints=[*scan_checkpoints(args.models), *bases],
                      dataset_roots=[*roots, *args.datasets])
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    command = r.train_command(args.dataset, args.preset, program=(sys.executable, "-m", "lib_lora_trainer"))
    if args.write_config:
        lost = write_config(args.write_config, r.config)
        if lost:
            print(f"warning: TOML has no empty value: {', '.join(lost)} will read back as the default; use "
                  ".json to keep them", file=sys.stderr)
    if args.json:
        print(json.dumps({**r.to_dict(), "train_command": command}, indent=2, ensure_ascii=False))
    else:
        print(render(r, command))
    return EXIT_OK
