"""The step loop: noise, predict, loss, step; progress lines, saves, samples, stop and NaN checks."""

from __future__ import annotations

import contextlib
import math
import os
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from . import logs, validation
from .conditioning import Conditioning, encode_sd, encode_sdxl, sdxl_time_ids
from .errors import TrainingStopped
from .outputs import save_checkpoint
from .signals import StopRequest


def train_loop(t) -> None:
    a = t.args
    logs.training_summary(t.data.num_train_images, t.data.num_reg_images, t.batches_per_epoch, t.num_epochs,
                          t.data.batch_size, a.gradient_accumulation_steps, t.max_steps,
                          num_validation_images=t.data.num_validation_images)
    stop = StopRequest().install()
    try:
        _run_epochs(t, stop)
    finally:
        stop.uninstall()


def _no_sync_unless(acc, models: list, sync: bool) -> contextlib.ExitStack:
    """No gradient all-reduce (data parallel) on the batches that only accumulate."""
    stack = contextlib.ExitStack()
    if not sync:
        for model in models:
            stack.enter_context(acc.no_sync(model))
    return stack


def _run_epochs(t, stop: StopRequest) -> None:
    a, acc = t.args, t.accelerator
    recorder = logs.LossRecorder()
    bar = logs.progress_bar(t.max_steps, initial=t.global_step, disable=not t.is_main)
    world, rank = acc.num_processes, acc.process_index
    models = [m for m in (t.unet_forward, *t.te_forward) if m is not None]
    # Images load ahead in threads; the batches are the same whatever the count (tested in data).
    workers = min(a.max_data_loader_n_workers, os.cpu_count() or 1) if not t.latents_cached else 0
    # Resumed from a state saved at the last step: nothing is left to train, only the final save.
    for epoch in range(t.first_epoch, t.num_epochs) if t.global_step < t.max_steps else ():
        logs.epoch_line(epoch + 1, t.num_epochs)
        epoch_step = 0
        for batch_index, batch in enumerate(t.data.epoch_batches(epoch, rank=rank, world_size=world, num_workers=workers)):
            if epoch == t.first_epoch and batch_index < t.skip_batches:
                continue  # resumed: these batches were trained before the stop
            # An optimizer step every gradient_accumulation_steps batches and on the epoch's last one,
            # as accelerate does for sd-scripts' DataLoader (ours is not one, so it is said here).
            sync = (batch_index + 1) % a.gradient_accumulation_steps == 0 or batch_index + 1 == t.batches_per_epoch
            with _no_sync_unless(acc, models, sync):
                loss = _step_loss(t, batch)
                acc.backward(loss)  # divided by gradient_accumulation_steps
            if sync:
                if a.max_grad_norm:
                    acc.clip_grad_norm_(t.trainable, a.max_grad_norm)
                t.optimizer.step()
                t.lr_scheduler.step()
                t.optimizer.zero_grad(set_to_none=True)
            value = acc.gather(loss.detach()).mean().item()
            if not math.isfinite(value):
                bar.set_postfix(avr_loss=float("nan"))
                t.fail(f"the loss is NaN at step {t.global_step + 1} (epoch {epoch + 1}); nothing more was saved. "
                       "Lower the learning rate, or use bf16 / fp32 instead of fp16.")
            recorder.add(epoch - t.first_epoch, batch_index, value)
            if not sync:
                continue
            t.global_step += 1
            epoch_step = batch_index + 1
            bar.update(1)
            bar.set_postfix(avr_loss=recorder.average)
            _log_scalars(t, value, recorder.average)
            if validation.wanted_after_step(t):
                validation.run(t, "step", recorder.average, _step_loss)
            if a.save_every_n_steps and t.global_step % a.save_every_n_steps == 0 and t.global_step < t.max_steps:
                save_checkpoint(t, f"{t.output_name}-step{t.global_step:08d}", epoch + 1, epoch_step)
            if a.sample_every_n_steps and t.global_step % a.sample_every_n_steps == 0:
                _samples(t, epoch + 1)
            if _stop_requested(t, stop):
                name = f"{t.output_name}-step{t.global_step:08d}"
                saved = save_checkpoint(t, name, epoch + 1, epoch_step, with_state=True)
                bar.close()
                raise TrainingStopped(f"stopped at step {t.global_step}/{t.max_steps}: saved {saved}", stop.exit_code)
            if t.global_step >= t.max_steps:
                break
        if validation.wanted_after_epoch(t, epoch):
            validation.run(t, "epoch", recorder.average, _step_loss)
        last_epoch = epoch + 1 == t.num_epochs or t.global_step >= t.max_steps
        if a.save_every_n_epochs and (epoch + 1) % a.save_every_n_epochs == 0 and not last_epoch:
            save_checkpoint(t, f"{t.output_name}-{epoch + 1:06d}", epoch + 2, 0)
        if a.sample_every_n_epochs and (epoch + 1) % a.sample_every_n_epochs == 0:
            _samples(t, epoch + 1, by_epoch=True)
        if t.global_step >= t.max_steps:
            break
    bar.close()
    save_checkpoint(t, t.output_name, t.num_epochs, 0, final=True, with_state=a.save_state)
    if t.is_main:
        logs.say("model saved.")
    acc.end_training()


def _stop_requested(t, stop: StopRequest) -> bool:
    # Every process must agree, or one would wait forever in the next all-reduce.
    flag = torch.tensor([1.0 if stop.requested else 0.0], device=t.device)
    if t.accelerator.num_processes > 1:
        flag = t.accelerator.reduce(flag, reduction="sum")
    if flag.item() > 0 and not stop.requested:
        stop.signum = 15
    return flag.item() > 0


def _encode(t, captions: list[str]) -> Conditioning:
    if t.te_cache is not None:
        missing = [c for c in dict.fromkeys(captions) if c not in t.te_cache]
        if missing:
            with torch.no_grad():
                fresh = _encode_now(t, missing)
            for i, c in enumerate(missing):
                t.te_cache[c] = (fresh.hidden[i], None if fresh.pooled is None else fresh.pooled[i])
        hidden = torch.stack([t.te_cache[c][0] for c in captions])
        pooled = None if t.te_cache[captions[0]][1] is None else torch.stack([t.te_cache[c][1] for c in captions])
        return Conditioning(hidden, pooled)
    ctx = nullcontext() if any(t.te_modules) else torch.no_grad()
    with ctx:
        return _encode_now(t, captions)


def _encode_now(t, captions: list[str]) -> Conditioning:
    if t.model_type == "sdxl":
        return encode_sdxl(t.te_forward, t.tokenizers, captions, t.args.max_token_length)
    return encode_sd(t.te_forward[0], t.tokenizers[0], captions, t.args.clip_skip, t.args.max_token_length)


def _step_loss(t, batch, timestep: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The batch's loss; `timestep` and `generator`: validation's fixed timestep and noise."""
    a, sched = t.args, t.noise_scheduler
    if batch.latents is not None:
        latents = batch.latents.to(t.device, dtype=torch.float32)
    else:
        latents = t.encode_images(batch.images).to(t.device)
    g = generator or t.noise_generator
    noise = torch.randn(latents.shape, generator=g, device=t.device, dtype=latents.dtype)
    if a.noise_offset:
        noise = noise + a.noise_offset * torch.randn(latents.shape[0], latents.shape[1], 1, 1, generator=g,
                                                     device=t.device)
    if timestep is not None:
        timesteps = torch.full((latents.shape[0],), timestep, device=t.device, dtype=torch.long)
    else:
        lo = a.min_timestep or 0
        hi = a.max_timestep or sched.config.num_train_timesteps
        timesteps = torch.randint(lo, hi, (latents.shape[0],), generator=g, device=t.device).long()
    noisy = sched.add_noise(latents, noise, timesteps)
    with t.accelerator.autocast():
        cond = _encode(t, list(batch.captions))
        kwargs = {}
        if t.model_type == "sdxl":
            time_ids = sdxl_time_ids(batch.original_sizes, batch.crop_top_lefts, batch.target_sizes, t.device,
                                     cond.hidden.dtype)
            kwargs["added_cond_kwargs"] = {"text_embeds": cond.pooled, "time_ids": time_ids}
        pred = t.unet_forward(noisy.to(t.weight_dtype), timesteps, cond.hidden.to(t.weight_dtype), **kwargs).sample
    target = sched.get_velocity(latents, noise, timesteps) if t.v_prediction else noise
    loss = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=[1, 2, 3])
    loss = loss * batch.loss_weights.to(t.device)
    if a.min_snr_gamma:
        loss = loss * _min_snr_weights(sched, timesteps, a.min_snr_gamma, t.v_prediction)
    return loss.mean()


def _min_snr_weights(sched, timesteps, gamma: float, v_prediction: bool) -> torch.Tensor:
    ac = sched.alphas_cumprod.to(timesteps.device)[timesteps]
    snr = ac / (1 - ac)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if v_prediction else clipped / snr


def _log_scalars(t, current: float, average: float) -> None:
    if not t.args.logging_dir or not t.is_main:
        return
    values = {"loss/current": current, "loss/average": average}
    groups = t.optimizer.param_groups
    names = (["lr/unet"] if t.unet_modules and groups else []) + ["lr/textencoder"]
    for name, group in zip(names, groups):
        values[name] = group["lr"]
    t.accelerator.log(values, step=t.global_step)


def _samples(t, epoch: int, by_epoch: bool = False) -> None:
    if not t.args.sample_prompts or not t.is_main:
        return
    from .sampling import sample_images
    sample_images(t, epoch, by_epoch)
