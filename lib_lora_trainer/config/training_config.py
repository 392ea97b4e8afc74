"""TrainingConfig: every setting the Train tab exposes, typed, bounded, with unknown keys refused.

Plain dataclasses (no pydantic): this runs inside A1111 1.10 (pydantic 1) and standalone.
Construction validates (and so does `dataclasses.replace`); `from_dict` is the way in from JSON
(UI, HTTP API, a stored job) and refuses unknown fields with the closest known name.

What is validated here is what no machine or model can fix: bounds, types, contradictions. Two
kinds of conflict are left to `device.device_corrections`, which fixes them with a visible
reason instead of refusing (a constant scheduler with a warmup; cached text-encoder outputs with
caption shuffle/dropout or a trained text encoder). The TOML writer refuses them if they reach
it uncorrected, so sd-scripts never sees them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .coerce import Spec, coerce, suggest
from .errors import ConfigError

__all__ = ["TrainingConfig", "FieldInfo", "ConfigError", "ENGINES", "OPTIMIZERS", "SD_SCRIPTS_SCHEDULERS",
           "BUILTIN_SCHEDULERS", "SAMPLERS", "MIXED_PRECISIONS", "CROPS", "SAVE_PRECISIONS", "MODEL_TYPES"]

ENGINES = ("builtin", "kohya")
CROPS = ("center", "face", "none")
OPTIMIZERS = ("AdamW", "AdamW8bit", "Lion", "Prodigy", "Adafactor")
MIXED_PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("fp16", "bf16", "float")
MODEL_TYPES = ("sd1", "sd2", "sdxl")
# sd-scripts' --lr_scheduler names (transformers/diffusers SchedulerType)
SD_SCRIPTS_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                         "polynomial", "adafactor", "piecewise_constant", "inverse_sqrt", "cosine_with_min_lr",
                         "warmup_stable_decay")
# the subset engines/builtin implements (engines/builtin/args.py SCHEDULERS)
BUILTIN_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts",
                      "polynomial", "adafactor")
# sd-scripts' --sample_sampler choices (train_util.get_my_scheduler); the builtin engine reads them too
SAMPLERS = ("ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a")


def _f(default: Any, kind: str, help: str, group: str, **rules) -> Any:
    spec = Spec(kind, help, group, **rules)
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"spec": spec})
    return field(default=default, metadata={"spec": spec})


def _required(kind: str, help: str, group: str) -> Any:
    return field(metadata={"spec": Spec(kind, help, group), "required": True})


class FieldInfo(NamedTuple):
    """(name, type, default, help) first, for UI/API listings; then the rules behind them."""
    name: str
    type: str
    default: Any
    help: str
    group: str = ""
    required: bool = False
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    # --- job ---------------------------------------------------------------------------
    name: str = _required("name", "Output name: <name>.safetensors in the Lora folder. Letters, digits, "
                                  "'-', '_', spaces; no path separators, no '..', at most 100 characters.", "job")
    base_model: str = _required("str", "Base checkpoint: a .safetensors/.ckpt file or a diffusers folder.", "job")
    trigger: str = _f("", "token", "Trigger word written into captions and the image folder name "
                                   "(e.g. 'VadymPanchenko'); empty for captions only.", "job")
    class_token: str = _f("", "token", "Optional class word after the trigger (e.g. 'man').", "job")
    engine: str = _f("builtin", "choice", "Trainer: 'builtin' (this extension) or 'kohya' (a sd-scripts "
                                          "checkout); both read the same TOML files.", "job", choices=ENGINES)
    preset: str | None = _f(None, "str", "Id of the preset these settings started from (a label; "
                                         "resolve_config applies presets).", "job", optional=True)
    # --- dataset -----------------------------------------------------------------------
    repeats: int = _f(10, "int", "How often each image is seen per epoch (the N in the N_name folder).",
                      "dataset", minimum=1, maximum=10000)
    resolution: int = _f(512, "int", "Training resolution in pixels: 512 for SD 1.x, 768 for SD 2.x-v, 1024 "
                                     "for SDXL (64 only for the tiny test model).", "dataset",
                         minimum=64, maximum=2048, multiple_of=64)
    crop: str = _f("center", "choice", "How images are cropped to the resolution when the dataset is "
                                       "prepared: 'center', 'face' (centred on a detected face) or 'none' "
                                       "(keep the aspect ratio; use buckets).", "dataset", choices=CROPS)
    enable_bucket: bool = _f(True, "bool", "Aspect-ratio buckets: images are batched by shape instead of "
                                           "being cropped square.", "dataset")
    min_bucket_reso: int = _f(256, "int", "Smallest bucket side (pixels).", "dataset", minimum=64,
                              maximum=2048, multiple_of=32)
    max_bucket_reso: int = _f(2048, "int", "Largest bucket side (pixels).", "dataset", minimum=64,
                              maximum=4096, multiple_of=32)
    bucket_reso_steps: int = _f(64, "int", "Bucket side step: 64 for SD 1.x/2.x, 32 or 64 for SDXL.", "dataset",
                                minimum=32, maximum=256, multiple_of=32)
    bucket_no_upscale: bool = _f(False, "bool", "Never upscale a small image into a larger bucket.", "dataset")
    shuffle_caption: bool = _f(False, "bool", "Shuffle the comma-separated caption tags every step.", "dataset")
    keep_tokens: int = _f(0, "int", "Leading caption tags kept in place when shuffling (1 keeps the "
                                    "trigger first).", "dataset", minimum=0, maximum=255)
    caption_dropout_rate: float = _f(0.0, "float", "Probability of training a step with an empty caption.",
                                     "dataset", minimum=0.0, maximum=1.0)
    flip_aug: bool = _f(False, "bool", "Random horizontal flips (off for faces: they are not symmetric).",
                        "dataset")
    # --- length ------------------------------------------------------------------------
    epochs: int = _f(1, "int", "Passes over images x repeats.", "training", minimum=1, maximum=1000)
    max_train_steps: int | None = _f(None, "int", "Stop after this many steps instead of after `epochs`.",
                                     "training", optional=True, minimum=1, maximum=1_000_000)
    batch_size: int = _f(1, "int", "Images per step.", "training", minimum=1, maximum=64)
    grad_accum: int = _f(1, "int", "Gradient accumulation: batches summed per optimizer step.", "training",
                         minimum=1, maximum=256)
    # --- optimisation ------------------------------------------------------------------
    learning_rate: float = _f(1e-4, "float", "Learning rate (LoRA: about 1e-4).", "optimizer",
                              minimum=0.0, maximum=1.0, min_exclusive=True)
    unet_lr: float | None = _f(None, "float", "U-Net learning rate; empty = learning_rate; 0 = do not train "
                                              "the U-Net.", "optimizer", optional=True, minimum=0.0, maximum=1.0)
    text_encoder_lr: float | None = _f(None, "float", "Text-encoder learning rate; empty = learning_rate; 0 = "
                                                      "do not train the text encoder.", "optimizer",
                                       optional=True, minimum=0.0, maximum=1.0)
    lr_scheduler: str = _f("constant", "choice", "Learning-rate schedule (sd-scripts names; 'constant' takes "
                                                 "no warmup).", "optimizer", choices=SD_SCRIPTS_SCHEDULERS)
    lr_warmup: int | float = _f(0, "warmup", "Warmup: whole steps (e.g. 100) or a ratio of all steps below "
                                             "1 (e.g. 0.05).", "optimizer")
    lr_scheduler_num_cycles: int = _f(1, "int", "Restarts for cosine_with_restarts.", "optimizer",
                                      minimum=1, maximum=100)
    optimizer: str = _f("AdamW", "choice", "Optimizer: AdamW; AdamW8bit (bitsandbytes, CUDA only, less "
                                           "memory); Lion; Prodigy (set learning_rate 1); Adafactor.",
                        "optimizer", choices=OPTIMIZERS)
    optimizer_args: dict = _f({}, "kv", "Extra optimizer arguments, e.g. {\"weight_decay\": 0.01}.",
                              "optimizer")
    max_grad_norm: float = _f(1.0, "float", "Gradient clipping norm; 0 = no clipping.", "optimizer",
                              minimum=0.0, maximum=1000.0)
    min_snr_gamma: float | None = _f(None, "float", "Min-SNR loss weighting gamma (5 is usual); empty = off.",
                                     "optimizer", optional=True, minimum=0.0, maximum=100.0, min_exclusive=True)
    noise_offset: float | None = _f(None, "float", "Noise offset (e.g. 0.05) for darker/brighter images; "
                                                   "empty = off.", "optimizer", optional=True, minimum=0.0,
                                    maximum=1.0)
    seed: int | None = _f(42, "int", "Random seed; empty = a new one each run.", "optimizer", optional=True,
                          minimum=0, maximum=2**32 - 1)
    # --- network -----------------------------------------------------------------------
    network_dim: int = _f(32, "int", "LoRA rank.", "network", minimum=1, maximum=1024)
    network_alpha: float | None = _f(None, "float", "LoRA alpha; the update is scaled by alpha/rank. Empty = "
                                                    "same as the rank (scale 1).", "network", optional=True,
                                     minimum=0.0, maximum=1024.0, min_exclusive=True)
    conv_dim: int | None = _f(None, "int", "Rank for the convolution layers (LoCon); empty = attention "
                                           "layers only.", "network", optional=True, minimum=1, maximum=1024)
    conv_alpha: float | None = _f(None, "float", "Alpha for the convolution layers; empty = same as conv_dim.",
                                  "network", optional=True, minimum=0.0, maximum=1024.0, min_exclusive=True)
    network_dropout: float | None = _f(None, "float", "Dropout on each LoRA's down-projection output (sd-scripts' "
                                                      "neuron dropout; both engines), in training only; empty = off.",
                                       "network", optional=True, minimum=0.0, maximum=1.0)
    train_unet_only: bool = _f(False, "bool", "Train only the U-Net (recommended for SDXL: less memory).",
                               "network")
    clip_skip: int | None = _f(None, "int", "Use the text encoder's N-th layer from the end (2 for anime "
                                            "models); empty = the last.", "network", optional=True,
                               minimum=1, maximum=12)
    network_weights: str | None = _f(None, "str", "Continue from this LoRA: a kohya-format .safetensors whose "
                                                  "weights the training starts from (sd-scripts' network_weights); "
                                                  "its rank must equal network_dim. Empty = start fresh.",
                                     "network", optional=True)
    # --- memory and speed --------------------------------------------------------------
    mixed_precision: str = _f("bf16", "choice", "Compute precision: bf16 (RTX 30xx and newer), fp16 (older "
                                                "GPUs) or no (CPU).", "memory", choices=MIXED_PRECISIONS)
    cache_latents: bool = _f(True, "bool", "Encode the images once and take the VAE off the GPU.", "memory")
    cache_latents_to_disk: bool = _f(False, "bool", "Keep the encoded images on disk for the next run.",
                                     "memory")
    gradient_checkpointing: bool = _f(False, "bool", "Recompute activations: less memory, ~25% slower.",
                                      "memory")
    cache_text_encoder_outputs: bool = _f(False, "bool", "Encode captions once and take the text encoders off "
                                                         "the GPU (needs train_unet_only, no caption shuffle or "
                                                         "dropout).", "memory")
    torch_compile: bool = _f(False, "bool", "Compile the U-Net (CUDA; faster after a slow first step).",
                             "memory")
    max_data_loader_n_workers: int | None = _f(None, "int", "Data-loading processes; empty = min(2, CPUs).",
                                               "memory", optional=True, minimum=0, maximum=64)
    # --- saving ------------------------------------------------------------------------
    save_precision: str = _f("fp16", "choice", "Precision of the saved LoRA (fp16: A1111's usual files).",
                             "saving", choices=SAVE_PRECISIONS)
    save_every_n_epochs: int | None = _f(None, "int", "Also save a LoRA every N epochs.", "saving",
                                         optional=True, minimum=1, maximum=1000)
    save_every_n_steps: int | None = _f(None, "int", "Also save a LoRA every N steps.", "saving", optional=True,
                                        minimum=1, maximum=1_000_000)
    save_last_n_epochs: int | None = _f(None, "int", "Keep only the last N per-epoch files.", "saving",
                                        optional=True, minimum=1, maximum=1000)
    save_state: bool = _f(True, "bool", "Save the optimizer state with each save, so Stop can resume.",
                          "saving")
    # --- samples -----------------------------------------------------------------------
    sample_prompts: tuple = _f((), "lines", "Sample prompts, one per line, sd-scripts syntax "
                                            "(e.g. 'photo of VadymPanchenko --n blurry --w 512 --h 512 --d 1').",
                               "samples")
    sample_every_n_steps: int | None = _f(None, "int", "Render the sample prompts every N steps.", "samples",
                                          optional=True, minimum=1, maximum=1_000_000)
    sample_every_n_epochs: int | None = _f(None, "int", "Render the sample prompts every N epochs.", "samples",
                                           optional=True, minimum=1, maximum=1000)
    sample_sampler: str = _f("euler_a", "choice", "Sampler for the samples (sd-scripts names).", "samples",
                             choices=SAMPLERS)
    test_after_training: bool = _f(True, "bool", "After training, generate the test grids (LoRA weights 0..1, "
                                   "dataset and novel prompts, fixed seeds) and scores.", "testing")
    holdout_images: int = _f(0, "int", "Keep this many pictures out of training; the test scores against them "
                             "(a memorisation check).", "testing", minimum=0, maximum=1000)
    # --- launch (accelerate launch options; not written to run.toml) --------------------
    num_processes: int = _f(1, "int", "Training processes (one per GPU).", "launch", minimum=1, maximum=16)
    gpu_ids: str | None = _f(None, "gpu_ids", "GPUs to use, e.g. \"0\" or \"0,1\"; empty = all / the first.",
                             "launch", optional=True)
    num_cpu_threads_per_process: int | None = _f(None, "int", "CPU threads per process; empty = accelerate's "
                                                              "default.", "launch", optional=True,
                                                 minimum=1, maximum=256)

    # ------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, coerce(f.name, getattr(self, f.name), f.metadata["spec"]))
        _cross_check(self)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> "TrainingConfig":
        """Build from JSON-like data. Unknown fields are refused (with the closest name); missing
        fields take their defaults; values are coerced and bounded field by field."""
        if not isinstance(data, dict):
            raise ConfigError(None, f"a training config must be an object of field: value, got "
                                    f"{type(data).__name__}.")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(str(key), f"unknown field {key!r}.{suggest(str(key), known)} "
                                            "See TrainingConfig.fields_info() for the list.")
        missing = [f.name for f in dataclasses.fields(cls) if f.metadata.get("required") and f.name not in data]
        if missing:
            raise ConfigError(missing[0], f"{missing[0]} is required: "
                                          f"{cls.field_spec(missing[0]).help}")
        return cls(**data)

    def to_dict(self) -> dict:
        """JSON-ready; `TrainingConfig.from_dict(cfg.to_dict()) == cfg`."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in value.items()}
            out[f.name] = value
        return out

    def replace(self, **changes) -> "TrainingConfig":
        """A validated copy with some fields changed (unknown names refused like from_dict)."""
        data = self.to_dict()
        data.update(changes)
        return type(self).from_dict(data)

    # ---- derived values ------------------------------------------------------------------
    @property
    def effective_alpha(self) -> float:
        return float(self.network_alpha if self.network_alpha is not None else self.network_dim)

    @property
    def effective_conv_alpha(self) -> float | None:
        if self.conv_dim is None:
            return None
        return float(self.conv_alpha if self.conv_alpha is not None else self.conv_dim)

    @property
    def latents_cached(self) -> bool:
        return self.cache_latents or self.cache_latents_to_disk

    # ---- introspection ------------------------------------------------------------------
    @classmethod
    def field_spec(cls, name: str) -> Spec:
        for f in dataclasses.fields(cls):
            if f.name == name:
                return f.metadata["spec"]
        raise ConfigError(name, f"unknown field {name!r}.{suggest(name, [f.name for f in dataclasses.fields(cls)])}")

    @classmethod
    def fields_info(cls) -> list[FieldInfo]:
        out = []
        for f in dataclasses.fields(cls):
            spec: Spec = f.metadata["spec"]
            required = bool(f.metadata.get("required"))
            if required:
                default = None
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = list(f.default) if isinstance(f.default, tuple) else f.default
            out.append(FieldInfo(f.name, spec.type_name, default, spec.help, spec.group, required,
                                 spec.choices, spec.minimum, spec.maximum))
        return out


def _cross_check(c: TrainingConfig) -> None:
    """Contradictions between fields that no device or model fixes."""
    if c.min_bucket_reso > c.max_bucket_reso:
        raise ConfigError("min_bucket_reso", f"min_bucket_reso {c.min_bucket_reso} is larger than "
                                             f"max_bucket_reso {c.max_bucket_reso}: swap them (e.g. 256 and 2048).")
    if c.enable_bucket:
        if c.min_bucket_reso > c.resolution:
            raise ConfigError("min_bucket_reso", f"min_bucket_reso {c.min_bucket_reso} is larger than the "
                                                 f"resolution {c.resolution}: lower it to {c.resolution} or "
                                                 "less, or turn enable_bucket off.")
        if c.max_bucket_reso < c.resolution:
            raise ConfigError("max_bucket_reso", f"max_bucket_reso {c.max_bucket_reso} is smaller than the "
                                                 f"resolution {c.resolution}: raise it to at least "
                                                 f"{c.resolution}.")
        for key in ("min_bucket_reso", "max_bucket_reso"):
            value = getattr(c, key)
            if value % c.bucket_reso_steps:
                raise ConfigError(key, f"{key} {value} is not a multiple of bucket_reso_steps "
                                       f"{c.bucket_reso_steps} (sd-scripts would round it): use "
                                       f"{value - value % c.bucket_reso_steps or c.bucket_reso_steps}.")
    if c.engine == "builtin" and c.lr_scheduler not in BUILTIN_SCHEDULERS:
        raise ConfigError("lr_scheduler", f"lr_scheduler {c.lr_scheduler!r} is not implemented by the builtin "
                                          f"engine: choose one of {', '.join(BUILTIN_SCHEDULERS)}, or use "
                                          "engine 'kohya'.")
    unet_off = c.unet_lr == 0
    te_off = c.train_unet_only or c.text_encoder_lr == 0
    if unet_off and te_off:
        raise ConfigError("unet_lr", "nothing would be trained: unet_lr is 0 and the text encoder is not "
                                     "trained (train_unet_only or text_encoder_lr 0). Set unet_lr > 0.")
    if c.conv_alpha is not None and c.conv_dim is None:
        raise ConfigError("conv_alpha", "conv_alpha is set but conv_dim is empty: set conv_dim (e.g. 8) or "
                                        "clear conv_alpha.")
    if c.network_weights is not None and not c.network_weights.lower().endswith(".safetensors"):
        raise ConfigError("network_weights", f"network_weights {c.network_weights!r} is not a .safetensors file: "
                                             "give the path of a kohya-format LoRA (.safetensors), or leave it "
                                             "empty to start fresh.")
    if c.gpu_ids is not None and c.num_processes > len(c.gpu_ids.split(",")):
        raise ConfigError("num_processes", f"num_processes {c.num_processes} is more than the GPUs in gpu_ids "
                                           f"{c.gpu_ids!r}: list {c.num_processes} GPUs or lower num_processes.")
    if c.preset is not None:
        from .presets import PRESETS
        if c.preset not in PRESETS:
            raise ConfigError("preset", f"unknown preset {c.preset!r}.{suggest(c.preset, PRESETS)} Known: "
                                        f"{', '.join(PRESETS)}.")


def check_for_model(c: TrainingConfig, model_type: str) -> None:
    """What depends on the base model and on sd-scripts' runtime checks: refused before any file
    is written (device.device_corrections fixes the fixable ones first)."""
    if model_type not in MODEL_TYPES:
        raise ConfigError(None, f"model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}.")
    step = 32 if model_type == "sdxl" else 64
    if c.enable_bucket and c.bucket_reso_steps % step:
        raise ConfigError("bucket_reso_steps", f"bucket_reso_steps {c.bucket_reso_steps} must be a multiple of "
                                               f"{step} for {model_type.upper()}: use 64.")
    if c.lr_scheduler == "constant" and c.lr_warmup:
        raise ConfigError("lr_warmup", f"lr_scheduler 'constant' takes no warmup (sd-scripts raises "
                                       f"\"constant does not require num_warmup_steps\"), got lr_warmup "
                                       f"{c.lr_warmup!r}: set it to 0 or use 'constant_with_warmup'.")
    if c.network_weights is not None:  # the file itself: read (header only) when the job is written
        from lib_lora_trainer.lora_file.weights_check import network_weights_problem
        problem = network_weights_problem(c.network_weights, c.network_dim, c.conv_dim, model_type)
        if problem:
            raise ConfigError("network_weights", problem)
    if c.cache_text_encoder_outputs:
        if not c.train_unet_only:
            raise ConfigError("cache_text_encoder_outputs", "cache_text_encoder_outputs needs train_unet_only "
                                                            "(a trained text encoder cannot be cached).")
        if c.shuffle_caption or c.caption_dropout_rate:
            raise ConfigError("cache_text_encoder_outputs", "cache_text_encoder_outputs cannot be used with "
                                                            "shuffle_caption or caption_dropout_rate (the "
                                                            "captions change every step): turn those off.")
