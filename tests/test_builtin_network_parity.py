"""Key names and shapes of our LoRA equal what sd-scripts' networks.lora writes (real fixtures),
for the full-size SD1.5 and SDXL architectures (built on the meta device: no memory, no weights)."""

import json

import pytest
import torch
from torch import nn

from lib_lora_trainer.engines.builtin.network import select_modules, text_encoder_name
from lib_lora_trainer.models.configs import component_configs


def _expected_keys(model: nn.Module, modules) -> dict[str, list[int]]:
    out = {}
    for m in modules:
        layer = model.get_submodule(m.path)
        if isinstance(layer, nn.Linear):
            down, up = [m.rank, layer.in_features], [layer.out_features, m.rank]
        else:
            k = list(layer.kernel_size)
            down, up = [m.rank, layer.in_channels, *k], [layer.out_channels, m.rank, 1, 1]
        out[f"{m.kohya_name}.lora_down.weight"] = down
        out[f"{m.kohya_name}.lora_up.weight"] = up
        out[f"{m.kohya_name}.alpha"] = []
    return out


def _fixture_shapes(path) -> dict[str, list[int]]:
    return {k: v[0] for k, v in json.loads(path.read_text()).items()}


def _build(kind: str, config: dict):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        if kind == "unet":
            return UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")})
        cfg = CLIPTextConfig(**{k: v for k, v in config.items() if not k.startswith("_") and k != "architectures"})
        cls = CLIPTextModelWithProjection if "WithProjection" in str(config.get("architectures")) else CLIPTextModel
        return cls(cfg)


def test_sd15_unet_and_text_encoder_keys_equal_sd_scripts(sd_scripts_fixtures):
    cfg = component_configs("sd1")
    unet, te = _build("unet", cfg["unet"]), _build("te", cfg["text_encoder"])
    expected = _expected_keys(unet, select_modules(unet, "lora_unet", lambda p: p, 4, 1, is_unet=True))
    expected.update(_expected_keys(te, select_modules(te, "lora_te", text_encoder_name, 4, 1)))
    fixture = _fixture_shapes(sd_scripts_fixtures / "sd15_rich.VadymPanchenko_v1.keys.json")
    assert set(expected) == set(fixture), sorted(set(expected) ^ set(fixture))[:10]
    assert expected == fixture


def test_sdxl_unet_keys_equal_sd_scripts(sd_scripts_fixtures):
    from lib_lora_trainer.models.ldm_names import unet_module_path_to_ldm

    cfg = component_configs("sdxl")["unet"]
    unet = _build("unet", cfg)
    mods = select_modules(unet, "lora_unet", lambda p: unet_module_path_to_ldm(p, cfg), 4, 1, is_unet=True)
    expected = _expected_keys(unet, mods)
    fixture = _fixture_shapes(sd_scripts_fixtures / "sdxl_rich.VadymPanchenko_v1.keys.json")
    assert set(expected) == set(fixture), sorted(set(expected) ^ set(fixture))[:10]
    assert expected == fixture


@pytest.mark.parametrize("conv_dim", [None, 8])
def test_conv_dim_adds_3x3_convs_with_their_own_rank(conv_dim):
    cfg = component_configs("sd1")["unet"]
    unet = _build("unet", cfg)
    mods = select_modules(unet, "lora_unet", lambda p: p, 4, 1, conv_dim, 1.0, is_unet=True)
    conv3 = [m for m in mods if m.is_conv3x3]
    if conv_dim is None:
        assert not conv3 and len(mods) == 192
    else:
        names = {m.kohya_name for m in conv3}
        assert "lora_unet_down_blocks_0_resnets_0_conv1" in names
        assert "lora_unet_down_blocks_0_downsamplers_0_conv" in names
        assert "lora_unet_up_blocks_0_upsamplers_0_conv" in names
        assert all(m.rank == 8 and m.alpha == 1.0 for m in conv3)
        # ResnetBlock2D's time_emb_proj (Linear) and 1x1 shortcuts join at the base rank, as in networks.lora.
        assert any(m.kohya_name.endswith("time_emb_proj") and m.rank == 4 for m in mods)
