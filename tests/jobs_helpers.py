"""Job-service test set-up: a dataset, the tiny model, a service in a temp data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from imagegen import write_dataset

ROOT = Path(__file__).resolve().parent.parent


def cli_env(data_dir: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), LORA_TRAINER_DATA_DIR=str(data_dir), HF_HUB_OFFLINE="1",
                PYTHONUNBUFFERED="1")


def cli(data_dir: Path, *args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib_lora_trainer", *map(str, args)], env=cli_env(data_dir),
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def photos(tmp: Path, n: int = 6) -> Path:
    return write_dataset(tmp / "photos", n=n, size=(96, 96))


def tiny_config(model: Path, name: str, **overrides):
    from lib_lora_trainer.config.presets import resolve_config
    values = {"name": name, "trigger": "zkperson", "base_model": str(model), "engine": "builtin"}
    values.update(overrides)
    return resolve_config("cpu-tiny", values)


def wait_until(predicate, timeout: float = 300, poll: float = 0.3, what: str = "condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
