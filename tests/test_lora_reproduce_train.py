"""Reproduce from a LoRA, end to end on the tiny model with real subprocesses: `train` a LoRA,
`lora reproduce` it (the job store gives its base model and prepared dataset), then run the
printed `train` command with --continue: the builtin engine starts from the LoRA's weights."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jobs_helpers import cli, photos

torch = pytest.importorskip("torch")

RECIPE = {"max_train_steps": 4, "lr_scheduler": "cosine", "lr_warmup": 1, "optimizer_args": {"weight_decay": 0.05},
          "clip_skip": 2, "noise_offset": 0.05, "min_snr_gamma": 5, "network_dropout": 0.1, "conv_dim": 4,
          "conv_alpha": 2, "text_encoder_lr": 5e-4, "unet_lr": 2e-3, "seed": 7, "shuffle_caption": True,
          "keep_tokens": 1, "flip_aug": True}


def test_train_reproduce_and_continue_from_the_lora(tmp_path, tiny_model):
    from lib_lora_trainer.jobs.service import JobService
    from lib_lora_trainer.lora_file import load_lora

    data, lora_dir = tmp_path / "data", tmp_path / "Lora"
    sets = [x for k, v in RECIPE.items() for x in ("--set", f"{k}={json.dumps(v)}")]
    r = cli(data, "train", photos(tmp_path), "--trigger", "zkperson", "--class-token", "man", "--base", tiny_model,
            "--name", "zk_v1", "--preset", "cpu-tiny", "--lora-dir", lora_dir, *sets)
    assert r.returncode == 0, r.stdout + r.stderr
    lora = lora_dir / "zk_v1.safetensors"
    trained = JobService(data, lora_dir).list()[0].config

    # train again: the job's config comes back (the fields the metadata records)
    r = cli(data, "lora", "reproduce", lora, "--json")
    assert r.returncode == 0, r.stderr
    again = json.loads(r.stdout)
    for key in (*RECIPE, "trigger", "class_token", "name", "base_model", "repeats", "resolution", "batch_size",
                "network_dim", "network_alpha", "learning_rate", "optimizer", "mixed_precision", "enable_bucket"):
        assert again["config"][key] == trained[key], key
    assert again["dataset"]["found"].endswith("/dataset/img/2_zkperson man")   # the job's prepared copy
    assert [m["field"] for m in again["not_recovered"]] == []

    # continue: the printed command trains from the LoRA's weights (a tiny learning rate keeps them)
    r = cli(data, "lora", "reproduce", lora, "--json", "--continue")
    cont = json.loads(r.stdout)
    assert cont["config"]["network_weights"] == str(lora.resolve())
    # (no automatic test after it: that detached renderer would outlive this test and slow later ones)
    command = cont["train_command"][3:] + ["--lora-dir", lora_dir, "--set", "max_train_steps=1",
                                           "--set", "test_after_training=false"] + \
        [x for k in ("learning_rate", "unet_lr", "text_encoder_lr") for x in ("--set", f"{k}=1e-9")]
    r = cli(data, *command)
    assert r.returncode == 0, r.stdout + r.stderr
    job = JobService(data, lora_dir).list()[-1]
    log = (Path(job.job_dir) / "stdout.log").read_text(encoding="utf-8", errors="replace")
    assert re.search(rf"load network weights from {re.escape(str(lora.resolve()))}: \d+ modules", log), log[-2000:]
    before, _ = load_lora(lora)
    after, _ = load_lora(job.installed_path)
    assert before.keys() == after.keys()
    moved = max((before[k].float() - after[k].float()).abs().max().item() for k in before)
    size = max(before[k].float().abs().max().item() for k in before if k.endswith("lora_up.weight"))
    assert size > 1e-3 and moved < size / 100, (moved, size)   # fresh weights would have lora_up = 0
