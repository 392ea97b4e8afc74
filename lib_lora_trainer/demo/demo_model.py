"""The shipped demo model: where it is, how it is installed for use, how it is (re)built.

The repository carries only the weights (`assets/cartoon128.safetensors`, fp16, LDM names as
an A1111 checkpoint) and the training card. Everything else a loader needs is written from
code next to an installed copy: `<stem>.config/` (diffusers configs + tokenizer, used by our
loader) and `<stem>.yaml` + `<stem>.text_encoder/` (A1111's per-checkpoint LDM config).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from lib_lora_trainer import atomic
from lib_lora_trainer.models.configs import write_config_folder
from lib_lora_trainer.models.detect import sibling_config_dir
from lib_lora_trainer.models.single_file import save_single_file
from lib_lora_trainer.tokenizer.clip_bpe import write_pretrained_tokenizer

from . import model_arch

ASSETS = Path(__file__).resolve().parent / "assets"
MODEL_NAME = "cartoon128"
SHIPPED_MODEL = ASSETS / f"{MODEL_NAME}.safetensors"
SHIPPED_CARD = ASSETS / f"{MODEL_NAME}.card.json"
SCALING_KEY = "lora_trainer.scaling_factor"


class DemoModelMissing(FileNotFoundError):
    pass


def scaling_factor_of(path: Path) -> float:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if SCALING_KEY not in meta:
        raise ValueError(f"{path}: no {SCALING_KEY} in the file's metadata; rebuild it with "
                         "`python -m lib_lora_trainer demo-model build`")
    return float(meta[SCALING_KEY])


def write_loader_files(model_path: Path) -> None:
    """`<stem>.config/` for our loader and `<stem>.yaml` + `<stem>.text_encoder/` for A1111."""
    scale = scaling_factor_of(model_path)
    with atomic.atomic_dir(sibling_config_dir(model_path)) as tmp:
        write_config_folder("sd1", tmp, overrides=model_arch.overrides(scale))
    te_dir = model_path.with_name(f"{model_path.stem}.text_encoder")
    with atomic.atomic_dir(te_dir) as tmp:
        (tmp / "config.json").write_text(json.dumps(model_arch.TEXT_ENCODER, indent=2), encoding="utf-8")
        write_pretrained_tokenizer(tmp, "sd1")
    atomic.write_text(model_path.with_suffix(".yaml"), model_arch.ldm_yaml(scale, str(te_dir)))


def install_demo_model(models_dir, source: Path = SHIPPED_MODEL) -> Path:
    """Copy the shipped weights into `models_dir` (e.g. A1111's models/Stable-diffusion) with
    the loader files beside them; returns the checkpoint path. Idempotent."""
    if not source.is_file():
        raise DemoModelMissing(f"{source} is missing: build it with `python -m lib_lora_trainer demo-model build`")
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    dest = models_dir / source.name
    if not dest.is_file() or dest.stat().st_size != source.stat().st_size or dest.read_bytes() != source.read_bytes():
        with atomic.atomic_path(dest) as tmp:
            shutil.copyfile(source, tmp)
    write_loader_files(dest)
    return dest


def save_demo_model(unet, vae, text_encoder, out_path: Path, scaling_factor: float, extra: dict | None = None) -> Path:
    """fp16 single file (fits the 25 MB budget), LDM names, scaling factor in the metadata."""
    meta = {SCALING_KEY: str(scaling_factor), "modelspec.title": MODEL_NAME,
            "modelspec.architecture": "stable-diffusion-v1", "modelspec.resolution": "64x64",
            **{k: str(v) for k, v in (extra or {}).items()}}
    save_single_file(unet, vae, text_encoder, out_path, dtype=torch.float16, metadata=meta)
    return out_path
