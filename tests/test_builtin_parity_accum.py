"""Builtin engine vs sd-scripts: with gradient accumulation, the epoch's leftover batches still
make an optimizer step (accelerate does that at the end of sd-scripts' DataLoader), so the run
trains the steps it planned: ceil(batches / gradient_accumulation_steps) per epoch."""

from __future__ import annotations

import re

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.lora_file import read_lora_header


def test_leftover_batches_of_an_epoch_make_a_step(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds", n=3, repeats=1)   # 3 batches an epoch, accumulated by 2: 2 steps an epoch
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": None, "max_train_epochs": 2,
                                                        "gradient_accumulation_steps": 2})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    _, md = read_lora_header(tmp_path / "out" / "tiny_lora.safetensors")
    assert md["ss_max_train_steps"] == "4" and md["ss_steps"] == "4"
    bars = re.findall(r"steps: .*?\| (\d+)/(\d+) ", r.stdout + r.stderr)
    assert bars and bars[-1] == ("4", "4")
