"""lib_lora_trainer.models: detection, offline configs, LDM names, tiny model, loading.

Everything runs offline: full-size architectures are only ever built on the meta device.
"""

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # must be set before huggingface_hub is imported
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lib_lora_trainer.models import cli as models_cli
from lib_lora_trainer.models import configs
from lib_lora_trainer.models.detect import ModelError, ModelInfo, detect_model_type, sibling_config_dir
from lib_lora_trainer.models.ldm_names import (
    UNetLdmNames,
    unet_module_path_to_ldm,
    unet_state_dict_to_ldm,
    vae_state_dict_to_ldm,
)
from lib_lora_trainer.models.loading import load_components
from lib_lora_trainer.models.single_file import save_single_file, write_state_dict
from tiny_models import make_tiny_sd2, make_tiny_sdxl
from lib_lora_trainer.models.tiny import TINY_FILE_NAME, build_tiny_sd1, make_tiny_sd1, write_tiny_config_folder

FIXTURES = Path("/work/shared/fixtures/sd-scripts/v0.10.1")
if not FIXTURES.is_dir():
    FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "sd-scripts" / "v0.10.1"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    # Never touch ~/.cache from tests.
    monkeypatch.setenv("LORA_TRAINER_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    path = make_tiny_sd1(folder / TINY_FILE_NAME, seed=0)
    return path, build_tiny_sd1(0)


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different[:5]


def assert_components_equal(comps, originals):
    unet, vae, text_encoder = originals
    assert_same_params(comps.unet, unet)
    assert_same_params(comps.vae, vae)
    assert len(comps.text_encoders) == 1
    assert_same_params(comps.text_encoders[0], text_encoder)


# --- tiny model: write -> detect -> load --------------------------------------

def test_tiny_single_file_detects_and_loads_exactly(tiny):
    path, originals = tiny
    assert detect_model_type(path) == ModelInfo("sd1", False, "single_file")
    comps = load_components(path)
    assert_components_equal(comps, originals)
    assert comps.model_type == "sd1" and comps.v_prediction is False
    assert comps.config_dir == sibling_config_dir(path) == path.with_name("tiny-sd1.config")
    sched = comps.noise_scheduler
    assert type(sched).__name__ == "DDPMScheduler"
    assert sched.config.prediction_type == "epsilon"
    assert (sched.config.beta_start, sched.config.beta_end, sched.config.beta_schedule) == (0.00085, 0.012,
                                                                                              "scaled_linear")
    assert sched.config.num_train_timesteps == 1000 and sched.config.clip_sample is False
    ids = comps.tokenizers[0]("a photo of VadymPanchenko, man").input_ids
    assert ids == [49406, 320, 1125, 539, 11880, 88, 1037, 514, 29073, 267, 786, 49407]
    # 64x64 px -> 8x8 latents, and the UNet accepts them with 64-d text states
    with torch.no_grad():
        latents = comps.vae.encode(torch.zeros(1, 3, 64, 64)).latent_dist.mean
        assert latents.shape == (1, 4, 8, 8)
        hidden = comps.text_encoders[0](torch.tensor([ids])).last_hidden_state
        out = comps.unet(latents, 10, encoder_hidden_states=hidden).sample
    assert out.shape == (1, 4, 8, 8)


def test_load_overrides_and_mismatch(tiny):
    path, _ = tiny
    comps = load_components(path, v_prediction=True, dtype=torch.float16)
    assert comps.noise_scheduler.config.prediction_type == "v_prediction"
    assert comps.unet.dtype == torch.float16 and comps.text_encoders[0].dtype == torch.float16
    with pytest.raises(ModelError, match=r"expected an SDXL model but this is SD1"):
        load_components(path, model_type="sdxl")


def test_tiny_is_deterministic_and_keeps_global_rng(tiny, tmp_path):
    path, _ = tiny
    state = torch.get_rng_state()
    again = make_tiny_sd1(tmp_path / "a" / "same.safetensors", seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert again.read_bytes() == path.read_bytes()
    other = make_tiny_sd1(tmp_path / "b" / "other.safetensors", seed=1)
    assert other.read_bytes() != path.read_bytes()
    # the config folder is independent of the seed
    cfg = lambda p: (sibling_config_dir(p) / "unet" / "config.json").read_text()  # noqa: E731
    assert cfg(again) == cfg(other) == cfg(path)


def test_tiny_sizes(tiny):
    _, (unet, vae, text_encoder) = tiny
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.5e6 < count(unet) < 3e6
    assert count(vae) < 1e6
    assert text_encoder.config.vocab_size == 49408 and text_encoder.config.hidden_size == 64


def test_ldm_key_spot_checks(tiny):
    path, _ = tiny
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        q_shape = f.get_slice("first_stage_model.encoder.mid.attn_1.q.weight").get_shape()
        proj_shape = f.get_slice("first_stage_model.decoder.mid.attn_1.proj_out.weight").get_shape()
    for key in ("model.diffusion_model.input_blocks.0.0.weight",
                "model.diffusion_model.out.2.weight",
                "model.diffusion_model.time_embed.0.weight",
                "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight",
                "model.diffusion_model.input_blocks.2.0.op.weight",
                "model.diffusion_model.middle_block.2.out_layers.3.weight",
                "model.diffusion_model.output_blocks.1.1.conv.weight",  # UpBlock2D upsampler (no attention)
                "first_stage_model.encoder.down.0.downsample.conv.weight",
                "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",  # 32 -> 16: LDM counts up from low res
                "first_stage_model.quant_conv.weight",
                "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
                "cond_stage_model.transformer.text_model.final_layer_norm.weight"):
        assert key in keys, key
    assert len(q_shape) == 4 and q_shape[2:] == [1, 1]
    assert len(proj_shape) == 4
    prefixes = ("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer.text_model.")
    assert all(k.startswith(prefixes) for k in keys)
    assert not any("down_blocks" in k or "resnets" in k for k in keys)


def test_ckpt_variant_loads(tiny):
    path, originals = tiny
    ckpt = path.with_suffix(".ckpt")  # shares tiny-sd1.config/ with the .safetensors
    save_single_file(*originals, ckpt)
    assert detect_model_type(ckpt) == ModelInfo("sd1", False, "single_file")
    assert_components_equal(load_components(ckpt), originals)


def test_lightning_style_ckpt_loads(tiny, tmp_path, monkeypatch):
    """Old SD .ckpt files pickle pytorch_lightning's ModelCheckpoint class and numpy scalars
    beside the weights; they must load without pytorch_lightning and without unsafe unpickling."""
    import shutil
    import sys
    import types

    import numpy as np

    from lib_lora_trainer.models.single_file import ldm_state_dict

    path, originals = tiny
    fake = types.ModuleType("pytorch_lightning.callbacks.model_checkpoint")
    fake.ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": fake.__name__})
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", fake.__name__):
        monkeypatch.setitem(sys.modules, name, fake)
    ckpt = tmp_path / "old.ckpt"
    torch.save({"epoch": 6, "global_step": 840000, "pytorch-lightning_version": "1.4.2",
                "callbacks": {fake.ModelCheckpoint: {"best_model_score": np.float64(0.25)}},
                "state_dict": ldm_state_dict(*originals)}, ckpt)
    for name in ("pytorch_lightning", "pytorch_lightning.callbacks", fake.__name__):
        monkeypatch.delitem(sys.modules, name)
    shutil.copytree(sibling_config_dir(path), sibling_config_dir(ckpt))
    assert detect_model_type(ckpt).model_type == "sd1"
    assert_components_equal(load_components(ckpt), originals)


def test_single_file_without_sibling_uses_cached_full_size_config(tiny, tmp_path):
    """No <stem>.config/: the full-size SD1 config is written to the cache and used. The tiny
    weights do not fit it, and that must surface as a ModelError, not a raw traceback."""
    import shutil

    path, _ = tiny
    lone = tmp_path / "lone.safetensors"
    shutil.copyfile(path, lone)
    assert detect_model_type(lone) == ModelInfo("sd1", None, "single_file")
    with pytest.raises(ModelError, match=r"lone.safetensors: detected as SD1, but loading failed"):
        load_components(lone)
    cached = tmp_path / "cache" / "configs" / "sd1"
    assert json.loads((cached / "unet" / "config.json").read_text())["block_out_channels"] == [320, 640, 1280, 1280]


def test_tiny_sdxl_and_sd2_single_files_load(tmp_path):
    xl, parts = make_tiny_sdxl(tmp_path / "xl.safetensors")
    comps = load_components(xl, model_type="sdxl")
    assert (comps.model_type, comps.v_prediction) == ("sdxl", False)
    assert_same_params(comps.unet, parts["unet"])
    assert_same_params(comps.vae, parts["vae"])
    assert [type(t).__name__ for t in comps.text_encoders] == ["CLIPTextModel", "CLIPTextModelWithProjection"]
    assert_same_params(comps.text_encoders[0], parts["te1"])
    assert_same_params(comps.text_encoders[1], parts["te2"])
    assert [t.pad_token for t in comps.tokenizers] == ["<|endoftext|>", "!"]

    v2, parts = make_tiny_sd2(tmp_path / "v2.safetensors")
    assert detect_model_type(v2) == ModelInfo("sd2", True, "single_file")
    comps = load_components(v2)
    assert comps.noise_scheduler.config.prediction_type == "v_prediction"
    assert_same_params(comps.unet, parts["unet"])
    assert_same_params(comps.text_encoders[0], parts["te"])
    assert comps.tokenizers[0].pad_token == "!"


class _NotATensor:
    pass


def test_ckpt_with_python_objects_is_refused(tmp_path):
    bad = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)},
                "callbacks": _NotATensor()}, bad)
    with pytest.raises(ModelError, match=r"Python objects.*safetensors"):
        detect_model_type(bad)


def test_diffusers_folder_loads(tiny, tmp_path):
    _, originals = tiny
    unet, vae, text_encoder = originals
    folder = tmp_path / "tiny-diffusers"
    write_tiny_config_folder(folder)  # tokenizer, scheduler, model_index
    with pytest.raises(ModelError, match=r"no weights in unet/, vae/, text_encoder/"):
        load_components(folder)  # config-only folder
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    text_encoder.save_pretrained(folder / "text_encoder")
    assert detect_model_type(folder) == ModelInfo("sd1", False, "diffusers")
    comps = load_components(folder)
    assert_components_equal(comps, originals)
    assert comps.config_dir == folder


# --- single-file writer -------------------------------------------------------

def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "m.safetensors"
    write_state_dict({"a": torch.zeros(2)}, target)
    before = target.read_bytes()
    with pytest.raises(Exception):
        write_state_dict({"a": "not a tensor"}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_save_single_file_refuses_sdxl():
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs.SDXL_UNET)
        te = CLIPTextModel(CLIPTextConfig.from_dict(configs.CLIP_L))
    with pytest.raises(ValueError, match="SD1-layout"):
        save_single_file(unet, None, te, "/nonexistent/x.safetensors")


# --- LDM names for full-size architectures (meta device) ------------------------

def _lora_target_names(unet, unet_config) -> set[str]:
    """sd-scripts' UNet LoRA targets: every Linear and 1x1 Conv2d inside a Transformer2DModel."""
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    names = UNetLdmNames(unet_config)
    out = set()
    for name, module in unet.named_modules():
        if not isinstance(module, Transformer2DModel):
            continue
        for sub, child in module.named_modules():
            if isinstance(child, torch.nn.Linear) or (isinstance(child, torch.nn.Conv2d)
                                                      and child.kernel_size == (1, 1)):
                out.add("lora_unet_" + names.module(f"{name}.{sub}").replace(".", "_"))
    return out


def test_sdxl_lora_module_names_match_sd_scripts():
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**{k: v for k, v in configs.SDXL_UNET.items() if not k.startswith("_")})
    keys = json.loads((FIXTURES / "sdxl_rich.VadymPanchenko_v1.keys.json").read_text())
    suffixes = (".lora_down.weight", ".lora_up.weight", ".alpha")
    expected = set()
    for key in keys:
        assert key.endswith(suffixes), key
        for s in suffixes:
            if key.endswith(s):
                expected.add(key[: -len(s)])
    ours = _lora_target_names(unet, configs.SDXL_UNET)
    assert len(expected) == 722
    assert ours == expected, (sorted(ours - expected)[:5], sorted(expected - ours)[:5])


SD15_PATHS = {
    "conv_in": "input_blocks.0.0",
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "down_blocks.0.resnets.0.conv1": "input_blocks.1.0.in_layers.2",
    "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q": "input_blocks.1.1.transformer_blocks.0.attn1.to_q",
    "down_blocks.0.attentions.1.proj_in": "input_blocks.2.1.proj_in",
    "down_blocks.0.resnets.1.conv1": "input_blocks.2.0.in_layers.2",
    "down_blocks.0.downsamplers.0.conv": "input_blocks.3.0.op",
    "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": "input_blocks.4.1.transformer_blocks.0.attn1.to_q",
    "down_blocks.1.resnets.0.conv_shortcut": "input_blocks.4.0.skip_connection",
    "down_blocks.1.resnets.0.time_emb_proj": "input_blocks.4.0.emb_layers.1",
    "down_blocks.2.downsamplers.0.conv": "input_blocks.9.0.op",
    "down_blocks.3.resnets.1.norm2": "input_blocks.11.0.out_layers.0",
    "mid_block.resnets.0.conv2": "middle_block.0.out_layers.3",
    "mid_block.attentions.0.proj_in": "middle_block.1.proj_in",
    "mid_block.resnets.1.norm1": "middle_block.2.in_layers.0",
    "up_blocks.0.resnets.2.conv1": "output_blocks.2.0.in_layers.2",
    "up_blocks.0.upsamplers.0.conv": "output_blocks.2.1.conv",
    "up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k": "output_blocks.3.1.transformer_blocks.0.attn2.to_k",
    "up_blocks.1.upsamplers.0.conv": "output_blocks.5.2.conv",
    "up_blocks.3.attentions.2.proj_out": "output_blocks.11.1.proj_out",
    "up_blocks.3.resnets.2.conv_shortcut": "output_blocks.11.0.skip_connection",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}


def test_sd15_module_paths():
    from diffusers import UNet2DConditionModel

    for diffusers_path, ldm in SD15_PATHS.items():
        assert unet_module_path_to_ldm(diffusers_path, configs.SD1_UNET) == ldm, diffusers_path
    with pytest.raises(KeyError):
        unet_module_path_to_ldm("down_blocks.3.attentions.0.proj_in", configs.SD1_UNET)  # DownBlock2D: no attention
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs.SD1_UNET)
    modules = dict(unet.named_modules())
    assert all(p in modules for p in SD15_PATHS)  # the table uses real module paths
    names = _lora_target_names(unet, configs.SD1_UNET)
    # 16 transformers x (proj_in, proj_out, 10 linears per block)
    assert len(names) == 16 * 12
    assert "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q" in names
    assert "lora_unet_output_blocks_11_1_proj_out" in names


@pytest.mark.parametrize("model_type", ["sd1", "sd2", "sdxl"])
def test_ldm_names_round_trip_through_diffusers(model_type):
    """Our diffusers->LDM names, fed to diffusers' own LDM->diffusers converter, give back every
    tensor under its original name: the mapping is exact for the full-size architectures."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    comps = configs.component_configs(model_type, v_prediction=(model_type == "sd2"))
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(comps["unet"])
        vae = AutoencoderKL.from_config(comps["vae"])
    sd = unet.state_dict()
    back = convert_ldm_unet_checkpoint(unet_state_dict_to_ldm(sd, comps["unet"]), dict(comps["unet"]))
    assert back.keys() == sd.keys() and all(back[k] is sd[k] for k in sd)
    vsd = vae.state_dict()
    vback = convert_ldm_vae_checkpoint(vae_state_dict_to_ldm(vsd, comps["vae"]), dict(comps["vae"]))
    assert vback.keys() == vsd.keys() and all(vback[k].shape == vsd[k].shape for k in vsd)


def test_full_size_sd15_single_file_has_sd_scripts_tensor_count():
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from lib_lora_trainer.models.single_file import ldm_state_dict

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(configs.SD1_UNET)
        vae = AutoencoderKL.from_config(configs.SD1_VAE)
        te = CLIPTextModel(CLIPTextConfig.from_dict(configs.CLIP_L))
    sd = ldm_state_dict(unet, vae, te)
    assert len(sd) == 1130  # sd-scripts' SD1.5 single file (fixtures README) has 1130 tensors
    assert sd["first_stage_model.encoder.mid.attn_1.q.weight"].shape == (512, 512, 1, 1)
    assert sd["model.diffusion_model.out.2.weight"].shape == (4, 320, 3, 3)


# --- config folders -------------------------------------------------------------

PARAMS_M = {  # published parameter counts (millions)
    "sd1": {"unet": 859.52, "vae": 83.65, "text_encoder": 123.06},
    "sd2": {"unet": 865.91, "vae": 83.65, "text_encoder": 340.39},
    "sdxl": {"unet": 2567.46, "vae": 83.65, "text_encoder": 123.06, "text_encoder_2": 694.66},
}


@pytest.mark.parametrize("model_type,v_prediction", [("sd1", False), ("sd2", True), ("sd2", False), ("sdxl", False)])
def test_config_folder_is_loadable_offline(tmp_path, model_type, v_prediction):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = configs.write_config_folder(model_type, tmp_path / model_type, v_prediction=v_prediction)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == ("StableDiffusionXLPipeline" if model_type == "sdxl" else "StableDiffusionPipeline")
    sched = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    assert sched.config.prediction_type == ("v_prediction" if v_prediction else "epsilon")
    vae_cfg = AutoencoderKL.load_config(folder, subfolder="vae", local_files_only=True)
    assert vae_cfg["scaling_factor"] == (0.13025 if model_type == "sdxl" else 0.18215)

    counts = {}
    with torch.device("meta"):
        counts["unet"] = UNet2DConditionModel.from_config(
            UNet2DConditionModel.load_config(folder, subfolder="unet", local_files_only=True))
        counts["vae"] = AutoencoderKL.from_config(vae_cfg)
        counts["text_encoder"] = CLIPTextModel(CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder"))
        if model_type == "sdxl":
            cfg2 = CLIPTextConfig.from_pretrained(folder, subfolder="text_encoder_2")
            assert (cfg2.hidden_size, cfg2.num_hidden_layers, cfg2.num_attention_heads, cfg2.projection_dim,
                    cfg2.hidden_act) == (1280, 32, 20, 1280, "gelu")
            counts["text_encoder_2"] = CLIPTextModelWithProjection(cfg2)
    for name, module in counts.items():
        millions = sum(p.numel() for p in module.parameters()) / 1e6
        assert millions == pytest.approx(PARAMS_M[model_type][name], abs=0.01), name

    tok = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)
    assert tok.pad_token == ("!" if model_type == "sd2" else "<|endoftext|>")
    if model_type == "sdxl":
        tok2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2", local_files_only=True)
        assert tok2.pad_token == "!" and tok2("a cat").input_ids == tok("a cat").input_ids


def test_cached_config_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_TRAINER_CACHE_DIR", str(tmp_path / "envcache"))
    first = configs.cached_config_folder("sd2", v_prediction=True)
    assert first == tmp_path / "envcache" / "configs" / "sd2-v"
    stamp = (first / "unet" / "config.json").stat().st_mtime_ns
    assert configs.cached_config_folder("sd2", v_prediction=True) == first
    assert (first / "unet" / "config.json").stat().st_mtime_ns == stamp  # reused, not rewritten
    # a stale/damaged cache is replaced
    (first / "unet" / "config.json").write_text("{}")
    (first / ".lora_trainer_config.json").write_text("{}")
    assert configs.cached_config_folder("sd2", v_prediction=True) == first
    assert json.loads((first / "unet" / "config.json").read_text())["cross_attention_dim"] == 1024
    explicit = configs.cached_config_folder("sdxl", cache_dir=tmp_path / "explicit")
    assert explicit == tmp_path / "explicit" / "configs" / "sdxl"
    assert sorted(p.name for p in explicit.parent.iterdir()) == ["sdxl"]  # no temp leftovers


# --- detection of synthetic key sets ------------------------------------------------

def _write_keys(path: Path, keys, shapes=None) -> Path:
    shapes = shapes or {}
    save_file({k: torch.zeros(shapes.get(k, (1,))) for k in keys}, str(path))
    return path


UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"
VAE_KEY = "first_stage_model.encoder.conv_in.weight"
SD1_KEYS = [UNET_KEY, VAE_KEY, "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"]
SD2_KEYS = [UNET_KEY, VAE_KEY, "cond_stage_model.model.token_embedding.weight"]
SDXL_KEYS = [UNET_KEY, VAE_KEY, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
             "conditioner.embedders.1.model.token_embedding.weight"]


@pytest.mark.parametrize("keys,expected", [(SD1_KEYS, "sd1"), (SD2_KEYS, "sd2"), (SDXL_KEYS, "sdxl")])
def test_detect_synthetic_checkpoints(tmp_path, keys, expected):
    path = _write_keys(tmp_path / "m.safetensors", keys)
    assert detect_model_type(path) == ModelInfo(expected, None, "single_file")


def test_detect_v_prediction_hints(tmp_path):
    yaml_model = _write_keys(tmp_path / "v2.safetensors", SD2_KEYS)
    (tmp_path / "v2.yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    assert detect_model_type(yaml_model).v_prediction is True
    eps_model = _write_keys(tmp_path / "base.safetensors", SD2_KEYS)
    (tmp_path / "base.yaml").write_text("model:\n  params:\n    linear_start: 0.00085\n")
    assert detect_model_type(eps_model).v_prediction is False
    vpred_key = _write_keys(tmp_path / "xlv.safetensors", SDXL_KEYS + ["v_pred"])
    assert detect_model_type(vpred_key) == ModelInfo("sdxl", True, "single_file")


def test_sibling_config_must_agree_with_weights(tmp_path):
    path = _write_keys(tmp_path / "m.safetensors", SD1_KEYS)
    configs.write_config_folder("sd2", sibling_config_dir(path), v_prediction=True)
    with pytest.raises(ModelError, match=r"m.config/ describes an SD2 model but the weights look like SD1"):
        detect_model_type(path)


def _junk(path: Path) -> Path:
    path.write_bytes(b"\x00\x01 this is not a model \xff" * 10)
    return path


BAD_FILES = {
    "lora": (lambda p: _write_keys(p / "lora.safetensors",
                                   ["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
                                    "lora_unet_down_blocks_0_attentions_0_proj_in.alpha"]),
             r"LoRA.*models/Lora"),
    "peft_lora": (lambda p: _write_keys(p / "peft.safetensors",
                                        ["unet.down_blocks.0.attentions.0.proj_in.lora_A.weight"]), r"LoRA"),
    "junk_keys": (lambda p: _write_keys(p / "junk.safetensors", ["foo", "bar.weight"]),
                  r"not a Stable Diffusion checkpoint \(first keys: bar.weight, foo\)"),
    "junk_bytes": (lambda p: _junk(p / "junk.safetensors"), r"not a readable \.safetensors file.*download it again"),
    "junk_ckpt": (lambda p: _junk(p / "junk.ckpt"), r"not a readable \.ckpt file"),
    "vae": (lambda p: _write_keys(p / "vae.safetensors", ["encoder.conv_in.weight", "decoder.conv_in.weight",
                                                          "quant_conv.weight"]), r"a VAE on its own.*models/VAE"),
    "embedding": (lambda p: _write_keys(p / "emb.safetensors", ["emb_params"]), r"textual-inversion embedding"),
    "empty": (lambda p: _write_keys(p / "empty.safetensors", []), r"empty file"),
    "refiner": (lambda p: _write_keys(p / "refiner.safetensors",
                                      [UNET_KEY, VAE_KEY, "conditioner.embedders.0.model.text_projection"]),
                r"SDXL refiner"),
    "no_vae": (lambda p: _write_keys(p / "novae.safetensors", [k for k in SD1_KEYS if k != VAE_KEY]),
               r"without VAE weights"),
    "inpainting": (lambda p: _write_keys(p / "inpaint.safetensors", SD1_KEYS, {UNET_KEY: (2, 9, 1, 1)}),
                   r"9 input channels.*inpainting"),
    "unet_only_diffusers": (lambda p: _write_keys(p / "diffusion_pytorch_model.safetensors",
                                                  ["conv_in.weight", "down_blocks.0.resnets.0.conv1.weight"]),
                            r"whole diffusers model folder"),
    "missing": (lambda p: p / "nope.safetensors", r"no such file or folder"),
    "wrong_suffix": (lambda p: _junk(p / "model.txt"), r"expected \.safetensors or \.ckpt"),
    "empty_folder": (lambda p: (p / "folder").mkdir() or p / "folder", r"not a diffusers model"),
    "models_folder": (lambda p: (p / "models").mkdir() or _write_keys(p / "models" / "a.safetensors", SD1_KEYS).parent,
                      r"folder of model files.*Select one"),
    "component_folder": (lambda p: configs.write_config_folder("sd1", p / "sd15") / "unet",
                         r"one component folder \(unet/\) of a diffusers model.*Select the model folder above"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_model_errors_name_the_file_and_the_fix(tmp_path, case):
    make, pattern = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(ModelError) as info:
        detect_model_type(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert __import__("re").search(pattern, message, __import__("re").S), message
    assert isinstance(info.value, ValueError)
    with pytest.raises(ModelError):
        load_components(path)  # loading reports the same problem


# --- CLI ---------------------------------------------------------------------------

def test_cli_tiny_model(tiny, tmp_path, capsys):
    path, _ = tiny
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    models_cli.add_parser(sub)
    args = parser.parse_args(["tiny-model", "--out", str(tmp_path / "out"), "--seed", "0"])
    assert args.func(args) == 0
    written = Path(capsys.readouterr().out.strip())
    assert written == tmp_path / "out" / "tiny-sd1.safetensors"
    assert written.read_bytes() == path.read_bytes()
    assert (tmp_path / "out" / "tiny-sd1.config" / "model_index.json").is_file()
