"""Write diffusers SD1 components as one A1111-style (LDM key names) checkpoint file.

diffusers has no diffusers -> single-file exporter; A1111 and sd-scripts only read the
LDM layout. The names come from ldm_names (config-driven), so tiny and full-size models
take the same path.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lib_lora_trainer import atomic

from .ldm_names import text_encoder_state_dict_to_ldm, unet_state_dict_to_ldm, vae_state_dict_to_ldm


def _check_sd1(unet, text_encoder) -> None:
    cfg = unet.config
    if cfg.get("addition_embed_type") is not None:
        raise ValueError("save_single_file writes SD1-layout files only; this UNet is SDXL-like "
                         "(addition_embed_type is set)")
    hidden = text_encoder.config.hidden_size
    if cfg["cross_attention_dim"] != hidden:
        raise ValueError(f"UNet cross_attention_dim {cfg['cross_attention_dim']} != text encoder hidden size {hidden}")
    if hidden == 1024:
        # SD2 stores OpenCLIP names (fused in_proj) under cond_stage_model.model: not written here.
        raise ValueError("save_single_file writes SD1-layout files only; this looks like SD2 (OpenCLIP-H)")


def ldm_state_dict(unet, vae, text_encoder, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The full LDM-named state dict (tensors detached, contiguous, optionally cast)."""
    _check_sd1(unet, text_encoder)
    out: dict[str, torch.Tensor] = {}
    out.update(unet_state_dict_to_ldm(unet.state_dict(), unet.config))
    out.update(vae_state_dict_to_ldm(vae.state_dict(), vae.config))
    out.update(text_encoder_state_dict_to_ldm(text_encoder.state_dict()))
    for key, t in out.items():
        t = t.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        out[key] = t.contiguous()  # safetensors refuses non-contiguous tensors
    return out


def write_state_dict(state_dict: dict, path, metadata: dict[str, str] | None = None) -> Path:
    """Atomic write: temp file in the same folder, fsync, os.replace. Readers never see half a file.
    `.ckpt` paths get a torch.save({"state_dict": ...}); anything else is safetensors."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        if path.suffix.lower() == ".ckpt":
            torch.save({"state_dict": state_dict}, tmp)
        else:
            from safetensors.torch import save_file

            save_file(state_dict, tmp, metadata={"format": "pt", **(metadata or {})})
    return path


def save_single_file(unet, vae, text_encoder, path, dtype: torch.dtype | None = None,
                     metadata: dict[str, str] | None = None) -> Path:
    """Save SD1 diffusers components as an A1111-loadable single file (.safetensors or .ckpt)."""
    return write_state_dict(ldm_state_dict(unet, vae, text_encoder, dtype), path, metadata)
