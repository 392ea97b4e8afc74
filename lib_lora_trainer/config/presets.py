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
from .kohya_args import ADAFACTOR_FIXED_LR
from .training_config import TrainingConfig

__all__ = ["Preset", "PRESETS", "list_presets", "get_preset", "resolve_config", "apply_preset",
           "KEEP_ON_PRESET_CHANGE"]


@dataclass(frozen=True)
class Preset:
    """`values` is the overlay; `note` says what the preset is for and why, in words only (no
    numbers that are also values); the description is generated from the values, so the two
    cannot disagree."""
    id: str
    name: str
    note: str
    model_types: tuple[str, ...]          # which base models it is meant for ("sd1", "sd2", "sdxl")
    values: Mapping[str, Any] = field(default_factory=dict)
    for_gpu: bool = True                  # offered as a lighter alternative after an out-of-memory

    @property
    def description(self) -> str:
        return describe_preset(self)

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "description": self.description,
                "model_types": list(self.model_types), "values": dict(self.values), "for_gpu": self.for_gpu}


# Listed explicitly: without them Adafactor (in both engines) ignores the learning rate and schedule.
_ADAFACTOR_ARGS = dict(ADAFACTOR_FIXED_LR)
EXAMPLE_IMAGES = 16   # the step count a description quotes: a typical person dataset (and the demo's)


def format_lr(value: float) -> str:
    """1e-4, 5e-3, 2.5e-4, 0.1: how a learning rate is written in presets and the README."""
    if value >= 0.01:
        return f"{value:g}"
    mantissa, exponent = f"{value:e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _length(c: TrainingConfig) -> str:
    from .steps import plan_steps

    if c.max_train_steps:
        return f"{c.max_train_steps} steps (max_train_steps), {_plural(c.repeats, 'repeat')} per epoch"
    plan = plan_steps(EXAMPLE_IMAGES, c.repeats, c.batch_size, c.epochs, c.grad_accum, c.num_processes)
    accum = f" x grad-accum {c.grad_accum}" if c.grad_accum != 1 else ""
    return (f"{_plural(c.repeats, 'repeat')} x {_plural(c.epochs, 'epoch')} at batch {c.batch_size}{accum} "
            f"= {plan.total_steps} steps for {EXAMPLE_IMAGES} pictures")


def _optimizer(c: TrainingConfig) -> str:
    name = {"AdamW8bit": "8-bit AdamW"}.get(c.optimizer, c.optimizer)
    text = f"{name} {format_lr(c.learning_rate)} {c.lr_scheduler.replace('_with_warmup', '').replace('_', ' ')}"
    if c.lr_warmup:
        text += (f", {c.lr_warmup * 100:g}% warmup" if isinstance(c.lr_warmup, float) and c.lr_warmup < 1
                 else f", {c.lr_warmup} warmup steps")
    if c.optimizer == "Adafactor":
        relative = c.optimizer_args.get("relative_step", True) or c.optimizer_args.get("warmup_init", False)
        text += (" (relative step: Adafactor sets its own step size; the lr and schedule are only logged)"
                 if relative else " (fixed lr: relative_step off)")
    if c.max_grad_norm == 0:
        text += ", no gradient clipping"
    if c.min_snr_gamma:
        text += f", min-SNR {c.min_snr_gamma:g}"
    if c.noise_offset:
        text += f", noise offset {c.noise_offset:g}"
    return text


def _images(c: TrainingConfig) -> str:
    crop = {"center": "centre crops", "face": "square crops on the face", "none": "no cropping"}[c.crop]
    text = f"{c.resolution} px, {crop}"
    if c.enable_bucket:
        text += (f", aspect-ratio buckets {c.min_bucket_reso}-{c.max_bucket_reso} px"
                 + (" (no upscaling)" if c.bucket_no_upscale else ""))
    if c.shuffle_caption:
        text += ", caption shuffle" + (" keeping the trigger first" if c.keep_tokens == 1 else
                                       f" keeping the first {c.keep_tokens} tags" if c.keep_tokens else "")
    if c.caption_dropout_rate:
        text += f", caption dropout {c.caption_dropout_rate:g}"
    if c.flip_aug:
        text += ", flips"
    return text


def _memory(c: TrainingConfig) -> list[str]:
    out = ["fp32" if c.mixed_precision == "no" else c.mixed_precision]
    if c.train_unet_only:
        out.append("U-Net only")
    else:
        out.append("text encoder trained too")
    if c.cache_latents:
        out.append("cached latents" + (" (on disk)" if c.cache_latents_to_disk else ""))
    if c.cache_text_encoder_outputs:
        out.append("cached text-encoder outputs")
    if c.gradient_checkpointing:
        out.append("gradient checkpointing")
    if c.torch_compile:
        out.append("torch.compile")
    if c.max_data_loader_n_workers == 0:
        out.append("no data-loader processes")
    return out


def describe_preset(preset: Preset) -> str:
    """The preset's recipe in words, generated from its values (over TrainingConfig's defaults)."""
    c = TrainingConfig.from_dict({"name": "preset", "base_model": "preset", **preset.values})
    alpha = c.effective_alpha
    network = f"rank {c.network_dim}, alpha {alpha:g}" + (" (scale 1)" if alpha == c.network_dim else "")
    parts = [_length(c), network, _optimizer(c), _images(c), ", ".join(_memory(c))]
    if c.save_every_n_epochs:
        n = c.save_every_n_epochs
        parts.append("a LoRA every epoch" if n == 1 else f"a LoRA every {n} epochs")
    parts.append("automatic test after training" if c.test_after_training else "no automatic test")
    if preset.for_gpu:
        from .vram import estimate_peak_vram_gib

        parts.append(f"estimated peak GPU memory about "
                     f"{estimate_peak_vram_gib(c, preset.model_types[0]).gib:.1f} GiB")
    return "; ".join(parts) + ". " + preset.note


_PRESETS = (
    Preset(
        "sd15-portrait", "SD1.5 portrait",
        "The 2024 thesis recipe for one person; its memory peak was measured with sd-scripts.",
        ("sd1", "sd2"),
        {"repeats": 100, "epochs": 1, "batch_size": 1, "resolution": 512, "crop": "center",
         "enable_bucket": False, "network_dim": 128, "network_alpha": 128.0, "learning_rate": 1e-4,
         "lr_scheduler": "constant", "lr_warmup": 0, "optimizer": "AdamW", "mixed_precision": "bf16",
         "cache_latents": True, "gradient_checkpointing": False, "train_unet_only": False,
         "shuffle_caption": False, "flip_aug": False}),
    Preset(
        "sd15-style", "SD1.5 style",
        "An art style from many varied images; keep the best of the saved LoRAs.",
        ("sd1", "sd2"),
        {"repeats": 10, "epochs": 10, "batch_size": 2, "resolution": 512, "crop": "none",
         "enable_bucket": True, "min_bucket_reso": 256, "max_bucket_reso": 1024, "bucket_reso_steps": 64,
         "bucket_no_upscale": True, "shuffle_caption": True, "keep_tokens": 1, "flip_aug": True,
         "network_dim": 32, "network_alpha": 32.0, "learning_rate": 1e-4, "lr_scheduler": "cosine",
         "lr_warmup": 0.05, "optimizer": "AdamW", "min_snr_gamma": 5.0, "mixed_precision": "bf16",
         "cache_latents": True, "save_every_n_epochs": 2}),
    Preset(
        "sd15-6gb", "SD1.5, 6 GB GPU",
        "The portrait recipe made to fit 6 GB cards.",
        ("sd1", "sd2"),
        {"repeats": 100, "epochs": 1, "batch_size": 1, "resolution": 512, "crop": "center",
         "enable_bucket": False, "network_dim": 16, "network_alpha": 16.0, "learning_rate": 1e-4,
         "lr_scheduler": "constant", "lr_warmup": 0, "optimizer": "AdamW8bit", "mixed_precision": "bf16",
         "cache_latents": True, "gradient_checkpointing": True, "train_unet_only": False}),
    Preset(
        "sdxl-12gb", "SDXL, 12 GB GPU",
        "SDXL on 12 GB cards: sd-scripts recommends U-Net-only training for SDXL.",
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
        "sd-scripts' documented SDXL LoRA for 8 GB cards, with Adafactor set up as sd-scripts suggests.",
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
        "For the tiny random test model, which draws nothing worth testing; finishes in seconds on CPU.",
        ("sd1",),
        {"repeats": 2, "epochs": 2, "batch_size": 4, "resolution": 64, "crop": "center", "enable_bucket": False,
         "network_dim": 8, "network_alpha": 8.0, "learning_rate": 1e-3, "lr_scheduler": "constant",
         "lr_warmup": 0, "optimizer": "AdamW", "mixed_precision": "no", "cache_latents": True,
         "gradient_checkpointing": False, "torch_compile": False, "max_data_loader_n_workers": 0,
         "sample_sampler": "euler_a", "test_after_training": False},
        for_gpu=False),
    Preset(
        "cpu-demo", "Demo model on CPU (cartoon128)",
        "For the embedded demo model (cartoon128) on CPU; the automatic test makes the comparison grid and "
        "the Lora card's preview. Min-SNR weighting and no noise offset: the character's small features "
        "(glasses, brows, lips) come out better, in fewer steps.",
        ("sd1",),
        {"repeats": 15, "epochs": 2, "batch_size": 4, "resolution": 128, "crop": "center", "enable_bucket": False,
         "network_dim": 8, "network_alpha": 8.0, "learning_rate": 5e-3, "min_snr_gamma": 5.0, "lr_scheduler": "constant",
         "lr_warmup": 0, "optimizer": "AdamW", "mixed_precision": "no", "cache_latents": True,
         "gradient_checkpointing": False, "torch_compile": False, "max_data_loader_n_workers": 0,
         "sample_sampler": "euler_a", "test_after_training": True},
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
