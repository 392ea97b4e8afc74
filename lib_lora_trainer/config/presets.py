"""Presets: partial overlays on TrainingConfig's defaults. Order: defaults < preset < overrides.

Choices shared by every preset (the reasons are in the descriptions and in README notes):
- alpha = rank (LoRA scale alpha/rank = 1.0). The thesis recipe (rank 128, AdamW 1e-4 constant,
  1600 steps) is the reference; at scale 1 the same learning rate means the same step size
  whatever the rank, as in diffusers/peft (lora_alpha = rank) and in sd-scripts before it had
  alpha. sd-scripts' default alpha 1 at rank 128 would scale every update by 1/128, and 1600
  steps at 1e-4 would barely move the weights.
- learning rate 1e-4 (sd-scripts' docs: about 1e-4 for LoRA; 1e-4 to 4e-5 for the SDXL U-Net).
- bf16 everywhere on GPU; `device.device_corrections` turns it into fp16 on GPUs without bf16
  and into "no" on CPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from .coerce import suggest
from .errors import ConfigError
from .training_config import TrainingConfig

__all__ = ["Preset", "PRESETS", "list_presets", "get_preset", "resolve_config", "apply_preset",
           "KEEP_ON_PRESET_CHANGE"]


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    description: str
    model_types: tuple[str, ...]          # which base models it is meant for ("sd1", "sd2", "sdxl")
    values: Mapping[str, Any] = field(default_factory=dict)
    for_gpu: bool = True                  # offered as a lighter alternative after an out-of-memory

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "description": self.description,
                "model_types": list(self.model_types), "values": dict(self.values), "for_gpu": self.for_gpu}


_ADAFACTOR_ARGS = {"scale_parameter": False, "relative_step": False, "warmup_init": False}

_PRESETS = (
    Preset(
        "sd15-portrait", "SD1.5 portrait",
        "The 2024 thesis recipe for one person: ~16 photos x 100 repeats x 1 epoch at batch 1 = 1600 steps; "
        "rank 128, alpha 128, AdamW 1e-4 constant, bf16, cached latents, 512 px centre crops, text encoder "
        "trained too. Measured peak with sd-scripts: 5.2 GB.",
        ("sd1", "sd2"),
        {"repeats": 100, "epochs": 1, "batch_size": 1, "resolution": 512, "crop": "center",
         "enable_bucket": False, "network_dim": 128, "network_alpha": 128.0, "learning_rate": 1e-4,
         "lr_scheduler": "constant", "lr_warmup": 0, "optimizer": "AdamW", "mixed_precision": "bf16",
         "cache_latents": True, "gradient_checkpointing": False, "train_unet_only": False,
         "shuffle_caption": False, "flip_aug": False}),
    Preset(
        "sd15-style", "SD1.5 style",
        "An art style from many varied images: 10 repeats x 10 epochs at batch 2, aspect-ratio buckets "
        "(no cropping, no upscaling), caption shuffle keeping the trigger first, flips, rank 32, cosine "
        "schedule with 5% warmup, min-SNR 5; a LoRA every 2 epochs to pick the best.",
        ("sd1", "sd2"),
        {"repeats": 10, "epochs": 10, "batch_size": 2, "resolution": 512, "crop": "none",
         "enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 1024, "bucket_reso_steps": 64,
         "bucket_no_upscale": True, "shuffle_caption": True, "keep_tokens": 1, "flip_aug": True,
         "network_dim": 32, "network_alpha": 32.0, "learning_rate": 1e-4, "lr_scheduler": "cosine",
         "lr_warmup": 0.05, "optimizer": "AdamW", "min_snr_gamma": 5.0, "mixed_precision": "bf16",
         "cache_latents": True, "save_every_n_epochs": 2}),
    Preset(
        "sd15-6gb", "SD1.5, 6 GB GPU",
        "The portrait recipe (100 repeats x 1 epoch) for 6 GB cards: rank 16, 8-bit AdamW, gradient "
        "checkpointing, cached latents. Estimated peak about 3.6 GB.",
        ("sd1", "sd2"),
        {"repeats": 100, "epochs": 1, "batch_size": 1, "resolution": 512, "crop": "center",
         "enable_bucket": False, "network_dim": 16, "network_alpha": 16.0, "learning_rate": 1e-4,
         "lr_scheduler": "constant", "lr_warmup": 0, "optimizer": "AdamW8bit", "mixed_precision": "bf16",
         "cache_latents": True, "gradient_checkpointing": True, "train_unet_only": False}),
    Preset(
        "sdxl-12gb", "SDXL, 12 GB GPU",
        "SDXL at 1024 px on 12 GB: U-Net only with cached text-encoder outputs and latents (sd-scripts "
        "recommends U-Net-only training for SDXL), gradient checkpointing, 8-bit AdamW, rank 32; 20 repeats "
        "x 5 epochs, a LoRA every epoch.",
        ("sdxl",),
        {"repeats": 20, "epochs": 5, "batch_size": 1, "resolution": 1024, "crop": "center",
         "enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 2048, "bucket_reso_steps": 64,
         "shuffle_caption": False, "caption_dropout_rate": 0.0, "network_dim": 32, "network_alpha": 32.0,
         "learning_rate": 1e-4, "lr_scheduler": "constant", "lr_warmup": 0, "optimizer": "AdamW8bit",
         "mixed_precision": "bf16", "cache_latents": True, "cache_latents_to_disk": True,
         "gradient_checkpointing": True, "train_unet_only": True, "cache_text_encoder_outputs": True,
         "save_every_n_epochs": 1}),
    Preset(
        "sdxl-8gb", "SDXL, 8 GB GPU",
        "sd-scripts' documented 8 GB SDXL LoRA: U-Net only, gradient checkpointing, cached text-encoder "
        "outputs and latents, Adafactor (fixed lr: relative_step off, constant_with_warmup, no gradient "
        "clipping, as sd-scripts suggests for it), rank 8.",
        ("sdxl",),
        {"repeats": 20, "epochs": 5, "batch_size": 1, "resolution": 1024, "crop": "center",
         "enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 2048, "bucket_reso_steps": 64,
         "shuffle_caption": False, "caption_dropout_rate": 0.0, "network_dim": 8, "network_alpha": 8.0,
         "learning_rate": 1e-4, "lr_scheduler": "constant_with_warmup", "lr_warmup": 0.05,
         "optimizer": "Adafactor", "optimizer_args": dict(_ADAFACTOR_ARGS), "max_grad_norm": 0.0,
         "mixed_precision": "bf16", "cache_latents": True, "cache_latents_to_disk": True,
         "gradient_checkpointing": True, "train_unet_only": True, "cache_text_encoder_outputs": True,
         "save_every_n_epochs": 1}),
    Preset(
        "cpu-tiny", "Tiny model on CPU (test/demo)",
        "For the tiny random test model: 64 px, fp32, batch 4, rank 8, AdamW 1e-3, 2 repeats x 2 epochs, "
        "cached latents, no data-loader processes, no test grids (the model is random). Finishes in seconds "
        "on 2 CPU cores.",
        ("sd1",),
        {"repeats": 2, "epochs": 2, "batch_size": 4, "resolution": 64, "crop": "center", "enable_bucket": False,
         "network_dim": 8, "network_alpha": 8.0, "learning_rate": 1e-3, "lr_scheduler": "constant",
         "lr_warmup": 0, "optimizer": "AdamW", "mixed_precision": "no", "cache_latents": True,
         "gradient_checkpointing": False, "torch_compile": False, "max_data_loader_n_workers": 0,
         "sample_sampler": "euler_a", "test_after_training": False},
        for_gpu=False),
    Preset(
        "cpu-demo", "Demo model on CPU (cartoon64)",
        "For the embedded 64 px demo model: fp32, batch 4, rank 8, AdamW 2e-3 constant, 10 repeats x 2 epochs "
        "(80 steps for 16 pictures), cached latents. About half a minute on 2 CPU cores. The demo tests "
        "the LoRA itself, in-process.",
        ("sd1",),
        {"repeats": 25, "epochs": 2, "batch_size": 4, "resolution": 64, "crop": "center", "enable_bucket": False,
         "network_dim": 8, "network_alpha": 8.0, "learning_rate": 5e-3, "noise_offset": 0.3, "lr_scheduler": "constant",
         "lr_warmup": 0, "optimizer": "AdamW", "mixed_precision": "no", "cache_latents": True,
         "gradient_checkpointing": False, "torch_compile": False, "max_data_loader_n_workers": 0,
         "sample_sampler": "euler_a", "test_after_training": False},
        for_gpu=False),
)

PRESETS: Mapping[str, Preset] = MappingProxyType({p.id: p for p in _PRESETS})

# What the user typed that a preset switch keeps (identity, data, launch), not training recipe.
KEEP_ON_PRESET_CHANGE = ("name", "base_model", "trigger", "class_token", "engine", "sample_prompts",
                         "sample_every_n_steps", "sample_every_n_epochs", "seed", "num_processes", "gpu_ids",
                         "num_cpu_threads_per_process")


def list_presets(model_type: str | None = None) -> list[Preset]:
    """All presets in display order; with model_type, those meant for it."""
    return [p for p in _PRESETS if model_type is None or model_type in p.model_types]


def get_preset(preset_id: str) -> Preset:
    try:
        return PRESETS[preset_id]
    except (KeyError, TypeError):
        raise ConfigError("preset", f"unknown preset {preset_id!r}.{suggest(str(preset_id), PRESETS)} "
                                    f"Known presets: {', '.join(PRESETS)}.") from None


def resolve_config(preset_id: str | None, overrides: Mapping[str, Any] | None = None) -> TrainingConfig:
    """TrainingConfig from defaults < preset < overrides (overrides win). preset_id None: no preset."""
    data: dict[str, Any] = {}
    if preset_id is not None:
        data.update(get_preset(preset_id).values)
        data["preset"] = preset_id
    overrides = dict(overrides or {})
    if "preset" in overrides and overrides["preset"] != preset_id:
        raise ConfigError("preset", f"overrides name preset {overrides['preset']!r} but "
                                    f"{preset_id!r} is being applied: pass the preset id as preset_id.")
    data.update(overrides)
    return TrainingConfig.from_dict(data)


def apply_preset(cfg: TrainingConfig, preset_id: str) -> TrainingConfig:
    """Switch an existing config to a preset, keeping the fields in KEEP_ON_PRESET_CHANGE."""
    return resolve_config(preset_id, {k: cfg.to_dict()[k] for k in KEEP_ON_PRESET_CHANGE})
