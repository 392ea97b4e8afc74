"""Training state for `resume`: LoRA weights, optimizer, scheduler, RNG and counters.

Only the small trainable parts are saved (never the base model), into `<name>-...-state/`
with sd-scripts' `train_state.json`, written beside and renamed into place.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from lib_lora_trainer import atomic

STATE_FILE = "train_state.json"
TRAINER_FILE = "trainer.pt"


def save_state(folder: Path, lora_tensors: dict, optimizer, scheduler, epoch: int, step: int,
               epoch_step: int, noise_generator: torch.Generator | None = None) -> Path:
    folder = Path(folder)
    with atomic.atomic_dir(folder, durable=True) as tmp:
        torch.save({
            "lora": lora_tensors,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "noise_generator": None if noise_generator is None else noise_generator.get_state(),
        }, tmp / TRAINER_FILE)
        # sd-scripts' file: current_epoch is the epoch in progress (1-based), current_step the global step.
        (tmp / STATE_FILE).write_text(json.dumps({"current_epoch": epoch, "current_step": step,
                                                  "epoch_step": epoch_step}), encoding="utf-8")
    return folder


def load_state(folder: str | Path) -> tuple[dict, dict]:
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file() or not (folder / TRAINER_FILE).is_file():
        raise ValueError(f"resume: {folder} is not a saved state folder (expected {STATE_FILE} and "
                         f"{TRAINER_FILE}); point resume at a `<name>-...-state` folder.")
    counters = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    blob = torch.load(folder / TRAINER_FILE, map_location="cpu", weights_only=False)
    return counters, blob


def restore_rng(blob: dict) -> None:
    rng = blob.get("rng") or {}
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy" in rng:
        np.random.set_state(rng["numpy"])
    if "python" in rng:
        random.setstate(rng["python"])
