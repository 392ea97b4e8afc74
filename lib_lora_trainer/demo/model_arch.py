"""Architecture of the demo model "cartoon64": Stable Diffusion 1 layout, 64 px, ~2.7 M parameters.

Same component types as SD1.5 (AutoencoderKL, UNet2DConditionModel with cross-attention,
CLIPTextModel with the real CLIP tokenizer and vocabulary), only narrower. Every width is a
multiple of 32 because LDM code (A1111, sd-scripts) hard-codes GroupNorm(32): the file then
also loads through A1111 with the `.yaml` written beside it.
The VAE downsamples 4x (not 8x) so a 64 px picture has 16x16 latents: enough room for eyes.
"""

from __future__ import annotations

from lib_lora_trainer.models.tiny import TINY_TEXT_ENCODER

RESOLUTION = 64
LATENT_SIZE = 16

UNET = {
    "_class_name": "UNet2DConditionModel",
    "act_fn": "silu",
    "attention_head_dim": 4,  # diffusers' legacy name for the number of heads (LDM num_heads)
    "block_out_channels": [32, 64, 64],
    "center_input_sample": False,
    "cross_attention_dim": 64,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 1,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "sample_size": LATENT_SIZE,
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}


def vae_config(scaling_factor: float) -> dict:
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [32, 32, 64],
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "force_upcast": False,
        "in_channels": 3,
        "latent_channels": 4,
        "layers_per_block": 1,
        "norm_num_groups": 32,
        "out_channels": 3,
        "sample_size": RESOLUTION,
        "scaling_factor": scaling_factor,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
    }


# The tiny test model's CLIP text encoder (full vocabulary, width 64), one layer deeper and wider.
TEXT_ENCODER = {**TINY_TEXT_ENCODER, "intermediate_size": 256, "num_hidden_layers": 3}


def overrides(scaling_factor: float) -> dict[str, dict]:
    """Component configs for models.configs.write_config_folder('sd1', ...)."""
    return {"unet": UNET, "vae": vae_config(scaling_factor), "text_encoder": TEXT_ENCODER}


def ldm_yaml(scaling_factor: float, text_encoder_dir: str) -> str:
    """A1111's per-checkpoint config (`<name>.yaml` beside the file): SD1's v1-inference.yaml
    with these widths. `text_encoder_dir` holds config.json and the tokenizer files."""
    return f"""# LDM config for A1111: the cartoon64 demo model (widths of model_arch.py).
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
        attention_resolutions: [1, 2]
        num_res_blocks: {UNET["layers_per_block"]}
        channel_mult: [1, 2, 2]
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
          ch_mult: [1, 1, 2]
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
