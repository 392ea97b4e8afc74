"""A tiny RANDOM SD1-architecture model for tests and demos (no download, ~1 s to build).

Same component types and file layout as a real SD1.5 checkpoint, only narrower and
shallower, so every code path (detection, single-file loading, LoRA export) runs on it.
The sibling `<stem>.config/` folder carries the tiny architecture, because the keys of
the .safetensors file alone look like (and are detected as) an ordinary SD1 model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lib_lora_trainer import atomic

from .configs import SCALING_SD, write_config_folder
from .detect import sibling_config_dir
from .single_file import save_single_file

TINY_UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 4,  # diffusers' legacy name: 4 heads (of 8 channels at width 32)
    "block_out_channels": [32, 64],
    "center_input_sample": False,
    "cross_attention_dim": 64,
    "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": 8,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"],
}

# 4 levels = 3 downsamples, like SD: 64x64 px -> 8x8 latents.
TINY_VAE = {
    "_class_name": "AutoencoderKL",
    "act_fn": "silu",
    "block_out_channels": [16, 32, 32, 32],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": False,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 1,
    "norm_num_groups": 8,  # must divide 16
    "out_channels": 3,
    "sample_size": 64,
    "scaling_factor": SCALING_SD,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}

# Full CLIP vocabulary so the real tokenizer's ids fit; everything else is tiny.
TINY_TEXT_ENCODER = {
    "architectures": ["CLIPTextModel"],
    "attention_dropout": 0.0,
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "hidden_act": "quick_gelu",
    "hidden_size": 64,
    "initializer_factor": 1.0,
    "initializer_range": 0.02,
    "intermediate_size": 128,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77,
    "model_type": "clip_text_model",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "pad_token_id": 49407,
    "projection_dim": 64,
    "vocab_size": 49408,
}

TINY_SD1_OVERRIDES = {"unet": TINY_UNET, "vae": TINY_VAE, "text_encoder": TINY_TEXT_ENCODER}
TINY_FILE_NAME = "tiny-sd1.safetensors"


def build_tiny_sd1(seed: int = 0):
    """(unet, vae, text_encoder) with random weights drawn from `seed`; the global RNG is left untouched."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel.from_config(TINY_UNET)
        vae = AutoencoderKL.from_config(TINY_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig.from_dict(TINY_TEXT_ENCODER))
    for m in (unet, vae, text_encoder):
        m.eval()
    return unet, vae, text_encoder


def write_tiny_config_folder(dest) -> Path:
    return write_config_folder("sd1", dest, v_prediction=False, overrides=TINY_SD1_OVERRIDES)


def make_tiny_sd1(out_path, seed: int = 0) -> Path:
    """Write `out_path` (A1111-style single .safetensors, LDM names) and `<stem>.config/`.

    Same seed -> byte-identical file (only one metadata entry: safetensors writes several
    in a random order per process).
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    unet, vae, text_encoder = build_tiny_sd1(seed)
    config_dir = sibling_config_dir(out_path)
    # Config first, weights last: a file that exists is always loadable.
    with atomic.atomic_dir(config_dir) as tmp:
        write_tiny_config_folder(tmp)
    save_single_file(unet, vae, text_encoder, out_path)
    return out_path
