"""Builtin engine vs sd-scripts' networks.lora (issue 13): alpha 0 means alpha = rank, and
network_dropout acts on the down projection's output, in training only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.engines.builtin.network import ADAPTER, inject, select_modules
from lib_lora_trainer.lora_file import load_lora, read_lora_header


@pytest.fixture(scope="module")
def tiny_unet():
    from diffusers import UNet2DConditionModel

    from lib_lora_trainer.models.tiny import TINY_UNET

    torch.manual_seed(0)
    return UNet2DConditionModel.from_config(TINY_UNET)


def _fresh(unet):
    import copy
    return copy.deepcopy(unet)


def test_alpha_zero_is_the_rank_for_linear_and_conv_layers(tiny_unet):
    unet = _fresh(tiny_unet)
    mods = select_modules(unet, "lora_unet", lambda p: p, 4, 0, conv_rank=2, conv_alpha=0.0, is_unet=True)
    conv = [m for m in mods if m.is_conv3x3]
    assert conv and len(conv) < len(mods)
    assert all(m.alpha == (2 if m.is_conv3x3 else 4) for m in mods)
    # networks.lora stores the rank itself (an int, so an int64 tensor) as the module's alpha
    assert all(type(m.alpha) is int for m in mods)
    inject(unet, mods, None)
    assert {unet.get_submodule(m.path).scaling[ADAPTER] for m in mods} == {1.0}


def test_network_alpha_zero_trains_and_is_written_like_sd_scripts(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds", n=2)
    run, ds = write_configs(tmp_path, tiny_model, img, {
        "network_alpha": 0, "network_args": ["conv_dim=2", "conv_alpha=0"], "max_train_steps": 2})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    path = tmp_path / "out" / "tiny_lora.safetensors"
    tensors, md = load_lora(path)
    ups = [k for k in tensors if k.endswith("lora_up.weight")]
    assert all(tensors[k].abs().sum() > 0 for k in ups), "alpha 0 must train (scale 1), not freeze lora_up"
    downs = [k for k in tensors if k.endswith(".lora_down.weight")]
    ranks = {k.removesuffix(".lora_down.weight"): tensors[k].shape[0] for k in downs}
    assert set(ranks.values()) == {2, 4}
    for name, rank in ranks.items():
        assert tensors[f"{name}.alpha"].item() == rank
    keys, _ = read_lora_header(path)
    assert {v[1] for k, v in keys.items() if k.endswith(".alpha")} == {"I64"}
    # sd-scripts writes the TOML's value, not the rank it used
    assert md["ss_network_alpha"] == "0"
    assert md["ss_network_args"] == '{"conv_dim": "2", "conv_alpha": "0", "dropout": null}'


def test_conv_alpha_tensors_are_float_as_networks_lora_reads_them(tiny_unet):
    """networks.lora does float(conv_alpha): "conv_alpha=4" gives a float32 .alpha tensor."""
    from lib_lora_trainer.engines.builtin.args import parse_args

    a = parse_args({"pretrained_model_name_or_path": "m", "output_dir": "o", "network_module": "networks.lora",
                    "network_args": ["conv_dim=2", "conv_alpha=4"]})
    assert a.conv_alpha == 4.0 and type(a.conv_alpha) is float


def _one_layer(unet, dropout):
    mods = select_modules(unet, "lora_unet", lambda p: p, 4, 4, is_unet=True)
    mods = [m for m in mods if m.path.endswith("attn1.to_q")][:1]
    inject(unet, mods, dropout)
    layer = unet.get_submodule(mods[0].path)
    with torch.no_grad():
        layer.lora_B[ADAPTER].weight.normal_()
    return layer


def test_network_dropout_acts_on_the_down_projection_output_in_training_only(tiny_unet):
    layer = _one_layer(_fresh(tiny_unet), 0.5)
    x = torch.randn(2, 5, layer.base_layer.in_features)
    down, up, scale = layer.lora_A[ADAPTER], layer.lora_B[ADAPTER], layer.scaling[ADAPTER]
    assert down.bias is None and up.bias is None
    layer.train()
    torch.manual_seed(1)
    got = layer(x)
    torch.manual_seed(1)  # the same draw, applied where networks.lora applies it
    lx = F.linear(x, down.weight)  # the bare projection (calling `down` would run the engine's hook)
    expected = layer.base_layer(x) + F.linear(F.dropout(lx, p=0.5, training=True), up.weight) * scale
    torch.testing.assert_close(got, expected)
    layer.eval()
    torch.testing.assert_close(layer(x), layer.base_layer(x) + F.linear(lx, up.weight) * scale)


def test_network_dropout_help_says_where_it_applies():
    from lib_lora_trainer.config.training_config import TrainingConfig

    help_text = TrainingConfig.field_spec("network_dropout").help
    assert "down-projection output" in help_text and "training only" in help_text
