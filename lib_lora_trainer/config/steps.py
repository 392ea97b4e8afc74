"""Step arithmetic as sd-scripts does it, available before anything is launched.

train_network.py: the dataset yields batches (per bucket: ceil(images x repeats / batch));
max_train_steps = epochs x ceil(batches / processes / grad_accum). A float warmup < 1 is a
ratio of the total steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class StepPlan:
    images: int
    repeats: int
    batch_size: int
    grad_accum: int
    epochs: int
    steps_per_epoch: int
    total_steps: int

    def describe(self) -> str:
        samples = self.images * self.repeats
        text = f"{self.images} images x {self.repeats} repeats"
        if self.epochs != 1:
            text += f" x {self.epochs} epochs"
        else:
            text += " x 1 epoch"
        text += f" / batch {self.batch_size}"
        if self.grad_accum != 1:
            text += f" / grad-accum {self.grad_accum}"
        text += f" = {self.total_steps} steps"
        if self.batch_size == 1 and self.grad_accum == 1:
            text += f" ({samples} per epoch)"
        return text


def batches_per_epoch(bucket_sizes: Iterable[int], batch_size: int) -> int:
    """Each bucket is batched on its own, so a partly filled last batch per bucket counts."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    return sum(math.ceil(n / batch_size) for n in bucket_sizes if n > 0)


def plan_steps(images: int, repeats: int, batch_size: int = 1, epochs: int = 1,
               grad_accum: int = 1, num_processes: int = 1,
               bucket_sizes: Iterable[int] | None = None) -> StepPlan:
    """bucket_sizes: image count per bucket (already x repeats); one bucket when unknown."""
    for name, value in (("images", images), ("repeats", repeats), ("epochs", epochs),
                        ("grad_accum", grad_accum), ("num_processes", num_processes)):
        if value < (0 if name == "images" else 1):
            raise ValueError(f"{name} must be >= 1, got {value}")
    sizes = list(bucket_sizes) if bucket_sizes is not None else [images * repeats]
    batches = batches_per_epoch(sizes, batch_size)
    per_epoch = math.ceil(batches / num_processes / grad_accum)
    return StepPlan(images, repeats, batch_size, grad_accum, epochs, per_epoch, per_epoch * epochs)


def warmup_steps(value: int | float, total_steps: int) -> int:
    """sd-scripts: an int is steps; a float (< 1) is a ratio of the total."""
    if isinstance(value, float):
        if not 0 <= value < 1:
            raise ValueError(f"lr_warmup_steps as a ratio must be in [0, 1), got {value}")
        return int(value * total_steps)
    if value < 0:
        raise ValueError(f"lr_warmup_steps must be >= 0, got {value}")
    return int(value)
