"""The step count a config will run, as sd-scripts computes it, and the sentence the Train tab shows.

sd-scripts: steps per epoch = ceil(batches / processes / grad_accum), batches counted per bucket;
with max_train_epochs (what we write unless max_train_steps is set) the total is epochs x that;
max_train_steps, when set, is the total and the run stops part-way through an epoch if needed.
"""

from __future__ import annotations

import math
from typing import Iterable

from .steps import StepPlan, plan_steps, warmup_steps
from .training_config import TrainingConfig

__all__ = ["plan_for", "total_steps", "describe_plan", "format_duration"]


def plan_for(cfg: TrainingConfig, num_images: int, bucket_sizes: Iterable[int] | None = None) -> StepPlan:
    """bucket_sizes: images x repeats per bucket when known (a partly filled last batch per bucket
    counts); otherwise one bucket."""
    return plan_steps(num_images, cfg.repeats, cfg.batch_size, cfg.epochs, cfg.grad_accum, cfg.num_processes,
                      bucket_sizes)


def total_steps(cfg: TrainingConfig, num_images: int, bucket_sizes: Iterable[int] | None = None) -> int:
    if cfg.max_train_steps is not None:
        return cfg.max_train_steps
    return plan_for(cfg, num_images, bucket_sizes).total_steps


def format_duration(seconds: float) -> str:
    """'under a minute', 'about 12 min', 'about 2 h 05 min'."""
    minutes = seconds / 60
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"about {round(minutes)} min"
    hours, rest = divmod(round(minutes), 60)
    return f"about {hours} h {rest:02d} min"


def describe_plan(cfg: TrainingConfig, num_images: int, rate_it_s: float | None = None,
                  bucket_sizes: Iterable[int] | None = None) -> str:
    """e.g. "16 images x 100 repeats x 1 epoch / batch 1 = 1600 steps (1600 per epoch), about 7 min
    at the last measured speed (3.9 it/s)"."""
    if num_images < 1:
        return "No images yet: add images to see the number of steps."
    plan = plan_for(cfg, num_images, None if bucket_sizes is None else list(bucket_sizes))
    text = plan.describe()
    if cfg.num_processes > 1:
        text += f" on {cfg.num_processes} processes"
    steps = plan.total_steps
    if cfg.max_train_steps is not None:
        steps = cfg.max_train_steps
        epochs = steps / plan.steps_per_epoch
        text += (f"; max_train_steps stops it at {steps} steps "
                 f"({epochs:.3g} epoch{'' if epochs == 1 else 's'})")
    if cfg.lr_warmup:
        warm = warmup_steps(cfg.lr_warmup, steps)
        if isinstance(cfg.lr_warmup, float):
            text += f"; warmup {cfg.lr_warmup * 100:g}% = {warm} steps"
        else:
            text += f"; warmup {warm} steps"
    if rate_it_s is not None and rate_it_s > 0 and math.isfinite(rate_it_s):
        text += f", {format_duration(steps / rate_it_s)} at the last measured speed ({rate_it_s:.3g} it/s)"
    return text
