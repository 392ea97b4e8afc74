"""lib_lora_trainer.generation on a tiny SD1-layout model built in memory (offline, CPU, seconds)."""

import argparse
import json
import math
import os
import types

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from lib_lora_trainer.generation import cli as gen_cli
from lib_lora_trainer.generation import pipeline as gp
from lib_lora_trainer.generation import prompt_lines as pl
from lib_lora_trainer.generation import samplers as gs

BRIEF_A1111 = ["Euler a", "Euler", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE Karras", "DPM++ 2M SDE Karras",
               "DDIM", "UniPC", "LMS", "Heun", "DPM2", "DPM2 a"]
BASE_CONFIG = {
    "_class_name": "DDPMScheduler", "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "clip_sample": False, "steps_offset": 1, "timestep_spacing": "leading",
    "prediction_type": "epsilon", "variance_type": "fixed_small",
}


# --- tiny model ------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Tiny tensors: a second intra-op thread only adds sync cost, and on a busy 2-core machine it
    # makes every step ~50x slower (spin-waiting for a core another process holds).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def components(tmp_path_factory):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from lib_lora_trainer.tokenizer import write_pretrained_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, norm_num_groups=8,
                        layers_per_block=1, sample_size=64)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=64, intermediate_size=128,
                                                num_hidden_layers=2, num_attention_heads=4,
                                                max_position_embeddings=77))
    tok_dir = tmp_path_factory.mktemp("tokenizer")
    write_pretrained_tokenizer(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    for m in (unet, vae, text_encoder):
        m.requires_grad_(False).eval()
    return types.SimpleNamespace(unet=unet, vae=vae, text_encoders=[text_encoder], tokenizers=[tokenizer],
                                 noise_scheduler=DDPMScheduler.from_config(BASE_CONFIG), model_type="sd1",
                                 v_prediction=False)


@pytest.fixture(scope="module")
def pipe(components):
    return gp.build_pipeline(components, "Euler a")


def _gen(pipe, seed=5, sampler=None, steps=2, prompt="a photo of zkperson", negative="blurry"):
    return np.asarray(gp.generate(pipe, prompt, negative, seed, steps, 64, 64, 7.0, sampler=sampler))


# --- samplers --------------------------------------------------------------------------------

def test_every_sampler_name_builds_and_keeps_v_prediction():
    names = gs.all_sampler_names()
    assert set(BRIEF_A1111) <= set(names) and set(gs.SD_SCRIPTS_SAMPLERS) <= set(names)
    v_base = dict(BASE_CONFIG, prediction_type="v_prediction")
    for name in names:
        sched = gs.make_scheduler(name, v_base)
        assert sched.config.prediction_type == "v_prediction", name
        assert sched.config.num_train_timesteps == 1000 and sched.config.beta_schedule == "scaled_linear", name
    # faithful mapping, spot checks
    cfg = {n: gs.make_scheduler(n, BASE_CONFIG) for n in BRIEF_A1111 + list(gs.SD_SCRIPTS_SAMPLERS)}
    assert type(cfg["Euler a"]).__name__ == "EulerAncestralDiscreteScheduler"
    assert cfg["Euler a"].config.timestep_spacing == "linspace"  # k-diffusion spacing, not the model's "leading"
    assert type(cfg["Euler"]).__name__ == "EulerDiscreteScheduler" and not cfg["Euler"].config.use_karras_sigmas
    for name in ("DPM++ 2M", "DPM++ 2M Karras"):  # A1111 >= 1.9: DPM++ 2M samples with Karras sigmas
        assert cfg[name].config.algorithm_type == "dpmsolver++" and cfg[name].config.use_karras_sigmas
    sde = cfg["DPM++ 2M SDE Karras"]
    assert sde.config.algorithm_type == "sde-dpmsolver++" and sde.config.use_karras_sigmas
    assert gs.make_scheduler("DPM++ 2M SDE", BASE_CONFIG).config.use_exponential_sigmas
    info = gs.sampler_info("DPM++ SDE Karras")
    if gs.has_torchsde():
        assert type(cfg["DPM++ SDE Karras"]).__name__ == "DPMSolverSDEScheduler" and info.stand_in is None
    else:
        assert info.stand_in and info.scheduler == "DPMSolverMultistepScheduler"
        assert cfg["DPM++ SDE Karras"].config.algorithm_type == "sde-dpmsolver++"
    assert cfg["DPM++ SDE Karras"].config.use_karras_sigmas
    assert type(cfg["DDIM"]).__name__ == "DDIMScheduler" and cfg["DDIM"].config.clip_sample is False
    assert cfg["UniPC"].config.solver_type == "bh1" and cfg["UniPC"].config.solver_order == 3
    assert cfg["DPM2"].config.use_karras_sigmas and not cfg["dpm_2"].config.use_karras_sigmas
    assert type(cfg["k_euler_a"]).__name__ == "EulerAncestralDiscreteScheduler"
    assert cfg["dpmsolver"].config.algorithm_type == "dpmsolver"
    assert cfg["dpmsolver++"].config.algorithm_type == "dpmsolver++" and not cfg["dpmsolver++"].config.use_karras_sigmas
    assert type(cfg["dpmsingle"]).__name__ == "DPMSolverSinglestepScheduler"
    assert "LMSDiscreteScheduler" in type(cfg["k_lms"]).__name__
    assert type(cfg["pndm"]).__name__ == "PNDMScheduler"


def test_sampler_options_of_the_saved_scheduler_do_not_leak():
    saved = dict(BASE_CONFIG, _class_name="DPMSolverMultistepScheduler", use_karras_sigmas=True, solver_order=3,
                 algorithm_type="sde-dpmsolver++", clip_sample=True, final_sigmas_type="sigma_min",
                 set_alpha_to_one=True, skip_prk_steps=False, prediction_type="v_prediction")
    euler = gs.make_scheduler("Euler", saved)
    assert not euler.config.use_karras_sigmas and euler.config.final_sigmas_type == "zero"
    dpm = gs.make_scheduler("dpmsolver++", saved)
    assert dpm.config.solver_order == 2 and dpm.config.algorithm_type == "dpmsolver++"
    assert not dpm.config.use_karras_sigmas
    ddim = gs.make_scheduler("DDIM", saved)
    assert ddim.config.clip_sample is False and ddim.config.set_alpha_to_one is False
    assert not gs.make_scheduler("UniPC", saved).config.use_karras_sigmas
    assert all(gs.make_scheduler(n, saved).config.prediction_type == "v_prediction" for n in ("Euler", "DDIM"))


def test_sampler_names_are_case_insensitive_and_unknown_lists_valid():
    assert gs.sampler_info("euler A").name == "Euler a"
    assert gs.sampler_info("  dpm++  2m   KARRAS ").name == "DPM++ 2M Karras"
    assert gs.sampler_info("K_EULER_A").name == "k_euler_a"
    assert gs.sampler_info("K_EULER_A").scheduler == "EulerAncestralDiscreteScheduler"
    assert gs.sampler_info("ddim").name == "DDIM"
    for bad in ("Euler a Karras", "DPM++ 3M", "", "nope"):
        with pytest.raises(ValueError) as exc:
            gs.make_scheduler(bad, BASE_CONFIG)
        msg = str(exc.value)
        assert "DPM++ 2M Karras" in msg and "UniPC" in msg and "k_euler_a" in msg and "dpmsolver++" in msg


def test_lms_coefficients_match_numeric_integration():
    sched = gs.make_scheduler("LMS", BASE_CONFIG)
    sched.set_timesteps(6)
    sig = sched.sigmas.double().numpy()
    for t in range(1, 5):
        order = min(t + 1, 4)
        for cur in range(order):
            xs = np.linspace(sig[t], sig[t + 1], 20001)
            ys = np.ones_like(xs)
            for k in range(order):
                if k != cur:
                    ys *= (xs - sig[t - k]) / (sig[t - cur] - sig[t - k])
            numeric = float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)))
            assert math.isclose(sched.get_lms_coefficient(order, t, cur), numeric, rel_tol=1e-5, abs_tol=1e-6)


def test_every_sampler_generates_64px(pipe):
    seen, failures = set(), []
    for name in gs.all_sampler_names():
        info = gs.sampler_info(name)
        key = (info.scheduler, json.dumps(info.options, sort_keys=True))
        if key in seen and name not in BRIEF_A1111:
            continue
        seen.add(key)
        img = _gen(pipe, sampler=name, steps=3 if name in ("UniPC", "DPM++ 2M") else 2)
        if img.shape != (64, 64, 3) or img.std() == 0:
            failures.append(name)
    assert not failures, failures


def test_same_seed_same_image_different_seed_different(pipe):
    for sampler in ("Euler a", "DPM++ 2M SDE Karras"):  # both draw noise at every step
        a, b, c = _gen(pipe, 11, sampler), _gen(pipe, 11, sampler), _gen(pipe, 12, sampler)
        assert np.array_equal(a, b), sampler
        assert not np.array_equal(a, c), sampler


def test_generate_grid_puts_prompts_in_one_call_and_keeps_each_pictures(pipe, monkeypatch):
    prompts = ["a photo of zkperson, red background", "a photo of zkperson, blue background", "a cat"]
    seeds = [3, 4]
    alone = [gp.generate_many(pipe, p, seeds, steps=2, cfg_scale=7.0, sampler="DPM++ 2M") for p in prompts]
    calls = []
    real_call = type(pipe).__call__
    monkeypatch.setattr(type(pipe), "__call__", lambda self, **kw: calls.append(kw["prompt"]) or real_call(self, **kw))
    grid = gp.generate_grid(pipe, prompts, seeds, steps=2, cfg_scale=7.0, sampler="DPM++ 2M")
    assert calls == [[p for p in prompts for _ in seeds]]  # 6 small pictures: one call, prompt by prompt
    for i in range(len(prompts)):
        for j in range(len(seeds)):  # the same picture as alone, up to the rounding of a bigger batch
            diff = np.abs(np.asarray(grid[i][j], dtype=int) - np.asarray(alone[i][j], dtype=int))
            assert diff.max() <= 2, (i, j, diff.max())
    assert not np.array_equal(np.asarray(grid[0][0]), np.asarray(grid[1][0]))  # prompts kept apart
    calls.clear()
    gp.generate_grid(pipe, prompts, seeds, steps=1, batch=4)  # 2 prompts per call, then the last one
    assert calls == [[prompts[0]] * 2 + [prompts[1]] * 2, [prompts[2]] * 2]
    calls.clear()
    gp.generate_grid(pipe, prompts[:1], [1, 2, 3, 4, 5], steps=1, batch=2)  # more seeds than a call holds
    assert [len(c) for c in calls] == [2, 2, 1]
    assert gp.pictures_per_call(pipe, 512, 512) == 8 and gp.pictures_per_call(pipe, 128, 128) == 128
    assert gp.pictures_per_call(pipe, 1024, 1024) == 8  # never fewer than before the grid existed


def test_build_pipeline_checks_model_type(components):
    with pytest.raises(ValueError, match="model_type"):
        gp.build_pipeline(types.SimpleNamespace(**{**vars(components), "model_type": "flux"}))
    v = gp.build_pipeline(types.SimpleNamespace(**{**vars(components), "v_prediction": True}), "DDIM")
    assert v.scheduler.config.prediction_type == "v_prediction"
    assert type(v).__name__ == "StableDiffusionPipeline" and v.safety_checker is None


def test_sdxl_pipeline_with_kohya_lora(components, tmp_path):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    from lib_lora_trainer.tokenizer import write_pretrained_tokenizer

    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=64,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8, norm_num_groups=32, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32)
    te_cfg = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=77)
    te1, te2 = CLIPTextModel(CLIPTextConfig(**te_cfg)), CLIPTextModelWithProjection(
        CLIPTextConfig(**te_cfg, projection_dim=32))
    write_pretrained_tokenizer(tmp_path / "tok2", variant="sdxl_bigg")
    tok2 = CLIPTokenizer.from_pretrained(str(tmp_path / "tok2"))
    xl = types.SimpleNamespace(unet=unet.eval(), vae=components.vae, text_encoders=[te1.eval(), te2.eval()],
                               tokenizers=[components.tokenizers[0], tok2], noise_scheduler=components.noise_scheduler,
                               model_type="sdxl")
    xl_pipe = gp.build_pipeline(xl, "DPM++ 2M SDE Karras")
    assert type(xl_pipe).__name__ == "StableDiffusionXLPipeline"
    base = _gen(xl_pipe)
    assert base.shape == (64, 64, 3) and np.array_equal(base, _gen(xl_pipe))
    g = torch.Generator().manual_seed(3)
    lora = {}
    for name, w in (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k", (32, 64)),
                    ("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", (32, 32)),
                    ("lora_te2_text_model_encoder_layers_1_mlp_fc1", (64, 32))):
        lora[f"{name}.lora_down.weight"] = torch.randn((4, w[1]), generator=g)
        lora[f"{name}.lora_up.weight"] = torch.randn((w[0], 4), generator=g)
        lora[f"{name}.alpha"] = torch.tensor(4.0)
    save_file(lora, str(tmp_path / "xl.safetensors"))
    gp.apply_loras(xl_pipe, [(tmp_path / "xl.safetensors", 1.0)])
    for module in (te1.get_submodule("encoder.layers.0.self_attn.q_proj" if not hasattr(te1, "text_model")
                                     else "text_model.encoder.layers.0.self_attn.q_proj"),
                   te2.get_submodule("encoder.layers.1.mlp.fc1" if not hasattr(te2, "text_model")
                                     else "text_model.encoder.layers.1.mlp.fc1")):
        assert hasattr(module, "lora_A"), module  # both text encoders got their LoRA
    assert not np.array_equal(_gen(xl_pipe), base)
    gp.apply_loras(xl_pipe, [(tmp_path / "xl.safetensors", 0.0)])
    assert np.array_equal(_gen(xl_pipe), base)


def test_generate_rejects_bad_size(pipe):
    with pytest.raises(ValueError, match="multiple of 8"):
        gp.generate(pipe, "x", None, 1, 2, 60, 64)


# --- kohya LoRA ------------------------------------------------------------------------------

UNET_MODULES = [  # (diffusers module path, rank, alpha)
    ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 4, 2.0),
    ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k", 4, 2.0),
    ("down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2", 4, 2.0),
    ("mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0", 4, 2.0),
    ("up_blocks.1.attentions.0.proj_in", 4, 2.0),           # 1x1 conv
]
TE_MODULES = [  # kohya names keep sd-scripts' "text_model." (transformers 5 dropped it from the module tree)
    ("text_model.encoder.layers.0.self_attn.q_proj", 4, 2.0),
    ("text_model.encoder.layers.1.self_attn.v_proj", 4, 2.0),
    ("text_model.encoder.layers.1.mlp.fc1", 4, 2.0),
]


def _module(components, kind, path):
    root = components.unet if kind == "lora_unet" else components.text_encoders[0]
    if kind == "lora_te" and not hasattr(root, "text_model"):
        path = path.removeprefix("text_model.")
    return root.get_submodule(path)


def _kohya_file(components, path, spec, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for kind, module, rank, alpha in spec:
        layer = _module(components, kind, module)
        layer = getattr(layer, "base_layer", layer)
        name = f"{kind}_{module.replace('.', '_')}"
        w = layer.weight
        extra = tuple(w.shape[2:])
        sd[f"{name}.lora_down.weight"] = torch.randn((rank, w.shape[1], *extra), generator=g) * 0.3
        sd[f"{name}.lora_up.weight"] = torch.randn((w.shape[0], rank, *((1, 1) if extra else ())), generator=g) * 0.3
        if alpha is not None:
            sd[f"{name}.alpha"] = torch.tensor(alpha)
    save_file(sd, str(path), metadata={"ss_network_module": "networks.lora"})
    return sd


def _expected_delta(sd, kind, module, rank, alpha, x):
    name = f"{kind}_{module.replace('.', '_')}"
    down, up = sd[f"{name}.lora_down.weight"], sd[f"{name}.lora_up.weight"]
    scale = (rank if alpha is None else alpha) / rank
    if down.ndim == 4:
        h = torch.nn.functional.conv2d(x, down, padding=down.shape[-1] // 2)
        return torch.nn.functional.conv2d(h, up) * scale
    return x @ down.T @ up.T * scale


def _probe_input(layer, seed=1):
    base = getattr(layer, "base_layer", layer)
    g = torch.Generator().manual_seed(seed)
    if isinstance(base, torch.nn.Conv2d):
        return torch.randn((1, base.in_channels, 4, 4), generator=g)
    return torch.randn((2, base.in_features), generator=g)


def _check_module_deltas(components, spec_weights):
    """Every LoRA module's output moved by exactly sum(weight * alpha/rank * up(down(x)))."""
    for kind, module, *_ in spec_weights[0][1]:
        layer = _module(components, kind, module)
        x = _probe_input(layer)
        with torch.no_grad():
            got = layer(x) - getattr(layer, "base_layer", layer)(x)
            want = sum(w * _expected_delta(sd, k, m, r, a, x)
                       for sd, spec, w in spec_weights for k, m, r, a in spec if (k, m) == (kind, module))
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), f"{kind} {module}"


def test_kohya_lora_changes_image_and_weight_zero_is_exact(pipe, components, tmp_path):
    spec = [("lora_unet", m, r, a) for m, r, a in UNET_MODULES] + [("lora_te", m, r, a) for m, r, a in TE_MODULES]
    path = tmp_path / "zk_person.safetensors"
    sd = _kohya_file(components, path, spec)
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in sd
    base = _gen(pipe)
    try:
        names = gp.apply_loras(pipe, [(path, 1.0)])
        assert names == ["lora0_zk_person"]
        _check_module_deltas(components, [(sd, spec, 1.0)])
        on = _gen(pipe)
        assert not np.array_equal(on, base)
        gp.apply_loras(pipe, [(path, 0.0)])
        assert np.array_equal(_gen(pipe), base)
        gp.apply_loras(pipe, [(path, 0.6)])
        _check_module_deltas(components, [(sd, spec, 0.6)])
    finally:
        gp.remove_loras(pipe)
    assert np.array_equal(_gen(pipe), base)


def test_text_encoder_only_lora_and_mixed_alphas(pipe, components, tmp_path):
    """Two diffusers quirks worked around: TE attention without out_proj, and per-module alphas."""
    te_only = [("lora_te", "text_model.encoder.layers.0.self_attn.q_proj", 4, 2.0)]
    mixed = [("lora_unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q", 4, 2.0),
             ("lora_unet", "down_blocks.0.resnets.0.conv1", 2, 1.0),          # LoCon 3x3 conv, own alpha
             ("lora_unet", "up_blocks.1.attentions.0.proj_in", 4, 1.0),
             ("lora_te", "text_model.encoder.layers.1.mlp.fc2", 4, 1.0),
             ("lora_te", "text_model.encoder.layers.1.self_attn.k_proj", 2, 1.0),
             ("lora_te", "text_model.encoder.layers.0.mlp.fc1", 8, None)]     # no alpha: scale 1
    p1, p2 = tmp_path / "te_only.safetensors", tmp_path / "mixed.safetensors"
    sd1, sd2 = _kohya_file(components, p1, te_only, seed=1), _kohya_file(components, p2, mixed, seed=2)
    base = _gen(pipe)
    try:
        gp.apply_loras(pipe, [(p1, 1.0)])
        _check_module_deltas(components, [(sd1, te_only, 1.0)])
        assert not np.array_equal(_gen(pipe), base)  # the text encoder alone changes the image
        gp.apply_loras(pipe, [(p1, 0.5), (p2, -0.8)])
        _check_module_deltas(components, [(sd1, te_only, 0.5)])
        _check_module_deltas(components, [(sd2, mixed, -0.8)])
        gp.apply_loras(pipe, [(p1, 0.0), (p2, 0.0)])
        assert np.array_equal(_gen(pipe), base)
    finally:
        gp.remove_loras(pipe)


def test_prepare_kohya_state_dict_leaves_uniform_files_alone():
    sd = {"lora_unet_a_to_q.lora_down.weight": torch.ones(2, 3), "lora_unet_a_to_q.lora_up.weight": torch.ones(3, 2),
          "lora_unet_a_to_q.alpha": torch.tensor(1.0),
          "lora_te_text_model_encoder_layers_0_self_attn_out_proj.lora_down.weight": torch.ones(2, 3),
          "lora_te_text_model_encoder_layers_0_self_attn_out_proj.lora_up.weight": torch.ones(3, 2),
          "lora_te_text_model_encoder_layers_0_self_attn_out_proj.alpha": torch.tensor(1.0)}
    out = gp.prepare_kohya_state_dict(sd)
    assert out.keys() == sd.keys() and all(out[k] is sd[k] for k in sd)


def test_apply_loras_missing_file_leaves_pipeline_clean(pipe, tmp_path):
    with pytest.raises(FileNotFoundError):
        gp.apply_loras(pipe, [(tmp_path / "nope.safetensors", 1.0)])
    assert not getattr(pipe.unet, "peft_config", None)


# --- prompt lines ----------------------------------------------------------------------------

def test_prompt_line_all_options():
    p = pl.parse_prompt_line("masterpiece, zkperson smiling --n low quality, blurry --w 768 --h 516 --d 42 "
                             "--l 6.5 --s 25 --ss k_euler_a")
    assert p == pl.SamplePrompt("masterpiece, zkperson smiling", "low quality, blurry", 768, 512, 42, 6.5, 25,
                                "k_euler_a")
    assert p.ignored == ()


def test_prompt_line_defaults_and_clamps():
    p = pl.parse_prompt_line("a cat")
    assert (p.prompt, p.negative, p.width, p.height, p.seed, p.cfg_scale, p.steps, p.sampler) == \
        ("a cat", None, 512, 512, None, 7.5, 30, None)
    p = pl.parse_prompt_line("a cat --W 30 --H 1001 --S 0 --L 12")
    assert (p.width, p.height, p.steps, p.cfg_scale) == (64, 1000, 1, 12.0)  # options are case-insensitive
    assert pl.parse_prompt_line("a cat --s 5000").steps == 1000
    p = pl.parse_prompt_line("a cat --l abc --x 1 --g 3.5 --d -1 --w 640")
    assert (p.cfg_scale, p.seed, p.width) == (7.5, None, 640)
    assert p.ignored == ("--l abc", "--x 1", "--g 3.5", "--d -1")
    assert pl.parse_prompt_line("a--b --n x").prompt == "a--b"  # only " --" splits


def test_prompt_text_and_files(tmp_path):
    text = "# samples\n\nzkperson, portrait --d 1\n   # indented comment\n  zkperson, beach --w 640 --s 20  \n"
    prompts = pl.parse_prompt_text(text)
    assert [(p.prompt, p.seed, p.width, p.steps) for p in prompts] == \
        [("zkperson, portrait", 1, 512, 30), ("zkperson, beach", None, 640, 20)]
    (tmp_path / "p.txt").write_text(text, encoding="utf-8")
    assert pl.load_prompt_file(tmp_path / "p.txt") == prompts

    (tmp_path / "p.toml").write_text(
        '[prompt]\nnegative_prompt = "ugly"\nwidth = 640\nsample_steps = 12\n'
        '[[prompt.subset]]\nprompt = "zkperson a"\nseed = 3\n'
        '[[prompt.subset]]\nprompt = "zkperson b"\nwidth = 515\nsample_sampler = "ddim"\nscale = 5\n',
        encoding="utf-8")
    a, b = pl.load_prompt_file(tmp_path / "p.toml")
    assert a == pl.SamplePrompt("zkperson a", "ugly", 640, 512, 3, 7.5, 12, None)
    assert b == pl.SamplePrompt("zkperson b", "ugly", 512, 512, None, 5.0, 12, "ddim")

    (tmp_path / "p.json").write_text(json.dumps(["zkperson c --d 7", {"prompt": "zkperson d", "height": 768}]),
                                     encoding="utf-8")
    c, d = pl.load_prompt_file(tmp_path / "p.json")
    assert (c.prompt, c.seed) == ("zkperson c", 7) and (d.prompt, d.height) == ("zkperson d", 768)

    (tmp_path / "bad.json").write_text('{"prompt": "x"}', encoding="utf-8")
    with pytest.raises(pl.PromptFileError):
        pl.load_prompt_file(tmp_path / "bad.json")
    (tmp_path / "bad2.toml").write_text('[prompt]\n[[prompt.subset]]\nprompt = "x"\nwidth = "wide"\n', encoding="utf-8")
    with pytest.raises(pl.PromptFileError, match="width"):
        pl.load_prompt_file(tmp_path / "bad2.toml")


# --- CLI -------------------------------------------------------------------------------------

def _parse(*argv):
    parser = argparse.ArgumentParser(prog="lib_lora_trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    gen_cli.add_parser(sub)
    return parser.parse_args(["generate", *map(str, argv)])


def test_lora_spec_parsing():
    P = gen_cli.parse_lora_spec
    assert P("a.safetensors") == gen_cli.LoraSpec(gen_cli.Path("a.safetensors"), 1.0)
    assert P("dir/a.safetensors:0.75").weight == 0.75
    assert P("a:b.safetensors:-0.5") == gen_cli.LoraSpec(gen_cli.Path("a:b.safetensors"), -0.5)
    win = P(r"C:\loras\zk.safetensors:0.8")
    assert str(win.path) == r"C:\loras\zk.safetensors" and win.weight == 0.8
    assert P(r"C:\loras\zk.safetensors") == gen_cli.LoraSpec(gen_cli.Path(r"C:\loras\zk.safetensors"), 1.0)
    assert P("C:zk.safetensors").weight == 1.0  # drive-relative Windows path
    for bad in ("zk.safetensors:strong", ":0.5", "", "zk.safetensors:nan"):
        with pytest.raises(gen_cli.UsageError):
            P(bad)


def test_cli_usage_errors_exit_2(tmp_path, capsys):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"")
    lora = tmp_path / "zk.safetensors"
    lora.write_bytes(b"")
    common = ["--model", model, "--prompt", "zk", "--out", tmp_path / "o.png"]
    cases = [
        (["--lora", f"{lora}:strong"], "not a number"),
        (["--lora", tmp_path / "missing.safetensors"], "no such file"),
        (["--sampler", "Eulerr"], "unknown sampler"),
        (["--width", "100"], "multiple of 8"),
        (["--steps", "0"], "--steps"),
    ]
    for extra, message in cases:
        args = _parse(*common, *extra)
        assert args.func is gen_cli.run
        assert args.func(args) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, (extra, err)
    assert "Valid A1111 names" in (gen_cli.run(_parse(*common, "--sampler", "x")) == 2 and capsys.readouterr().err)
    args = _parse("--model", tmp_path / "nope", "--prompt", "zk", "--out", tmp_path / "o.png")
    assert gen_cli.run(args) == 2 and "--model" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_cli_writes_png_atomically(pipe, components, tmp_path, monkeypatch, capsys):
    from PIL import Image

    model = tmp_path / "tiny.safetensors"
    model.write_bytes(b"")
    lora = tmp_path / "zk.safetensors"
    _kohya_file(components, lora, [("lora_unet", m, r, a) for m, r, a in UNET_MODULES])
    used = {}

    def fake_load(path, sampler):
        used.update(path=path, sampler=sampler)
        gp.set_sampler(pipe, sampler)
        return pipe

    monkeypatch.setattr(gp, "load_model_pipeline", fake_load)
    out = tmp_path / "out" / "img.png"
    try:
        args = _parse("--model", model, "--lora", f"{lora}:0.5", "--prompt", "zkperson", "--negative", "ugly",
                      "--seed", 3, "--steps", 2, "--sampler", "dpm++ 2m karras", "--width", 64, "--height", 64,
                      "--cfg", 6, "--out", out)
        assert gen_cli.run(args) == 0, capsys.readouterr().err
        direct = np.asarray(gp.generate(pipe, "zkperson", "ugly", 3, 2, 64, 64, 6.0))  # same LoRA and sampler
    finally:
        gp.remove_loras(pipe)
        gp.set_sampler(pipe, "Euler a")
    assert used == {"path": model, "sampler": "DPM++ 2M Karras"}
    assert "wrote" in capsys.readouterr().out
    assert sorted(p.name for p in out.parent.iterdir()) == ["img.png"]  # no temp file left
    with Image.open(out) as im:
        assert im.size == (64, 64)
        params = im.info["parameters"]
        assert np.array_equal(np.asarray(im.convert("RGB")), direct)
    assert params.splitlines()[0] == "zkperson <lora:zk:0.5>"
    assert "Negative prompt: ugly" in params and "Sampler: DPM++ 2M Karras" in params and "Seed: 3" in params


def test_cli_end_to_end_on_a_tiny_single_file_model(tmp_path, capsys):
    """The real loader (models.loading) on an A1111-style single file; LoRA weight 0 == no LoRA, bit for bit."""
    tiny = pytest.importorskip("lib_lora_trainer.models.tiny")
    from PIL import Image

    model = tiny.make_tiny_sd1(tmp_path / "tiny.safetensors", seed=0)
    unet, _, text_encoder = tiny.build_tiny_sd1(seed=0)
    shapes = types.SimpleNamespace(unet=unet, text_encoders=[text_encoder])
    lora = tmp_path / "zk.safetensors"
    _kohya_file(shapes, lora, [("lora_unet", m, r, a) for m, r, a in UNET_MODULES]
                + [("lora_te", m, r, a) for m, r, a in TE_MODULES])

    def run(name, *extra):
        out = tmp_path / f"{name}.png"
        args = _parse("--model", model, "--prompt", "zkperson", "--seed", 4, "--steps", 2, "--width", 64,
                      "--height", 64, "--sampler", "Euler a", "--out", out, *extra)
        assert gen_cli.run(args) == 0, capsys.readouterr().err
        with Image.open(out) as im:
            return np.asarray(im.convert("RGB"))

    plain, zero, one = run("plain"), run("zero", "--lora", f"{lora}:0"), run("one", "--lora", str(lora))
    assert np.array_equal(plain, zero)
    assert not np.array_equal(plain, one)
