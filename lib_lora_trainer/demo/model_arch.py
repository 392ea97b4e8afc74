"""Architecture of the demo model "cartoon128": SD1.5's block layout, narrower, 128 px.

Same component types and block layout as SD1.5, so a host handles it like an SD1.5 checkpoint:
a UNet with 4 levels of 2 resnets (CrossAttnDownBlock x3 + DownBlock, mirrored up blocks with 3,
transformer depth 1), a VAE with 3 downsamples (factor 8, 4 latent channels), a CLIP text encoder
with the real tokenizer and vocabulary. A1111 converts LoRA module names assuming exactly this
layout (2 resnets per level) and a VAE factor of 8: cartoon128 (1 resnet, factor 4) got 66 of 102
LoRA modules applied there and half-size pictures.
Every width is a multiple of 32 because LDM code (A1111, sd-scripts) hard-codes GroupNorm(32).
"""

from __future__ import annotations

from lib_lora_trainer.models.tiny import TINY_TEXT_ENCODER

RESOLUTION = 128
LATENT_SIZE = 16  # 128 / 8
# The VAE trains on random 64 px crops: at 128 px a step costs 7x as much on CPU, and a
# convolutional autoencoder does not care where in the picture a crop comes from.
VAE_CROP = 64

UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 4,  # diffusers' legacy name for the number of heads (LDM num_heads)
    "block_out_channels": [32, 64, 96, 96],  # on CPU the 2 deepest levels cost ~nothing more at 96
    "center_input_sample": False,
    "cross_attention_dim": 64,
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
    "sample_size": LATENT_SIZE,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}


def vae_config(scaling_factor: float) -> dict:
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [32, 32, 64, 64],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "force_upcast": False,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": RESOLUTION,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
    }


# The tiny test model's CLIP text encoder (full vocabulary, width 64), one layer deeper and wider.
TEXT_ENCODER = {**TINY_TEXT_ENCODER, "intermediate_size": 256, "num_hidden_layers": 3}


def overrides(scaling_factor: float) -> dict[str, dict]:
    """Component configs for models.configs.write_config_folder('sd1', ...)."""
    return {"unet": UNET, "vae": vae_config(scaling_factor), "text_encoder": TEXT_ENCODER}


def ldm_yaml(scaling_factor: float, text_encoder_dir: str) -> str:
    """A1111's per-checkpoint config (`<name>.yaml` beside the file): SD1's v1-inference.yaml
    with these widths. `text_encoder_dir` holds config.json and the tokenizer files."""
    return f"""# LDM config for A1111: the cartoon128 demo model (widths of model_arch.py).
model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: {LATENT_SIZE}
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: {scaling_factor}
    use_ema: False
    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32
        in_channels: 4
        out_channels: 4
        model_channels: {UNET["block_out_channels"][0]}
        attention_resolutions: [4, 2, 1]
        num_res_blocks: {UNET["layers_per_block"]}
        channel_mult: [1, 2, 3, 3]
        num_heads: {UNET["attention_head_dim"]}
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: {UNET["cross_attention_dim"]}
        use_checkpoint: False
        legacy: False
    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: {RESOLUTION}
          in_channels: 3
          out_ch: 3
          ch: 32
          ch_mult: [1, 1, 2, 2]
          num_res_blocks: 1
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
      params:
        version: {text_encoder_dir}
"""
