"""Tiny SDXL and SD2 (v-prediction) single files for tests, with their sibling config folders.

save_single_file writes SD1 only; these write SD2/SDXL text encoders in OpenCLIP layout (fused
q/k/v), as real SD2/SDXL single files store them.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lib_lora_trainer.models import configs
from lib_lora_trainer.models.detect import sibling_config_dir
from lib_lora_trainer.models.ldm_names import unet_state_dict_to_ldm, vae_state_dict_to_ldm
from lib_lora_trainer.models.single_file import write_state_dict
from lib_lora_trainer.models.tiny import TINY_TEXT_ENCODER, TINY_VAE

SMALL = dict(block_out_channels=[32, 64], attention_head_dim=[2, 4], layers_per_block=1, sample_size=8)
XL_UNET = dict(configs.SDXL_UNET, **SMALL, cross_attention_dim=96, transformer_layers_per_block=[1, 2],
               down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
               up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"],
               addition_time_embed_dim=8, projection_class_embeddings_input_dim=64 + 6 * 8)
SD2_UNET = dict(configs.SD2_UNET_V, **SMALL, cross_attention_dim=64,
                down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
CLIP_L = dict(TINY_TEXT_ENCODER, hidden_size=32, projection_dim=32)
_TOWER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, projection_dim=64)
BIG_G = dict(configs.CLIP_BIGG, **_TOWER)
OPEN_H = dict(configs.OPENCLIP_H, **_TOWER)


def _to_open_clip(state_dict, prefix: str) -> dict:
    """transformers CLIP text model -> OpenCLIP names (fused q/k/v), as SD2/SDXL single files store it.
    Test-only: save_single_file writes SD1 files; this lets us build tiny SD2/SDXL files to load."""
    sd = {k.removeprefix("text_model."): v for k, v in state_dict.items()}
    out = {prefix + "token_embedding.weight": sd["embeddings.token_embedding.weight"],
           prefix + "positional_embedding": sd["embeddings.position_embedding.weight"],
           prefix + "ln_final.weight": sd["final_layer_norm.weight"],
           prefix + "ln_final.bias": sd["final_layer_norm.bias"]}
    if "text_projection.weight" in sd:
        out[prefix + "text_projection"] = sd["text_projection.weight"].T.contiguous()
    layers = {int(k.split(".")[2]) for k in sd if k.startswith("encoder.layers.")}
    for i in layers:
        src, dst = f"encoder.layers.{i}.", f"{prefix}transformer.resblocks.{i}."
        for w in ("weight", "bias"):
            out[dst + "attn.in_proj_" + w] = torch.cat([sd[f"{src}self_attn.{x}_proj.{w}"] for x in "qkv"])
            pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                     "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
            for ours, theirs in pairs.items():
                out[f"{dst}{ours}.{w}"] = sd[f"{src}{theirs}.{w}"]
    return out


def make_tiny_sdxl(path: Path, seed: int = 0):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config(TINY_VAE)
    unet = UNet2DConditionModel.from_config(XL_UNET)
    te1 = CLIPTextModel(CLIPTextConfig.from_dict(CLIP_L))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig.from_dict(BIG_G))
    sd = {**unet_state_dict_to_ldm(unet.state_dict(), XL_UNET), **vae_state_dict_to_ldm(vae.state_dict(), TINY_VAE),
          **{"conditioner.embedders.0.transformer.text_model." + k.removeprefix("text_model."): v
             for k, v in te1.state_dict().items()},
          **_to_open_clip(te2.state_dict(), "conditioner.embedders.1.model.")}
    out = write_state_dict({k: v.contiguous() for k, v in sd.items()}, path)
    configs.write_config_folder("sdxl", sibling_config_dir(out), overrides={
        "unet": XL_UNET, "vae": TINY_VAE, "text_encoder": CLIP_L, "text_encoder_2": BIG_G})
    return out, {"unet": unet, "vae": vae, "te1": te1, "te2": te2}


def make_tiny_sd2(path: Path, seed: int = 0):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL.from_config(TINY_VAE)
    unet = UNet2DConditionModel.from_config(SD2_UNET)
    te = CLIPTextModel(CLIPTextConfig.from_dict(OPEN_H))
    sd = {**unet_state_dict_to_ldm(unet.state_dict(), SD2_UNET), **vae_state_dict_to_ldm(vae.state_dict(), TINY_VAE),
          **_to_open_clip(te.state_dict(), "cond_stage_model.model.")}
    out = write_state_dict({k: v.contiguous() for k, v in sd.items()}, path)
    configs.write_config_folder("sd2", sibling_config_dir(out), v_prediction=True,
                                overrides={"unet": SD2_UNET, "vae": TINY_VAE, "text_encoder": OPEN_H})
    return out, {"unet": unet, "vae": vae, "te": te}
