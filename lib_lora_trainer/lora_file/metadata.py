"""The `__metadata__` of a LoRA file, key for key and string for string as sd-scripts v0.10.1
(train_network.py / sdxl_train_network.py) writes it.

Every value is `str(value)` of what sd-scripts held, so types matter: pass numbers with the type
the user's config had (TOML `network_alpha = 1` prints "1", `1.0` prints "1.0"; an unset float
option prints "None"). Nested structures are json.dumps'ed, as sd-scripts does.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Sequence

from . import modelspec
from .dataset_info import DatasetInfo, dataset_dirs, merged_tag_frequency
from .hashes import model_hash_legacy, sha256_file

ModelType = Literal["sd1", "sd2", "sdxl"]

# The sd-scripts revision whose file format this reproduces. sd-scripts writes its own git commit
# into ss_sd_scripts_commit_hash and modelspec.implementation_version; we write this one.
SD_SCRIPTS_COMMIT = "ae72efb92babe89ff8e70f057e42db68440e8d61"

# What sd-scripts keeps with --no_metadata (train_util.SS_METADATA_MINIMUM_KEYS).
MINIMUM_KEYS = ("ss_v2", "ss_base_model_version", "ss_network_module", "ss_network_dim",
                "ss_network_alpha", "ss_network_args")


@dataclass
class TrainingMetadataInput:
    """What the trainer knows when training starts. Defaults are sd-scripts' argparse defaults."""

    session_id: int  # random.randint(0, 2**32), one per training run
    training_started_at: float  # time.time()
    output_name: str | None
    model_type: ModelType
    base_model: str  # --pretrained_model_name_or_path as given (file, diffusers folder or hub id)
    datasets: list[DatasetInfo]
    network_dim: int | None
    network_alpha: int | float
    learning_rate: float
    optimizer: str  # format_optimizer(...), e.g. "torch.optim.adamw.AdamW(weight_decay=0.1)"
    max_train_steps: int
    num_epochs: int
    num_batches_per_epoch: int  # len(train_dataloader)
    seed: int
    # Hashes of base_model; computed from the file when None (slow: full sha256 of GBs).
    base_model_hash: str | None = None
    base_model_sha256: str | None = None
    vae: str | None = None
    vae_hash: str | None = None
    vae_sha256: str | None = None
    v_parameterization: bool = False
    network_module: str = "networks.lora"
    network_args: Mapping[str, str] | None = None  # --network_args key=value pairs, values as strings
    network_dropout: float | None = None
    text_encoder_lr: float | None = None
    unet_lr: float | None = None
    lr_scheduler: str = "constant"
    lr_warmup_steps: int | float = 0
    mixed_precision: str = "no"
    full_fp16: bool = False
    fp8_base: bool = False
    fp8_base_unet: bool = False
    clip_skip: int | None = None
    max_token_length: int | None = None
    cache_latents: bool = False
    lowram: bool = False
    gradient_checkpointing: bool = False
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    min_snr_gamma: float | None = None
    scale_weight_norms: float | None = None
    noise_offset: float | None = None
    noise_offset_random_strength: bool = False
    multires_noise_iterations: int | None = None
    multires_noise_discount: float = 0.3
    adaptive_noise_scale: float | None = None
    ip_noise_gamma: float | None = None
    ip_noise_gamma_random_strength: bool = False
    zero_terminal_snr: bool = False
    debiased_estimation: bool = False
    loss_type: str = "l2"
    huber_schedule: str = "snr"
    huber_scale: float = 1.0
    huber_c: float = 0.1
    training_comment: str | None = None
    caption_dropout_rate: float = 0.0
    caption_dropout_every_n_epochs: int = 0
    caption_tag_dropout_rate: float = 0.0
    face_crop_aug_range: tuple[float, float] | None = None
    prior_loss_weight: float = 1.0
    num_validation_images: int = 0
    validation_seed: int | None = None
    validation_split: float = 0.0
    max_validation_steps: int | None = None
    validate_every_n_epochs: int | None = None
    validate_every_n_steps: int | None = None
    resize_interpolation: str | None = None
    # True: a --dataset_config run (ss_datasets JSON). False: the classic folder layout
    # (train_data_dir + flat ss_* dataset keys); then exactly one dataset is allowed.
    use_dataset_config: bool = True
    # Global --resolution (sd-scripts' args.resolution); None with a dataset config. Also what
    # modelspec.resolution shows; when None that is the base model's native size instead.
    resolution: int | str | tuple[int, int] | None = None
    commit_hash: str = SD_SCRIPTS_COMMIT
    # modelspec.* (sd-scripts' --metadata_* options); title defaults to output_name.
    title: str | None = None
    trigger_phrase: str | None = None
    author: str | None = None
    description: str | None = None
    license: str | None = None
    tags: str | None = None
    usage_hint: str | None = None
    min_timestep: int | None = None
    max_timestep: int | None = None
    modelspec_extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def v2(self) -> bool:
        return self.model_type == "sd2"


def format_optimizer(optimizer: type | str, kwargs: Mapping[str, Any] | None = None) -> str:
    """sd-scripts' ss_optimizer: "<module>.<class>" then "(k=v,...)" when there are optimizer args."""
    name = optimizer if isinstance(optimizer, str) else f"{optimizer.__module__}.{optimizer.__name__}"
    args = ",".join(f"{k}={v}" for k, v in (kwargs or {}).items())
    return name + (f"({args})" if args else "")


def base_model_version(model_type: ModelType, v_parameterization: bool) -> str:
    if model_type == "sdxl":
        return "sdxl_base_v1-0"  # sd-scripts ignores v-parameterization here
    return ("sd_v2" if model_type == "sd2" else "sd_v1") + ("_v" if v_parameterization else "")


def parse_resolution(value: int | str | Sequence[int] | None) -> tuple[int, int] | None:
    """"512" / "512,768" / 512 / (512, 768) -> (width, height), as sd-scripts' prepare_dataset_args."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [int(r) for r in value.split(",")]
    elif isinstance(value, int):
        value = [value]
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        value = (value[0], value[0])
    if len(value) != 2:
        raise ValueError(f"resolution must be 'size' or 'width,height', got {value}")
    return value


def num_epochs_for(max_train_steps: int, num_batches_per_epoch: int, grad_accum: int = 1) -> int:
    """sd-scripts: ceil(max_train_steps / ceil(batches / grad_accum))."""
    return math.ceil(max_train_steps / math.ceil(num_batches_per_epoch / grad_accum))


def _model_file_keys(path: str, legacy: str | None, sha: str | None, prefix: str) -> dict[str, Any]:
    """sd-scripts hashes only a path that exists (then records its base name); for a folder its
    hash helpers give "IsADirectory". A hub id is recorded as given, without hashes."""
    keys: dict[str, Any] = {}
    name = path
    if legacy is not None or sha is not None or os.path.exists(path):
        if os.path.isdir(path):
            legacy, sha = legacy or "IsADirectory", sha or "IsADirectory"
        keys[f"ss_{prefix}_hash"] = legacy if legacy is not None else model_hash_legacy(path)
        keys[f"ss_new_{prefix}_hash"] = sha if sha is not None else sha256_file(path)
        name = os.path.basename(path)
    keys[f"ss_{prefix}_name"] = name
    return keys


def _dataset_keys(p: TrainingMetadataInput) -> dict[str, Any]:
    if p.use_dataset_config:
        return {
            "ss_datasets": json.dumps([ds.to_metadata() for ds in p.datasets]),
            "ss_tag_frequency": json.dumps(merged_tag_frequency(p.datasets)),
            "ss_dataset_dirs": json.dumps(dataset_dirs(p.datasets)),
        }
    if len(p.datasets) != 1 or not p.datasets[0].subsets:
        raise ValueError("the folder layout (use_dataset_config=False) needs exactly one dataset with subsets")
    ds = p.datasets[0]
    first = ds.subsets[0]  # folder-layout subsets all carry the same global options
    dirs: dict[str, Any] = {}
    reg_dirs: dict[str, Any] = {}
    for s in ds.used_subsets:
        (reg_dirs if s.is_reg else dirs)[s.dir_name] = {"n_repeats": s.num_repeats, "img_count": s.img_count}
    reso = parse_resolution(p.resolution) or ds.size
    return {
        "ss_batch_size_per_device": ds.batch_size,
        "ss_total_batch_size": ds.batch_size * p.gradient_accumulation_steps,  # x processes (1)
        "ss_resolution": reso,
        "ss_color_aug": bool(first.color_aug),
        "ss_flip_aug": bool(first.flip_aug),
        "ss_random_crop": bool(first.random_crop),
        "ss_shuffle_caption": bool(first.shuffle_caption),
        "ss_enable_bucket": bool(ds.enable_bucket),
        "ss_bucket_no_upscale": bool(ds.bucket_no_upscale),
        "ss_min_bucket_reso": ds.min_bucket_reso,
        "ss_max_bucket_reso": ds.max_bucket_reso,
        "ss_keep_tokens": first.keep_tokens,
        "ss_dataset_dirs": json.dumps(dirs),
        "ss_reg_dataset_dirs": json.dumps(reg_dirs),
        "ss_tag_frequency": json.dumps(ds.tag_frequency),
        "ss_bucket_info": json.dumps(ds.bucket_info),
    }


def build_metadata(p: TrainingMetadataInput) -> dict[str, str]:
    """Everything known when training starts. finalize_metadata() adds the per-save keys."""
    md: dict[str, Any] = {
        "ss_session_id": p.session_id,
        "ss_training_started_at": p.training_started_at,
        "ss_output_name": p.output_name,
        "ss_learning_rate": p.learning_rate,
        "ss_text_encoder_lr": p.text_encoder_lr,
        "ss_unet_lr": p.unet_lr,
        "ss_num_train_images": sum(ds.num_train_images for ds in p.datasets),
        "ss_num_validation_images": p.num_validation_images,
        "ss_num_reg_images": sum(ds.num_reg_images for ds in p.datasets),
        "ss_num_batches_per_epoch": p.num_batches_per_epoch,
        "ss_num_epochs": p.num_epochs,
        "ss_gradient_checkpointing": p.gradient_checkpointing,
        "ss_gradient_accumulation_steps": p.gradient_accumulation_steps,
        "ss_max_train_steps": p.max_train_steps,
        "ss_lr_warmup_steps": p.lr_warmup_steps,
        "ss_lr_scheduler": p.lr_scheduler,
        "ss_network_module": p.network_module,
        "ss_network_dim": p.network_dim,
        "ss_network_alpha": p.network_alpha,
        "ss_network_dropout": p.network_dropout,
        "ss_mixed_precision": p.mixed_precision,
        "ss_full_fp16": bool(p.full_fp16),
        "ss_v2": bool(p.v2),
        "ss_base_model_version": base_model_version(p.model_type, p.v_parameterization),
        "ss_clip_skip": p.clip_skip,
        "ss_max_token_length": p.max_token_length,
        "ss_cache_latents": bool(p.cache_latents),
        "ss_seed": p.seed,
        "ss_lowram": p.lowram,
        "ss_noise_offset": p.noise_offset,
        "ss_multires_noise_iterations": p.multires_noise_iterations,
        "ss_multires_noise_discount": p.multires_noise_discount,
        "ss_adaptive_noise_scale": p.adaptive_noise_scale,
        "ss_zero_terminal_snr": p.zero_terminal_snr,
        "ss_training_comment": p.training_comment,
        "ss_sd_scripts_commit_hash": p.commit_hash,
        "ss_optimizer": p.optimizer,
        "ss_max_grad_norm": p.max_grad_norm,
        "ss_caption_dropout_rate": p.caption_dropout_rate,
        "ss_caption_dropout_every_n_epochs": p.caption_dropout_every_n_epochs,
        "ss_caption_tag_dropout_rate": p.caption_tag_dropout_rate,
        "ss_face_crop_aug_range": tuple(p.face_crop_aug_range) if p.face_crop_aug_range else None,
        "ss_prior_loss_weight": p.prior_loss_weight,
        "ss_min_snr_gamma": p.min_snr_gamma,
        "ss_scale_weight_norms": p.scale_weight_norms,
        "ss_ip_noise_gamma": p.ip_noise_gamma,
        "ss_debiased_estimation": bool(p.debiased_estimation),
        "ss_noise_offset_random_strength": p.noise_offset_random_strength,
        "ss_ip_noise_gamma_random_strength": p.ip_noise_gamma_random_strength,
        "ss_loss_type": p.loss_type,
        "ss_huber_schedule": p.huber_schedule,
        "ss_huber_scale": p.huber_scale,
        "ss_huber_c": p.huber_c,
        "ss_fp8_base": bool(p.fp8_base),
        "ss_fp8_base_unet": bool(p.fp8_base_unet),
        "ss_validation_seed": p.validation_seed,
        "ss_validation_split": p.validation_split,
        "ss_max_validation_steps": p.max_validation_steps,
        "ss_validate_every_n_epochs": p.validate_every_n_epochs,
        "ss_validate_every_n_steps": p.validate_every_n_steps,
        "ss_resize_interpolation": p.resize_interpolation,
    }
    md.update(_dataset_keys(p))
    if p.network_args:
        # sd-scripts passes dropout to the network through the same kwargs (a LyCORIS
        # workaround) before dumping them, so it shows up here even when unset.
        net_kwargs = dict(p.network_args)
        net_kwargs.setdefault("dropout", p.network_dropout)
        md["ss_network_args"] = json.dumps(net_kwargs)
    md.update(_model_file_keys(p.base_model, p.base_model_hash, p.base_model_sha256, "sd_model"))
    if p.vae is not None:
        md.update(_model_file_keys(p.vae, p.vae_hash, p.vae_sha256, "vae"))
    out = {k: str(v) for k, v in md.items()}

    timesteps = None
    if p.min_timestep is not None or p.max_timestep is not None:
        timesteps = (p.min_timestep or 0, 1000 if p.max_timestep is None else p.max_timestep)
    optional = {"author": p.author, "description": p.description, "license": p.license,
                "tags": p.tags, "usage_hint": p.usage_hint, "trigger_phrase": p.trigger_phrase,
                **p.modelspec_extra}
    out.update(modelspec.static_keys(
        model_type=p.model_type, v_parameterization=p.v_parameterization,
        title=p.title if p.title is not None else p.output_name,
        reso=parse_resolution(p.resolution), implementation_version=f"sd-scripts/{p.commit_hash}",
        clip_skip=p.clip_skip, timesteps=timesteps, optional=optional))
    return out


def finalize_metadata(md: Mapping[str, str], steps: int, epoch: int, finished_at: float,
                      *, minimal: bool = False) -> dict[str, str]:
    """A copy with the per-save keys. `epoch` as sd-scripts passes it: the 0-based index of the
    running epoch for a step checkpoint, the 1-based epoch number at an epoch end and the total
    epoch count for the final file. minimal=True mirrors --no_metadata."""
    out = dict(md)
    out["ss_training_finished_at"] = str(finished_at)
    out["ss_steps"] = str(steps)
    out["ss_epoch"] = str(epoch)
    if minimal:
        out = {k: v for k, v in out.items() if k in MINIMUM_KEYS or k.startswith("modelspec.")}
    out.setdefault("modelspec.title", f"LoRA@{finished_at}")
    out["modelspec.date"] = modelspec.iso_date(finished_at)
    return out
