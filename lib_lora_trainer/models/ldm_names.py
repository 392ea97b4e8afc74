"""diffusers -> LDM (original Stable Diffusion / A1111 single-file) names.

The LDM UNet is a flat list of `input_blocks` / `output_blocks`; diffusers nests the same
modules as down/up blocks of resnets + attentions + resamplers. The numbering depends on
the config (layers per block, which blocks have attention, which are the last), so every
mapping here is computed from the config instead of a fixed table. That is what lets one
code path serve the tiny test model and full-size SD1.5 / SDXL.
Kohya sd-scripts names SDXL LoRA modules with these LDM paths, so LoRA export needs them too.
"""

from __future__ import annotations

from typing import Mapping

# ResnetBlock2D child -> LDM ResBlock child. LDM wraps layers in nn.Sequential, so the
# index skips the activation (in_layers = [norm, SiLU, conv]) and dropout (out_layers.3).
_UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}

_UNET_TOP = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL size/crop/pooled-text embedding
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def _per_block(value, n: int) -> list[int]:
    # diffusers accepts an int or one value per block for layers_per_block.
    if isinstance(value, int):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"layers_per_block has {len(values)} entries for {n} blocks")
    return values


class UNetLdmNames:
    """Module-path mapping for one UNet config; build once, map many paths."""

    def __init__(self, unet_config: Mapping):
        down_types = list(unet_config["down_block_types"])
        up_types = list(unet_config["up_block_types"])
        n = len(down_types)
        layers = _per_block(unet_config.get("layers_per_block", 2), n)
        mid_type = unet_config.get("mid_block_type") or "UNetMidBlock2DCrossAttn"
        if mid_type != "UNetMidBlock2DCrossAttn":
            raise ValueError(f"unsupported mid_block_type {mid_type!r}")

        # (diffusers prefix) -> LDM prefix, for every resnet / attention / resampler.
        table: dict[str, str] = {}
        idx = 1  # input_blocks.0 is conv_in
        for i in range(n):
            for j in range(layers[i]):
                table[f"down_blocks.{i}.resnets.{j}"] = f"input_blocks.{idx}.0"
                if "CrossAttn" in down_types[i]:
                    table[f"down_blocks.{i}.attentions.{j}"] = f"input_blocks.{idx}.1"
                idx += 1
            if i < n - 1:  # every level but the last halves the resolution
                table[f"down_blocks.{i}.downsamplers.0"] = f"input_blocks.{idx}.0"
                idx += 1

        up_layers = list(reversed(layers))
        idx = 0
        for i in range(n):
            has_attn = "CrossAttn" in up_types[i]
            # Up blocks have one extra resnet: it consumes the skip from the downsampler.
            for j in range(up_layers[i] + 1):
                table[f"up_blocks.{i}.resnets.{j}"] = f"output_blocks.{idx}.0"
                if has_attn:
                    table[f"up_blocks.{i}.attentions.{j}"] = f"output_blocks.{idx}.1"
                idx += 1
            if i < n - 1:  # the upsampler sits after the last resnet(+attention) of the level
                table[f"up_blocks.{i}.upsamplers.0"] = f"output_blocks.{idx - 1}.{2 if has_attn else 1}"

        table["mid_block.resnets.0"] = "middle_block.0"
        table["mid_block.attentions.0"] = "middle_block.1"
        table["mid_block.resnets.1"] = "middle_block.2"
        self._table = table

    def module(self, diffusers_path: str) -> str:
        if diffusers_path in _UNET_TOP:
            return _UNET_TOP[diffusers_path]
        parts = diffusers_path.split(".")
        # Block-level prefixes are 4 parts ("down_blocks.0.resnets.1") or 3 ("mid_block.resnets.0").
        for cut in (4, 3):
            prefix = ".".join(parts[:cut])
            if prefix in self._table:
                rest = parts[cut:]
                break
        else:
            raise KeyError(f"no LDM name for UNet module {diffusers_path!r}")
        ldm = self._table[prefix]
        kind = parts[cut - 2]
        if kind == "resnets" and rest:
            if rest[0] not in _UNET_RESNET:
                raise KeyError(f"no LDM name for UNet module {diffusers_path!r}")
            rest = _UNET_RESNET[rest[0]].split(".") + rest[1:]
        elif kind == "downsamplers" and rest:
            if rest[0] != "conv":
                raise KeyError(f"no LDM name for UNet module {diffusers_path!r}")
            rest = ["op"] + rest[1:]
        # Transformer2DModel internals (norm, proj_in, transformer_blocks.N.attn1.to_q, ...)
        # and the upsampler's "conv" have the same names in both layouts.
        return ".".join([ldm, *rest])

    def param(self, diffusers_key: str) -> str:
        module, _, leaf = diffusers_key.rpartition(".")
        return f"{self.module(module)}.{leaf}"


def unet_module_path_to_ldm(diffusers_path: str, unet_config: Mapping) -> str:
    """e.g. "down_blocks.1.attentions.0.proj_in" -> "input_blocks.4.1.proj_in" (SD1.5 config)."""
    return UNetLdmNames(unet_config).module(diffusers_path)


def unet_state_dict_to_ldm(state_dict: Mapping, unet_config: Mapping) -> dict:
    names = UNetLdmNames(unet_config)
    return {"model.diffusion_model." + names.param(k): v for k, v in state_dict.items()}


# --- VAE ---------------------------------------------------------------------

_VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}
_VAE_TOP = {"conv_norm_out": "norm_out"}


def vae_param_to_ldm(diffusers_key: str, vae_config: Mapping) -> str:
    """AutoencoderKL parameter name -> LDM name (without the first_stage_model. prefix)."""
    n_up = len(vae_config["up_block_types"])
    parts = diffusers_key.split(".")
    side = parts[0]
    if side in ("quant_conv", "post_quant_conv"):
        return diffusers_key
    if side not in ("encoder", "decoder"):
        raise KeyError(f"no LDM name for VAE parameter {diffusers_key!r}")
    body = parts[1:]
    if body[0] in ("down_blocks", "up_blocks"):
        level = int(body[1])
        if body[0] == "up_blocks":  # LDM numbers decoder levels from the lowest resolution up
            level = n_up - 1 - level
        head = f"{'down' if body[0] == 'down_blocks' else 'up'}.{level}"
        if body[2] == "resnets":
            out = [head, "block", body[3], *body[4:]]
        elif body[2] in ("downsamplers", "upsamplers"):
            out = [head, "downsample" if body[2] == "downsamplers" else "upsample", *body[4:]]
        else:
            raise KeyError(f"no LDM name for VAE parameter {diffusers_key!r}")
    elif body[0] == "mid_block":
        if body[1] == "resnets":
            out = ["mid", f"block_{int(body[2]) + 1}", *body[3:]]
        elif body[1] == "attentions":
            inner = ".".join(body[3:-1])
            if inner not in _VAE_ATTN:
                raise KeyError(f"no LDM name for VAE parameter {diffusers_key!r}")
            out = ["mid", "attn_1", _VAE_ATTN[inner], body[-1]]
        else:
            raise KeyError(f"no LDM name for VAE parameter {diffusers_key!r}")
    else:
        out = [_VAE_TOP.get(body[0], body[0]), *body[1:]]
    name = ".".join([side, *out])
    return name.replace(".conv_shortcut.", ".nin_shortcut.")


def vae_state_dict_to_ldm(state_dict: Mapping, vae_config: Mapping) -> dict:
    out = {}
    for key, value in state_dict.items():
        ldm = vae_param_to_ldm(key, vae_config)
        # LDM's mid-block attention uses 1x1 convs where diffusers uses Linear.
        if ".mid.attn_1." in ldm and ldm.endswith(".weight") and getattr(value, "ndim", 0) == 2:
            value = value.reshape(*value.shape, 1, 1)
        out["first_stage_model." + ldm] = value
    return out


# --- CLIP text encoder (SD1) ---------------------------------------------------

def text_encoder_state_dict_to_ldm(state_dict: Mapping) -> dict:
    # transformers >= 5.6 drops the "text_model." level from CLIPTextModel names; LDM keeps it.
    return {
        "cond_stage_model.transformer.text_model." + k.removeprefix("text_model."): v
        for k, v in state_dict.items()
    }
