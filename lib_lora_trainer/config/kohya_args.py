"""TrainingConfig -> the two sd-scripts documents as plain dicts of native TOML values.

Only keys that engines/builtin/args.py knows are produced (it refuses unknown keys; sd-scripts
would ignore them silently), None values are left out (sd-scripts then uses its own default;
"None" is never written), and everything sd-scripts falls back on in a surprising way is explicit:
caption_extension (its default is ".caption"), resolution and the bucket keys, the network
dimension and alpha (defaults 4 and 1), the learning rate (2e-6), mixed precision ("no"), the
number of data-loader workers (8). Pure functions: toml_writer.py does the files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError
from .training_config import TrainingConfig, check_for_model

__all__ = ["Subset", "run_args", "dataset_config", "optimizer_arg_strings", "ADAFACTOR_FIXED_LR"]

# Adafactor with a fixed learning rate. Without optimizer_args both engines (sd-scripts' get_optimizer,
# and the builtin engine after it) turn relative_step on: Adafactor then sets its own step size and the
# learning rate and lr_scheduler are only logged. Presets that want the fixed lr list these.
ADAFACTOR_FIXED_LR = {"scale_parameter": False, "relative_step": False, "warmup_init": False}


@dataclass(frozen=True)
class Subset:
    image_dir: str
    num_repeats: int
    class_tokens: str


def _literal(value: Any) -> str:
    """A value as sd-scripts' ast.literal_eval reads it back."""
    if isinstance(value, (list, tuple)):
        return "(" + ",".join(repr(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def optimizer_arg_strings(cfg: TrainingConfig) -> list[str]:
    """The user's optimizer_args, nothing added: both engines then read the same TOML the same way."""
    if cfg.optimizer == "Adafactor":
        _check_adafactor(cfg)
    return [f"{k}={_literal(v)}" for k, v in cfg.optimizer_args.items()]


def _adafactor_relative_step(cfg: TrainingConfig) -> bool:
    """sd-scripts: relative_step defaults to on, and warmup_init turns it back on."""
    args = cfg.optimizer_args
    return bool(args.get("relative_step", True)) or bool(args.get("warmup_init", False))


def _check_adafactor(cfg: TrainingConfig) -> None:
    """What sd-scripts would stop on (or crash on) once training starts, said before it does."""
    fixed = ", ".join(f"{k}={v}" for k, v in ADAFACTOR_FIXED_LR.items())
    if _adafactor_relative_step(cfg):
        if cfg.lr_warmup:
            raise ConfigError("lr_warmup", f"Adafactor without relative_step=False in optimizer_args runs its own "
                                           f"schedule and takes no warmup (sd-scripts refuses one), got lr_warmup "
                                           f"{cfg.lr_warmup!r}: set it to 0, or set optimizer_args {fixed} for a "
                                           f"fixed learning rate.")
    elif cfg.lr_scheduler == "adafactor":
        raise ConfigError("lr_scheduler", "lr_scheduler 'adafactor' needs Adafactor's relative_step on, but "
                                          "optimizer_args turn it off: choose another lr_scheduler (e.g. "
                                          "'constant_with_warmup').")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def default_workers() -> int:
    return min(2, os.cpu_count() or 1)


def run_args(cfg: TrainingConfig, *, model_type: str, output_dir: str, logging_dir: str | None,
             tokenizer_cache_dir: str | None, sample_prompts_file: str | None = None,
             v_parameterization: bool = False, resume: str | None = None) -> dict[str, Any]:
    """The run.toml (`--config_file`) values, sd-scripts' names and native types."""
    check_for_model(cfg, model_type)
    te_trained = not cfg.train_unet_only
    network_args = []
    if cfg.conv_dim is not None:
        network_args = [f"conv_dim={cfg.conv_dim}", f"conv_alpha={_number_text(cfg.effective_conv_alpha)}"]
    args: dict[str, Any] = {
        # model
        "pretrained_model_name_or_path": cfg.base_model,
        "v2": model_type == "sd2",
        "v_parameterization": bool(v_parameterization),
        "tokenizer_cache_dir": tokenizer_cache_dir,
        "clip_skip": cfg.clip_skip,
        # output
        "output_dir": output_dir,
        "output_name": cfg.name,
        "save_model_as": "safetensors",
        "save_precision": cfg.save_precision,
        "save_every_n_epochs": cfg.save_every_n_epochs,
        "save_every_n_steps": cfg.save_every_n_steps,
        "save_last_n_epochs": cfg.save_last_n_epochs,
        "save_state": cfg.save_state,
        "resume": resume,
        "training_comment": f"trigger: {cfg.trigger}" if cfg.trigger else None,
        # network
        "network_module": "networks.lora",
        "network_dim": cfg.network_dim,
        "network_alpha": cfg.effective_alpha,
        "network_dropout": cfg.network_dropout,
        "network_args": network_args or None,
        "network_weights": cfg.network_weights,   # continue from a LoRA (sd-scripts loads it after apply_to)
        "network_train_unet_only": cfg.train_unet_only,
        # optimisation
        "learning_rate": cfg.learning_rate,
        "unet_lr": cfg.unet_lr,
        "text_encoder_lr": [cfg.text_encoder_lr] if te_trained and cfg.text_encoder_lr is not None else None,
        "lr_scheduler": cfg.lr_scheduler,
        # an int is steps; a float (only when the user gave a ratio) is a ratio of the total
        "lr_warmup_steps": cfg.lr_warmup,
        "lr_scheduler_num_cycles": cfg.lr_scheduler_num_cycles,
        "optimizer_type": cfg.optimizer,
        "optimizer_args": optimizer_arg_strings(cfg) or None,
        "max_grad_norm": cfg.max_grad_norm,
        "min_snr_gamma": cfg.min_snr_gamma,
        "noise_offset": cfg.noise_offset,
        "seed": cfg.seed,
        "train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "mixed_precision": cfg.mixed_precision,
        "gradient_checkpointing": cfg.gradient_checkpointing,
        "sdpa": True,
        "torch_compile": cfg.torch_compile,
        "cache_latents": cfg.cache_latents,
        "cache_latents_to_disk": cfg.cache_latents_to_disk,
        # only when on: train_network.py (SD1/SD2) has no such option and would ignore it
        "cache_text_encoder_outputs": cfg.cache_text_encoder_outputs or None,
        "max_data_loader_n_workers": (cfg.max_data_loader_n_workers if cfg.max_data_loader_n_workers is not None
                                      else default_workers()),
        # logs
        "logging_dir": logging_dir,
        "log_prefix": f"{cfg.name}_" if logging_dir else None,
        "console_log_simple": True,   # plain log lines for the progress parser (no rich wrapping)
    }
    # sd-scripts: max_train_epochs, when given, overrides max_train_steps (default 1600)
    if cfg.max_train_steps is not None:
        args["max_train_steps"] = cfg.max_train_steps
    else:
        args["max_train_epochs"] = cfg.epochs
    args["persistent_data_loader_workers"] = args["max_data_loader_n_workers"] > 0
    if sample_prompts_file:
        args["sample_prompts"] = sample_prompts_file
        args["sample_every_n_steps"] = cfg.sample_every_n_steps
        args["sample_every_n_epochs"] = cfg.sample_every_n_epochs
        args["sample_sampler"] = cfg.sample_sampler
    return {k: v for k, v in args.items() if v is not None}


def dataset_config(cfg: TrainingConfig, subsets: list[Subset], validation_dir: str | None = None) -> dict[str, Any]:
    """The dataset.toml (`--dataset_config`): [general], one [[datasets]], a subset per folder; with
    `validation_dir` (the held-out pictures) a second dataset that is all validation
    (validation_split 1.0: sd-scripts v0.10 and the builtin engine train nothing of it)."""
    general = {"caption_extension": ".txt", "shuffle_caption": cfg.shuffle_caption, "keep_tokens": cfg.keep_tokens,
               "caption_dropout_rate": cfg.caption_dropout_rate, "flip_aug": cfg.flip_aug}
    dataset = {"resolution": cfg.resolution, "batch_size": cfg.batch_size, "enable_bucket": cfg.enable_bucket,
               "min_bucket_reso": cfg.min_bucket_reso, "max_bucket_reso": cfg.max_bucket_reso,
               "bucket_reso_steps": cfg.bucket_reso_steps, "bucket_no_upscale": cfg.bucket_no_upscale,
               "subsets": []}
    for s in subsets:
        sub: dict[str, Any] = {"image_dir": s.image_dir, "num_repeats": s.num_repeats}
        if s.class_tokens:
            sub["class_tokens"] = s.class_tokens
        dataset["subsets"].append(sub)
    datasets = [dataset]
    if validation_dir:
        held = {k: v for k, v in dataset.items() if k != "subsets"}
        held.update(validation_split=1.0, validation_seed=int(cfg.seed or 0),
                    subsets=[{"image_dir": validation_dir, "num_repeats": 1,
                              **({"class_tokens": cfg.trigger} if cfg.trigger else {})}])
        datasets.append(held)
    return {"general": general, "datasets": datasets}
