"""Full-size diffusers component configs for SD1.5 / SD2.x / SDXL, and config-only folders.

diffusers' `from_single_file` needs a diffusers-layout folder (`config=`) to know the
architecture; without one it asks the hub. These dicts let us write that folder offline.
Nothing here imports torch or diffusers, so detection and the UI stay fast.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MODEL_TYPES = ("sd1", "sd2", "sdxl")

# Informational only: diffusers reads it to decide nothing we rely on.
_DIFFUSERS_VERSION = "0.42.1"
# Bump when the folder layout or any config below changes: stale caches are then rewritten.
CONFIG_FORMAT_VERSION = 1
_MARKER = ".lora_trainer_config.json"

SCALING_SD = 0.18215    # SD1/SD2 VAE latent scale
SCALING_SDXL = 0.13025  # SDXL VAE latent scale

# --- UNets ---------------------------------------------------------------

SD1_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 64,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}

# SD2.x: OpenCLIP-H conditioning (1024), linear proj_in/out, per-level head counts.
_SD2_UNET_COMMON = {
    **SD1_UNET,
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
}
SD2_UNET_V = {**_SD2_UNET_COMMON, "sample_size": 96, "upcast_attention": True}      # 768-v
SD2_UNET_BASE = {**_SD2_UNET_COMMON, "sample_size": 64, "upcast_attention": False}  # 512-base

SDXL_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    # 2816 = pooled bigG (1280) + 6 size/crop numbers x 256 time-embedding dims
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}

# --- VAEs ----------------------------------------------------------------

def _vae(sample_size: int, scaling_factor: float, force_upcast: bool) -> dict:
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "force_upcast": force_upcast,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": sample_size,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    }


SD1_VAE = _vae(512, SCALING_SD, True)
SD2_VAE_V = _vae(768, SCALING_SD, True)
SD2_VAE_BASE = _vae(512, SCALING_SD, True)
# The original SDXL VAE overflows in fp16, hence force_upcast.
SDXL_VAE = _vae(1024, SCALING_SDXL, True)

# --- Text encoders (transformers CLIPTextConfig fields) ----------------------

# Real token ids (bos 49406, eos 49407) rather than the hub's legacy 0/2/1: the pooled
# output then finds the first eos by id, which gives the same result as the legacy argmax.
_CLIP_COMMON = {
    "attention_dropout": 0.0,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "vocab_size": 49408,
}

CLIP_L = {  # SD1 text encoder and SDXL text_encoder
    **_CLIP_COMMON,
    "architectures": ["CLIPTextModel"],
    "hidden_act": "quick_gelu",
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "pad_token_id": 49407,
    "projection_dim": 768,
}

# SD2: OpenCLIP ViT-H text tower with its last layer dropped (SD2 conditions on the penultimate).
OPENCLIP_H = {
    **_CLIP_COMMON,
    "architectures": ["CLIPTextModel"],
    "hidden_act": "gelu",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 23,
    "pad_token_id": 0,
    "projection_dim": 512,
}

CLIP_BIGG = {  # SDXL text_encoder_2 (pooled output + projection feed the UNet's add-embedding)
    **_CLIP_COMMON,
    "architectures": ["CLIPTextModelWithProjection"],
    "hidden_act": "gelu",
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "pad_token_id": 0,
    "projection_dim": 1280,
}


# --- Scheduler -----------------------------------------------------------

def scheduler_config(v_prediction: bool = False) -> dict:
    """The training noise schedule shared by SD1/SD2/SDXL (DDPMScheduler-compatible)."""
    return {
        "_class_name": "DDPMScheduler",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "clip_sample": False,
        "num_train_timesteps": 1000,
        "prediction_type": "v_prediction" if v_prediction else "epsilon",
        "sample_max_value": 1.0,
        "steps_offset": 1,
        "thresholding": False,
        "timestep_spacing": "leading",
        "trained_betas": None,
        "variance_type": "fixed_small",
    }


# --- Folder layouts ------------------------------------------------------

def _check_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model type {model_type!r}; expected one of {MODEL_TYPES}")


def component_configs(model_type: str, v_prediction: bool = False) -> dict[str, dict]:
    """subfolder -> config dict for every weight-bearing component and the scheduler."""
    _check_type(model_type)
    if model_type == "sd1":
        comps = {"unet": SD1_UNET, "vae": SD1_VAE, "text_encoder": CLIP_L}
    elif model_type == "sd2":
        comps = {"unet": SD2_UNET_V if v_prediction else SD2_UNET_BASE,
                 "vae": SD2_VAE_V if v_prediction else SD2_VAE_BASE,
                 "text_encoder": OPENCLIP_H}
    else:
        comps = {"unet": SDXL_UNET, "vae": SDXL_VAE, "text_encoder": CLIP_L, "text_encoder_2": CLIP_BIGG}
    comps = copy.deepcopy(comps)
    comps["scheduler"] = scheduler_config(v_prediction)
    return comps


def tokenizer_variants(model_type: str) -> dict[str, str]:
    """subfolder -> write_pretrained_tokenizer variant. SD2 and bigG pad with "!", SD1/CLIP-L with eos."""
    _check_type(model_type)
    if model_type == "sd1":
        return {"tokenizer": "sd1"}
    if model_type == "sd2":
        return {"tokenizer": "sdxl_bigg"}
    return {"tokenizer": "sd1", "tokenizer_2": "sdxl_bigg"}


def model_index(model_type: str) -> dict:
    _check_type(model_type)
    if model_type == "sdxl":
        return {
            "_class_name": "StableDiffusionXLPipeline",
            "_diffusers_version": _DIFFUSERS_VERSION,
            "force_zeros_for_empty_prompt": True,
            "scheduler": ["diffusers", "DDPMScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }
    # No safety checker / feature extractor: we train, we never filter images.
    return {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": _DIFFUSERS_VERSION,
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _config_file_name(subfolder: str) -> str:
    return "scheduler_config.json" if subfolder == "scheduler" else "config.json"


def _dump(obj) -> str:
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def _fingerprint(model_type: str, configs: dict, tokenizers: dict) -> str:
    blob = _dump({"v": CONFIG_FORMAT_VERSION, "type": model_type, "configs": configs, "tok": tokenizers})
    return hashlib.sha256(blob.encode()).hexdigest()


def _write_layout(dest: Path, model_type: str, configs: dict[str, dict], tokenizers: dict[str, str]) -> Path:
    from lib_lora_trainer.tokenizer import write_pretrained_tokenizer

    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model_index.json").write_text(_dump(model_index(model_type)), encoding="utf-8")
    for sub, cfg in configs.items():
        (dest / sub).mkdir(exist_ok=True)
        (dest / sub / _config_file_name(sub)).write_text(_dump(cfg), encoding="utf-8")
    for sub, variant in tokenizers.items():
        write_pretrained_tokenizer(dest / sub, variant)
    # The marker lets a cache tell a complete, current folder from a stale or half-written one.
    marker = {"format": CONFIG_FORMAT_VERSION, "model_type": model_type,
              "fingerprint": _fingerprint(model_type, configs, tokenizers)}
    (dest / _MARKER).write_text(_dump(marker), encoding="utf-8")
    return dest


def write_config_folder(model_type: str, dest, v_prediction: bool = False,
                        overrides: dict[str, dict] | None = None) -> Path:
    """Write a diffusers-layout CONFIG-ONLY folder usable as `config=` for from_single_file.

    `overrides` replaces whole component configs by subfolder name (tiny models use it).
    """
    configs = component_configs(model_type, v_prediction)
    for sub, cfg in (overrides or {}).items():
        if sub not in configs:
            raise ValueError(f"override for unknown component {sub!r}; expected one of {sorted(configs)}")
        configs[sub] = copy.deepcopy(cfg)
    return _write_layout(Path(dest), model_type, configs, tokenizer_variants(model_type))


def default_cache_root() -> Path:
    env = os.environ.get("LORA_TRAINER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "lora_trainer"


def _is_current(folder: Path, model_type: str, v_prediction: bool) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = _fingerprint(model_type, component_configs(model_type, v_prediction), tokenizer_variants(model_type))
    return marker.get("fingerprint") == expected


def cached_config_folder(model_type: str, v_prediction: bool = False, cache_dir=None) -> Path:
    """<cache>/configs/<type>[-v], written once; `cache_dir` defaults to $LORA_TRAINER_CACHE_DIR
    or ~/.cache/lora_trainer. Safe against concurrent writers (temp folder + rename)."""
    _check_type(model_type)
    root = Path(cache_dir) if cache_dir is not None else default_cache_root()
    dest = root / "configs" / (model_type + ("-v" if v_prediction else ""))
    if _is_current(dest, model_type, v_prediction):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        write_config_folder(model_type, tmp, v_prediction)
        if dest.exists():
            if _is_current(dest, model_type, v_prediction):  # another process won the race
                return dest
            stale = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.old-"))
            os.replace(dest, stale / "x")
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not _is_current(dest, model_type, v_prediction):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
