"""Fix what this machine or sd-scripts' runtime checks cannot run, and say why (pure function).

The Train tab shows the corrections before training starts; the job stores them beside the
config. Nothing here probes the hardware: the caller passes what it found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .training_config import TrainingConfig

__all__ = ["Correction", "device_corrections"]


@dataclass(frozen=True)
class Correction:
    field: str
    old: Any
    new: Any
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.old!r} -> {self.new!r} ({self.reason})"


def device_corrections(cfg: TrainingConfig, cuda_available: bool,
                       bf16_supported: bool) -> tuple[TrainingConfig, list[Correction]]:
    """(corrected config, corrections). With nothing to correct the same config comes back."""
    changes: dict[str, Any] = {}
    notes: list[Correction] = []

    def change(name: str, new: Any, reason: str) -> None:
        old = changes.get(name, getattr(cfg, name))
        if old != new:
            changes[name] = new
            notes.append(Correction(name, old, new, reason))

    if not cuda_available:
        if cfg.mixed_precision != "no":
            change("mixed_precision", "no", "no CUDA GPU: fp16 mixed precision requires a GPU (accelerate "
                                            "raises), and bf16 on a CPU is slow and not supported by every CPU")
        if cfg.optimizer == "AdamW8bit":
            change("optimizer", "AdamW", "no CUDA GPU: AdamW8bit needs bitsandbytes on CUDA")
        if cfg.torch_compile:
            change("torch_compile", False, "no CUDA GPU: compiling does not pay off on CPU, and the builtin "
                                           "engine's default compiler (inductor) computes wrong gradients there")
    elif not bf16_supported and cfg.mixed_precision == "bf16":
        change("mixed_precision", "fp16", "this GPU has no bf16 (it came with RTX 30xx/A100); fp16 instead "
                                          "(if the loss turns nan, lower the learning rate)")
    if cfg.lr_scheduler == "constant" and cfg.lr_warmup:
        change("lr_warmup", 0, "lr_scheduler 'constant' takes no warmup (sd-scripts raises \"constant does "
                               "not require num_warmup_steps\"); use 'constant_with_warmup' to keep a warmup")
    if cfg.cache_text_encoder_outputs:
        if not cfg.train_unet_only:
            change("cache_text_encoder_outputs", False, "the text encoder is trained (train_unet_only is off), "
                                                        "so its outputs cannot be cached")
        elif cfg.shuffle_caption or cfg.caption_dropout_rate:
            change("cache_text_encoder_outputs", False, "captions change every step (shuffle_caption or "
                                                        "caption_dropout_rate), so their encodings cannot be "
                                                        "cached")
    if not changes:
        return cfg, []
    return cfg.replace(**changes), notes
