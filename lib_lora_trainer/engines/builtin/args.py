"""The run.toml dialect: sd-scripts' argument names, types and defaults, validated strictly.

sd-scripts silently ignores keys it does not know (kohya_ss#3520: LoRA+ settings that did
nothing). We refuse them, and also refuse keys sd-scripts knows that this engine does not
implement, so a config never means something other than what it says.
"""

from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib_lora_trainer.toml_read import flatten_sections


class ArgsError(ValueError):
    pass


@dataclass(frozen=True)
class Key:
    types: tuple
    default: Any = None
    choices: tuple | None = None
    minimum: float | None = None


_B, _I, _F, _S, _L = (bool,), (int,), (int, float), (str,), (list,)
_OPT = (type(None),)

SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial",
              "adafactor")
OPTIMIZERS = ("adamw", "adamw8bit", "lion", "prodigy", "adafactor")

# Every key the builtin engine reads, with sd-scripts' defaults.
KEYS: dict[str, Key] = {
    # model
    "pretrained_model_name_or_path": Key(_S),
    "v2": Key(_B, False), "v_parameterization": Key(_B, False),
    "tokenizer_cache_dir": Key(_S + _OPT),
    "clip_skip": Key(_I + _OPT, None, minimum=1),
    # 75 is accepted as sd-scripts reads it from a TOML (the same as none); 150/225 encode in 75-token chunks
    "max_token_length": Key(_I + _OPT, None, choices=(None, 75, 150, 225)),
    # output
    "output_dir": Key(_S), "output_name": Key(_S + _OPT),
    "save_model_as": Key(_S, "safetensors", choices=("safetensors",)),
    "save_precision": Key(_S + _OPT, None, choices=(None, "float", "fp16", "bf16")),
    "save_every_n_epochs": Key(_I + _OPT, None, minimum=1), "save_every_n_steps": Key(_I + _OPT, None, minimum=1),
    "save_last_n_epochs": Key(_I + _OPT, None, minimum=1), "save_state": Key(_B, False),
    "resume": Key(_S + _OPT), "training_comment": Key(_S + _OPT), "no_metadata": Key(_B, False),
    # network
    "network_module": Key(_S, None, choices=("networks.lora",)),
    "network_dim": Key(_I + _OPT, None, minimum=1), "network_alpha": Key(_F, 1, minimum=0),
    "network_dropout": Key(_F + _OPT, None, minimum=0), "network_args": Key(_L + _OPT),
    "network_weights": Key(_S + _OPT), "network_train_unet_only": Key(_B, False),
    "network_train_text_encoder_only": Key(_B, False),
    # optimisation
    "learning_rate": Key(_F, 2e-6, minimum=0), "unet_lr": Key(_F + _OPT, None, minimum=0),
    "text_encoder_lr": Key(_F + _L + _OPT, None), "lr_scheduler": Key(_S, "constant", choices=SCHEDULERS),
    "lr_warmup_steps": Key(_F, 0, minimum=0), "lr_scheduler_num_cycles": Key(_I, 1, minimum=1),
    "lr_scheduler_power": Key(_F, 1.0), "optimizer_type": Key(_S, ""), "optimizer_args": Key(_L + _OPT),
    "max_grad_norm": Key(_F, 1.0, minimum=0), "max_train_steps": Key(_I, 1600, minimum=1),
    "max_train_epochs": Key(_I + _OPT, None, minimum=1), "train_batch_size": Key(_I, 1, minimum=1),
    "gradient_accumulation_steps": Key(_I, 1, minimum=1),
    "mixed_precision": Key(_S, "no", choices=("no", "fp16", "bf16")),
    "gradient_checkpointing": Key(_B, False), "sdpa": Key(_B, False), "seed": Key(_I + _OPT, None),
    "no_half_vae": Key(_B, False),
    "torch_compile": Key(_B, False),
    "dynamo_backend": Key(_S, "inductor", choices=("inductor", "eager", "aot_eager", "cudagraphs")),
    "min_snr_gamma": Key(_F + _OPT, None, minimum=0), "noise_offset": Key(_F + _OPT, None, minimum=0),
    "prior_loss_weight": Key(_F, 1.0, minimum=0),
    "min_timestep": Key(_I + _OPT, None, minimum=0), "max_timestep": Key(_I + _OPT, None, minimum=1),
    "cache_latents": Key(_B, False), "cache_latents_to_disk": Key(_B, False),
    "cache_text_encoder_outputs": Key(_B, False),
    "max_data_loader_n_workers": Key(_I, 8, minimum=0), "persistent_data_loader_workers": Key(_B, False),
    # samples and logs
    "sample_prompts": Key(_S + _OPT), "sample_every_n_steps": Key(_I + _OPT, None, minimum=1),
    "sample_every_n_epochs": Key(_I + _OPT, None, minimum=1), "sample_sampler": Key(_S, "ddim"),
    "logging_dir": Key(_S + _OPT), "log_prefix": Key(_S + _OPT),
    "log_with": Key(_S + _OPT, None, choices=(None, "tensorboard")),
    "console_log_simple": Key(_B, False),
    # validation loss (sd-scripts v0.10: the datasets' validation_split part, 4 fixed timesteps)
    "validation_split": Key(_F, 0.0, minimum=0), "validation_seed": Key(_I + _OPT, None),
    "validate_every_n_steps": Key(_I + _OPT, None, minimum=1), "validate_every_n_epochs": Key(_I + _OPT, None, minimum=1),
    "max_validation_steps": Key(_I + _OPT, None, minimum=1),
    # dataset (folder convention; a --dataset_config overrides these per sd-scripts' fallbacks)
    "train_data_dir": Key(_S + _OPT), "reg_data_dir": Key(_S + _OPT), "resolution": Key(_S + _I + _OPT),
    "caption_extension": Key(_S, ".caption"), "shuffle_caption": Key(_B, False), "keep_tokens": Key(_I, 0, minimum=0),
    "caption_dropout_rate": Key(_F, 0.0, minimum=0), "flip_aug": Key(_B, False), "enable_bucket": Key(_B, False),
    "min_bucket_reso": Key(_I, 256, minimum=64), "max_bucket_reso": Key(_I, 1024, minimum=64),
    "bucket_reso_steps": Key(_I, 64, minimum=8), "bucket_no_upscale": Key(_B, False),
}

# sd-scripts flags that change how it runs, never what it trains: accepted (so kohya_ss configs load)
# with one printed note each when set. The value stays readable (ss_lowram records it).
NO_EFFECT = {
    "xformers": "the builtin engine uses PyTorch's scaled-dot-product attention (the same result)",
    "mem_eff_attn": "the builtin engine uses PyTorch's scaled-dot-product attention (the same result)",
    "lowram": "models load the same way whatever it says; only memory use could differ",
    "highvram": "models load the same way whatever it says; only memory use could differ",
}
KEYS.update({key: Key(_B, False) for key in NO_EFFECT})

# sd-scripts reads these; this engine does not implement them (an error, never a silent no-op).
NOT_IMPLEMENTED = {
    "full_fp16", "full_bf16", "fp8_base", "fp8_base_unet",
    "color_aug", "random_crop", "face_crop_aug_range", "multires_noise_iterations", "multires_noise_discount",
    "adaptive_noise_scale", "ip_noise_gamma", "zero_terminal_snr", "scale_v_pred_loss_like_noise_pred",
    "v_pred_like_loss", "debiased_estimation_loss", "masked_loss", "loss_type", "huber_c", "huber_schedule",
    "huber_scale", "weighted_captions", "lr_scheduler_type", "lr_scheduler_args", "lr_decay_steps",
    "lr_scheduler_min_lr_ratio", "dim_from_weights", "network_multiplier", "scale_weight_norms", "base_weights",
    "base_weights_multiplier", "deepspeed", "ddp_timeout", "ddp_gradient_as_bucket_view", "ddp_static_graph",
    "in_json", "dataset_repeats", "vae", "vae_batch_size", "output_config",
    "huggingface_repo_id", "save_state_to_huggingface", "resume_from_huggingface", "save_last_n_steps",
    "save_last_n_epochs_state", "save_last_n_steps_state", "save_state_on_train_end", "wandb_api_key",
    "wandb_run_name", "log_tracker_name", "log_tracker_config", "log_config",
    "initial_epoch", "initial_step", "skip_until_initial_step", "cpu_offload_checkpointing", "use_8bit_adam",
    "use_lion_optimizer", "caption_prefix", "caption_suffix", "caption_tag_dropout_rate",
    "caption_dropout_every_n_epochs", "token_warmup_min", "token_warmup_step", "keep_tokens_separator",
    "secondary_separator", "enable_wildcard", "caption_separator", "alpha_mask", "resize_interpolation",
    "dataset_config", "config_file", "max_bucket_reso_steps", "cache_text_encoder_outputs_to_disk",
    "disable_mmap_load_safetensors", "mixed_precision_vae", "no_token_padding", "stop_text_encoder_training",
    "noise_offset_random_strength", "ip_noise_gamma_random_strength", "conditioning_data_dir",
    "save_n_epoch_ratio", "gradient_accumulation", "sample_at_first", "dataset_class",
}
NETWORK_ARGS = {"conv_dim", "conv_alpha"}


@dataclass(frozen=True)
class TrainArgs:
    values: dict
    notes: tuple = ()  # one line per accepted key that has no effect here, printed at the start

    def __getattr__(self, name: str):
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def conv_dim(self) -> int | None:
        return self.network_args_dict.get("conv_dim")

    @property
    def conv_alpha(self) -> float | None:
        if self.conv_dim is None:
            return None
        # networks.lora reads conv_alpha with float(): its .alpha tensors are float32 even for "conv_alpha=4"
        return float(self.network_args_dict.get("conv_alpha", 1.0))

    @property
    def network_args_dict(self) -> dict:
        return _parse_network_args(self.values.get("network_args") or [])

    @property
    def optimizer_name(self) -> str:
        return (self.values.get("optimizer_type") or "adamw").lower()


def parse_optimizer_args(items: list | None) -> dict:
    """sd-scripts' optimizer_args: ["weight_decay=0.01", "betas=0.9,0.999"] -> python values."""
    out = {}
    for item in items or []:
        if not isinstance(item, str) or "=" not in item:
            raise ArgsError(f"optimizer_args: {item!r} must be 'key=value'.")
        key, value = (s.strip() for s in item.split("=", 1))
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value  # plain strings such as decouple=True work above; others stay text
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def adafactor_kwargs(a: "TrainArgs") -> dict:
    """Adafactor's arguments as sd-scripts' get_optimizer settles them: relative_step is on unless
    optimizer_args turn it off, and back on when warmup_init asks for it. scale_parameter and
    warmup_init keep transformers' defaults (True, False) unless given."""
    kwargs = parse_optimizer_args(a.optimizer_args)
    for key in ("relative_step", "scale_parameter", "warmup_init"):
        if key in kwargs and not isinstance(kwargs[key], bool):
            raise ArgsError(f"optimizer_args: {key}={kwargs[key]!r} must be True or False.")
    kwargs.setdefault("relative_step", True)
    if not kwargs["relative_step"] and kwargs.get("warmup_init", False):
        kwargs["relative_step"] = True
    return kwargs


def adafactor_relative_step(a: "TrainArgs") -> bool:
    """True when Adafactor sets its own step size: learning_rate, unet_lr, text_encoder_lr and
    lr_scheduler are then replaced by sd-scripts' "adafactor:<learning_rate>" schedule."""
    return a.optimizer_name == "adafactor" and adafactor_kwargs(a)["relative_step"]


def _number(text: str, key: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ArgsError(f"network_args: {key}={text!r} is not a number.") from None


def _parse_network_args(items: list) -> dict:
    out = {}
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ArgsError(f"network_args: {item!r} must be a string 'key=value', e.g. \"conv_dim=4\".")
        key, value = (s.strip() for s in item.split("=", 1))
        if key not in NETWORK_ARGS:
            raise ArgsError(f"network_args: {key!r} is not implemented by the builtin engine "
                            f"(supported: {', '.join(sorted(NETWORK_ARGS))}).")
        out[key] = _number(value, key)
    if "conv_dim" in out and (not isinstance(out["conv_dim"], int) or out["conv_dim"] < 1):
        raise ArgsError(f"network_args: conv_dim must be an integer >= 1, got {out['conv_dim']!r}.")
    return out


def _check_type(key: str, value: Any, spec: Key, where: str) -> None:
    # bool is an int in Python; TOML keeps them apart and so do we.
    ok = any(isinstance(value, t) and not (t in (int, float) and isinstance(value, bool)) for t in spec.types)
    if not ok:
        names = "/".join("none" if t is type(None) else t.__name__ for t in spec.types)
        raise ArgsError(f"{where}: {key} = {value!r} has the wrong type; expected {names}.")
    if spec.choices is not None and value not in spec.choices and not (
            isinstance(value, str) and value.lower() in [c for c in spec.choices if isinstance(c, str)]):
        raise ArgsError(f"{where}: {key} = {value!r} is not supported; choose one of "
                        f"{', '.join(repr(c) for c in spec.choices)}.")
    if spec.minimum is not None and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and value < spec.minimum:
        raise ArgsError(f"{where}: {key} = {value!r} must be >= {spec.minimum}.")


def parse_args(raw: dict, where: str = "run.toml") -> TrainArgs:
    values = flatten_sections(raw)  # sd-scripts: [model] x = 1 means x = 1
    notes = []
    for key, value in values.items():
        if key in NOT_IMPLEMENTED:
            raise ArgsError(f"{where}: {key} is known to sd-scripts but not implemented by the builtin engine; "
                            "remove it, or train with the kohya engine.")
        if key not in KEYS:
            raise ArgsError(f"{where}: unknown key {key!r} (sd-scripts would ignore it silently). "
                            "Check the spelling or remove it.")
        _check_type(key, value, KEYS[key], where)
        if key in NO_EFFECT and value:
            notes.append(f"note: {key} = true has no effect in the builtin engine: {NO_EFFECT[key]}.")
    merged = {k: spec.default for k, spec in KEYS.items()}
    merged.update(values)
    args = TrainArgs(merged, tuple(notes))
    _check_semantics(args, where)
    return args


def _check_semantics(a: TrainArgs, where: str) -> None:
    for required in ("pretrained_model_name_or_path", "output_dir", "network_module"):
        if not a.values.get(required):
            raise ArgsError(f"{where}: {required} is required.")
    if a.optimizer_name not in OPTIMIZERS:
        raise ArgsError(f"{where}: optimizer_type {a.optimizer_type!r} is not supported by the builtin engine; "
                        "choose AdamW, AdamW8bit, Lion, Prodigy or Adafactor.")
    if isinstance(a.lr_warmup_steps, float) and not a.lr_warmup_steps < 1:
        raise ArgsError(f"{where}: lr_warmup_steps as a float is a ratio of the total steps and must be < 1.")
    _check_adafactor(a, where)
    if a.lr_scheduler == "constant" and a.lr_warmup_steps:
        raise ArgsError(f"{where}: lr_scheduler 'constant' takes no warmup; set lr_warmup_steps = 0 or use "
                        "'constant_with_warmup'.")
    if a.network_train_unet_only and a.network_train_text_encoder_only:
        raise ArgsError(f"{where}: network_train_unet_only and network_train_text_encoder_only exclude each other.")
    tel = a.text_encoder_lr
    if isinstance(tel, list) and (len(tel) > 1 or not all(isinstance(x, (int, float)) for x in tel)):
        raise ArgsError(f"{where}: text_encoder_lr as a list takes one number (networks.lora uses only the first).")
    for key in ("learning_rate", "unet_lr"):
        v = a.values.get(key)
        if v is not None and v < 0:
            raise ArgsError(f"{where}: {key} must be >= 0.")
    if a.min_timestep is not None and a.max_timestep is not None and a.min_timestep >= a.max_timestep:
        raise ArgsError(f"{where}: min_timestep must be below max_timestep.")
    if a.sample_prompts and not Path(a.sample_prompts).is_file():
        raise ArgsError(f"{where}: sample_prompts file {a.sample_prompts} does not exist.")
    a.network_args_dict  # validates network_args


def _check_adafactor(a: TrainArgs, where: str) -> None:
    """The Adafactor combinations sd-scripts refuses (or crashes on), refused up front with the fix."""
    relative = adafactor_relative_step(a)
    if relative and a.lr_warmup_steps:
        raise ArgsError(f"{where}: Adafactor with relative_step (its default when optimizer_args do not turn it "
                        "off) runs its own schedule and takes no warmup (sd-scripts: \"does not require "
                        "num_warmup_steps\"); set lr_warmup_steps = 0, or add optimizer_args = "
                        "[\"relative_step=False\", \"scale_parameter=False\", \"warmup_init=False\"] for a fixed lr.")
    if a.lr_scheduler == "adafactor" and not relative:
        raise ArgsError(f"{where}: lr_scheduler 'adafactor' works only with optimizer_type Adafactor and "
                        "relative_step on; choose another lr_scheduler.")


def load_toml(path: str | Path, what: str) -> dict:
    p = Path(path)
    if not p.exists() and p.suffix != ".toml" and Path(f"{p}.toml").exists():
        p = Path(f"{p}.toml")  # sd-scripts appends .toml when missing
    if not p.is_file():
        raise ArgsError(f"{what} {path} not found.")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ArgsError(f"{what} {p} is not valid TOML: {exc}") from None


def text_encoder_lr(a: TrainArgs) -> float | None:
    tel = a.text_encoder_lr
    if isinstance(tel, list):
        return tel[0] if tel else None  # as given (sd-scripts writes it to ss_text_encoder_lr unchanged)
    return tel
