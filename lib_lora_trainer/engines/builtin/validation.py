"""Validation loss on the held-out pictures, as sd-scripts v0.10 computes it: every validation
batch at 4 fixed timesteps (evenly spaced inside [min_timestep, max_timestep]), noise from a
generator seeded with validation_seed (else seed) at the start of each run, the LoRA in eval mode
(no dropout), no gradients. So every run sees the same pictures, noise and timesteps: only the
weights change the number. Printed as sd-scripts' tqdm bars ("validation steps" after a step,
"epoch validation steps" after an epoch, postfix val_avg_loss / val_epoch_avg_loss) and logged to TensorBoard as
loss/validation/{step,epoch}_average and _divergence (minus the training loss)."""

from __future__ import annotations

import sys
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

NUM_TIMESTEPS = 4


def prepare(t) -> None:
    """The validation batches with their latents, encoded once (the VAE's sampling noise is then
    fixed too); called while the VAE is still on the training device."""
    plans = t.data.validation_plans(t.args.max_validation_steps)
    t.val_batches = []
    for plan in plans:
        batch = t.data.load_validation_batch(plan)
        batch.latents, batch.images = t.encode_images(batch.images), None
        t.val_batches.append(batch)


def timesteps(t) -> list[int]:
    a, sched = t.args, t.noise_scheduler
    lo = a.min_timestep or 0
    hi = a.max_timestep or sched.config.num_train_timesteps
    return [int(x) for x in np.linspace(lo, hi, NUM_TIMESTEPS + 2, dtype=int)[1:-1]]


def wanted_after_step(t) -> bool:
    n = t.args.validate_every_n_steps
    return bool(t.val_batches) and bool(n) and t.global_step % n == 0


def wanted_after_epoch(t, epoch: int) -> bool:
    n = t.args.validate_every_n_epochs
    return bool(t.val_batches) and ((epoch + 1) % n == 0 if n else True)


def run(t, kind: str, train_average: float, step_loss: Callable) -> float:
    """kind: "step" or "epoch". Returns the mean validation loss of this run."""
    a = t.args
    seed = a.validation_seed if a.validation_seed is not None else (a.seed or 0)
    generator = torch.Generator(device=t.device).manual_seed(seed)
    steps = timesteps(t)
    models = [m for m in (t.unet, *t.text_encoders) if m.training]
    for m in models:
        m.eval()
    bar = tqdm(total=len(t.val_batches) * len(steps), smoothing=0, file=sys.stderr, disable=not t.is_main,
               desc="validation steps" if kind == "step" else "epoch validation steps")
    losses: list[float] = []
    try:
        with torch.no_grad():
            for batch in t.val_batches:
                for step in steps:
                    loss = step_loss(t, batch, timestep=step, generator=generator)
                    losses.append(t.accelerator.gather(loss.detach()).mean().item())
                    bar.update(1)
                    # sd-scripts' names and order: val_avg_loss after a step, val_epoch_avg_loss after an epoch
                    bar.set_postfix({"val_avg_loss" if kind == "step" else "val_epoch_avg_loss": sum(losses) / len(losses),
                                     "timestep": step})
    finally:
        bar.close()
        for m in models:
            m.train()
    average = sum(losses) / len(losses)
    if a.logging_dir and t.is_main:
        t.accelerator.log({f"loss/validation/{kind}_average": average,
                           f"loss/validation/{kind}_divergence": average - train_average}, step=t.global_step)
    return average
