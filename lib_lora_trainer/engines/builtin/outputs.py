"""Saving LoRA files (kohya format, sd-scripts metadata) and training state during a run."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import torch

from lib_lora_trainer import __version__

from . import logs
from .args import adafactor_relative_step, text_encoder_lr
from .state import save_state

SAVE_DTYPES = {"float": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Written where sd-scripts puts its git commit, so a file says which trainer made it.
IMPLEMENTATION = f"lib_lora_trainer-{__version__}"


def base_metadata(t) -> dict[str, str]:
    """Computed once per run (it hashes the base model file)."""
    from lib_lora_trainer.lora_file import TrainingMetadataInput, build_metadata

    a = t.args
    resolution = a.resolution if t.dataset_raw is None else None
    # sd-scripts' get_optimizer, for Adafactor's relative step: learning_rate and unet_lr become None
    # and lr_scheduler "adafactor:<learning_rate>" before the metadata is written.
    relative = adafactor_relative_step(a)
    params = TrainingMetadataInput(
        session_id=random.randint(0, 2**32), training_started_at=t.started_at, output_name=a.output_name,
        model_type=t.model_type, base_model=a.pretrained_model_name_or_path, datasets=t.data.dataset_infos(),
        network_dim=a.network_dim, network_alpha=a.network_alpha,  # as given: "0" for 0, as sd-scripts writes
        learning_rate=None if relative else a.learning_rate,
        optimizer=t.optimizer_name, max_train_steps=t.max_steps, num_epochs=t.num_epochs,
        num_batches_per_epoch=t.batches_per_epoch, seed=t.seed, v_parameterization=t.v_prediction,
        network_args={k: str(v) for k, v in a.network_args_dict.items()} or None,
        # text_encoder_lr: sd-scripts takes a list's first item before writing it
        network_dropout=a.network_dropout, text_encoder_lr=text_encoder_lr(a), unet_lr=None if relative else a.unet_lr,
        lr_scheduler=f"adafactor:{a.learning_rate}" if relative else a.lr_scheduler,
        lr_warmup_steps=a.lr_warmup_steps, mixed_precision=a.mixed_precision, lowram=a.lowram,
        clip_skip=a.clip_skip, max_token_length=a.max_token_length, cache_latents=a.cache_latents,
        gradient_checkpointing=a.gradient_checkpointing,
        gradient_accumulation_steps=a.gradient_accumulation_steps, max_grad_norm=a.max_grad_norm,
        min_snr_gamma=a.min_snr_gamma, noise_offset=a.noise_offset, training_comment=a.training_comment,
        caption_dropout_rate=a.caption_dropout_rate, prior_loss_weight=a.prior_loss_weight,
        use_dataset_config=t.dataset_raw is not None, resolution=resolution, commit_hash=IMPLEMENTATION,
        min_timestep=a.min_timestep, max_timestep=a.max_timestep,
        num_validation_images=t.data.num_validation_images, validation_seed=a.validation_seed,
        validation_split=a.validation_split, max_validation_steps=a.max_validation_steps,
        validate_every_n_epochs=a.validate_every_n_epochs, validate_every_n_steps=a.validate_every_n_steps,
    )
    return build_metadata(params)


def save_checkpoint(t, name: str, epoch: int, epoch_step: int, final: bool = False,
                    with_state: bool = False) -> Path:
    """Write `<output_dir>/<name>.safetensors` (main process) and, when asked, `<name>-state/`."""
    from lib_lora_trainer.lora_file import finalize_metadata, save_lora

    acc = t.accelerator
    acc.wait_for_everyone()
    path = t.output_dir / f"{name}.safetensors"
    if t.is_main:
        t.output_dir.mkdir(parents=True, exist_ok=True)
        if getattr(t, "_base_metadata", None) is None:
            t._base_metadata = base_metadata(t)
        # sd-scripts' ss_epoch: the running epoch's 0-based index mid-epoch, the epoch count at the end.
        md = finalize_metadata(t._base_metadata, t.global_step, epoch if final else max(0, epoch - 1),
                               time.time(), minimal=t.args.no_metadata)
        logs.saving_line(path.resolve())
        save_lora(path, t.lora_tensors(), md, SAVE_DTYPES.get(t.args.save_precision))
        if with_state or t.args.save_state:
            state_name = f"{t.output_name}-state" if final else f"{name}-state"
            save_state(t.output_dir / state_name, t.lora_tensors(), t.optimizer, t.lr_scheduler,
                       epoch, t.global_step, epoch_step, t.noise_generator)
        _remove_old_epochs(t)
    acc.wait_for_everyone()
    return path


def _remove_old_epochs(t) -> None:
    keep = t.args.save_last_n_epochs
    if not keep:
        return
    pattern = re.compile(rf"^{re.escape(t.output_name)}-(\d{{6}})\.safetensors$")
    epochs = sorted((int(m.group(1)), p) for p in t.output_dir.iterdir() if (m := pattern.match(p.name)))
    for _, p in epochs[:-keep]:
        p.unlink(missing_ok=True)
