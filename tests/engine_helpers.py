"""Shared set-up for builtin-engine tests: a tiny model, a tiny dataset, TOML files, runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomli_w

from imagegen import textured

ROOT = Path(__file__).resolve().parent.parent
TRAIN_MODULE = "lib_lora_trainer.engines.builtin.train"


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
             OMP_NUM_THREADS="2", TOKENIZERS_PARALLELISM="false")
    e.pop("ACCELERATE_USE_CPU", None)
    return e


def make_dataset(folder: Path, n: int = 4, repeats: int = 2, sizes=None, trigger: str = "zkperson") -> Path:
    """folder/img/<repeats>_<trigger>/ with n captioned 64-px images; returns the img parent."""
    sub = folder / "img" / f"{repeats}_{trigger}"
    sub.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        size = sizes[i % len(sizes)] if sizes else (64, 64)
        textured(i, size).save(sub / f"{i:02d}.png")
        (sub / f"{i:02d}.txt").write_text(f"{trigger}, photo {i}", encoding="utf-8")
    return folder / "img"


def write_configs(tmp: Path, model: Path, img_dir: Path, run_over: dict | None = None,
                  ds_over: dict | None = None, with_dataset_config: bool = True) -> tuple[Path, Path | None]:
    run = {
        "pretrained_model_name_or_path": str(model), "output_dir": str(tmp / "out"), "output_name": "tiny_lora",
        "save_model_as": "safetensors", "network_module": "networks.lora", "network_dim": 4, "network_alpha": 1,
        "learning_rate": 1e-3, "lr_scheduler": "constant", "optimizer_type": "AdamW", "max_train_steps": 4,
        "train_batch_size": 1, "mixed_precision": "no", "cache_latents": True, "sdpa": True, "seed": 42,
        "max_data_loader_n_workers": 0,
    }
    run.update(run_over or {})
    run = {k: v for k, v in run.items() if v is not None}
    run_path = tmp / "run.toml"
    run_path.write_text(tomli_w.dumps(run), encoding="utf-8")
    if not with_dataset_config:
        return run_path, None
    subsets = [{"image_dir": str(p), "num_repeats": int(p.name.split("_")[0]), "class_tokens": p.name.split("_", 1)[1]}
               for p in sorted(img_dir.iterdir()) if p.is_dir()]
    ds = {"general": {"caption_extension": ".txt", "shuffle_caption": False, "keep_tokens": 0},
          "datasets": [{"resolution": 64, "batch_size": 1, "enable_bucket": False, "subsets": subsets}]}
    for k, v in (ds_over or {}).items():
        ds["datasets"][0][k] = v
    ds_path = tmp / "dataset.toml"
    ds_path.write_text(tomli_w.dumps(ds), encoding="utf-8")
    return run_path, ds_path


def train_cmd(run_path: Path, ds_path: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", TRAIN_MODULE, "--config_file", str(run_path)]
    if ds_path:
        cmd += ["--dataset_config", str(ds_path)]
    return cmd


def run_training(run_path: Path, ds_path: Path | None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(train_cmd(run_path, ds_path), env=env(), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
