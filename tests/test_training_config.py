"""config/: TrainingConfig validation, presets, device corrections, VRAM estimate, TOML files, steps."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest
from PIL import Image

from lib_lora_trainer.config.arithmetic import describe_plan, format_duration, total_steps
from lib_lora_trainer.config.device import device_corrections
from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.config.presets import (KEEP_ON_PRESET_CHANGE, PRESETS, apply_preset, get_preset, list_presets,
                                             resolve_config)
from lib_lora_trainer.config.toml_writer import write_training_tomls
from lib_lora_trainer.config.training_config import (BUILTIN_SCHEDULERS, OPTIMIZERS, SAMPLERS, TrainingConfig)
from lib_lora_trainer.config.vram import (_estimate, _Setup, estimate_peak_vram_gib, suggest_lighter_preset,
                                          vram_warning)
from lib_lora_trainer.config.vram_table import ANCHORS

BASE = {"name": "vadym_v1", "base_model": "/models/sd15.safetensors"}


def cfg(**kw) -> TrainingConfig:
    return TrainingConfig.from_dict({**BASE, **kw})


def model_type_of(preset_id: str) -> str:
    return get_preset(preset_id).model_types[0]


# ---- TrainingConfig ---------------------------------------------------------------------------

def test_defaults_are_valid_and_round_trip_through_json():
    c = cfg()
    assert c.learning_rate == 1e-4 and c.save_state is True and c.engine == "builtin"
    again = TrainingConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    full = cfg(sample_prompts=["a photo of vadym --w 512 --h 512"], optimizer_args={"betas": [0.9, 0.99]},
               lr_warmup=0.1, lr_scheduler="cosine", gpu_ids="0", conv_dim=4)
    assert TrainingConfig.from_dict(json.loads(json.dumps(full.to_dict()))) == full


@pytest.mark.parametrize("field,value", [
    ("resolution", 32), ("resolution", 2112), ("resolution", 500),
    ("batch_size", 0), ("batch_size", 65),
    ("learning_rate", 0), ("learning_rate", 1.5), ("learning_rate", -1e-4),
    ("unet_lr", 2.0), ("text_encoder_lr", -0.1),
    ("network_dim", 0), ("network_dim", 1025), ("network_alpha", 0), ("conv_dim", 0),
    ("caption_dropout_rate", -0.1), ("caption_dropout_rate", 1.1),
    ("repeats", 0), ("epochs", 0), ("max_train_steps", 0), ("grad_accum", 0),
    ("keep_tokens", -1), ("seed", -1), ("clip_skip", 0), ("min_snr_gamma", 0),
    ("noise_offset", 2.0), ("max_grad_norm", -1.0), ("network_dropout", 1.5),
    ("lr_warmup", 1.5), ("lr_warmup", -1), ("lr_scheduler_num_cycles", 0),
    ("save_every_n_epochs", 0), ("num_processes", 0), ("bucket_reso_steps", 48),
    ("crop", "square"), ("engine", "diffusers"), ("optimizer", "SGD"), ("mixed_precision", "fp32"),
    ("lr_scheduler", "exponential"), ("sample_sampler", "Euler a"), ("save_precision", "fp8"),
    ("gpu_ids", "0,a"), ("gpu_ids", "0,0"),
])
def test_bounds_and_choices_are_refused_with_the_field_named(field, value):
    with pytest.raises(ConfigError) as err:
        cfg(**{field: value})
    assert err.value.field == field
    assert field in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("field,value", [
    ("batch_size", True), ("batch_size", "4"), ("learning_rate", "1e-4"), ("learning_rate", False),
    ("network_dim", 3.5), ("cache_latents", 1), ("cache_latents", "true"), ("optimizer_args", ["x=1"]),
    ("sample_prompts", 3), ("lr_warmup", "10"), ("lr_warmup", True), ("name", 5),
])
def test_wrong_types_are_refused_not_guessed(field, value):
    with pytest.raises(ConfigError) as err:
        cfg(**{field: value})
    assert err.value.field == field and field in str(err.value)


def test_json_numbers_are_coerced_sensibly():
    c = cfg(batch_size=2.0, learning_rate=1, lr_warmup=100.0, network_alpha=16, epochs=3)
    assert c.batch_size == 2 and type(c.batch_size) is int
    assert c.learning_rate == 1.0 and type(c.learning_rate) is float
    assert c.lr_warmup == 100 and type(c.lr_warmup) is int
    assert type(c.network_alpha) is float
    assert cfg(lr_warmup=0.05).lr_warmup == 0.05
    assert type(cfg(lr_warmup=0.0).lr_warmup) is int
    assert cfg(optimizer="adamw8bit").optimizer == "AdamW8bit"  # case-insensitive, canonical spelling


def test_unknown_fields_are_refused_with_a_suggestion():
    with pytest.raises(ConfigError) as err:
        cfg(lerning_rate=1e-4)
    assert err.value.field == "lerning_rate"
    assert "'learning_rate'" in str(err.value)
    with pytest.raises(ConfigError, match="unknown field 'zzz'"):
        cfg(zzz=1)


def test_required_fields():
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict({"base_model": "/m.safetensors"})
    assert err.value.field == "name"
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict({"name": "x"})
    assert err.value.field == "base_model"


@pytest.mark.parametrize("name", ["a/b", "..", "a..b", "nul\x00", "a\\b", "", "   ", ".hidden", "x" * 101,
                                  "a:b", "what?", "end."])
def test_bad_output_names(name):
    with pytest.raises(ConfigError) as err:
        cfg(name=name)
    assert err.value.field == "name"


@pytest.mark.parametrize("name", ["vadym_v1", "my lora", "VadymPanchenko-v2.1", "x" * 100])
def test_good_output_names(name):
    assert cfg(name=name).name == name


def test_trigger_and_class_token_are_folder_safe():
    assert cfg(trigger="VadymPanchenko", class_token="man").trigger == "VadymPanchenko"
    with pytest.raises(ConfigError) as err:
        cfg(trigger="a/b")
    assert err.value.field == "trigger"


def test_cross_field_checks():
    with pytest.raises(ConfigError) as err:
        cfg(resolution=1024, max_bucket_reso=768)
    assert err.value.field == "max_bucket_reso"
    with pytest.raises(ConfigError) as err:
        cfg(resolution=256, min_bucket_reso=320)
    assert err.value.field == "min_bucket_reso"
    assert cfg(resolution=64, enable_bucket=False).resolution == 64  # buckets off: no bucket bounds
    with pytest.raises(ConfigError, match="builtin"):
        cfg(lr_scheduler="inverse_sqrt")
    assert cfg(lr_scheduler="inverse_sqrt", engine="kohya").lr_scheduler == "inverse_sqrt"
    with pytest.raises(ConfigError, match="nothing would be trained"):
        cfg(unet_lr=0, train_unet_only=True)
    with pytest.raises(ConfigError) as err:
        cfg(conv_alpha=4)
    assert err.value.field == "conv_alpha"
    with pytest.raises(ConfigError) as err:
        cfg(num_processes=2, gpu_ids="0")
    assert err.value.field == "num_processes"
    with pytest.raises(ConfigError) as err:
        cfg(preset="sd15-portait")
    assert "'sd15-portrait'" in str(err.value)


def test_sample_prompts_from_a_textbox_or_a_list():
    c = cfg(sample_prompts="photo of vadym --w 512\n\n# comment\n  portrait of vadym  \n")
    assert c.sample_prompts == ("photo of vadym --w 512", "portrait of vadym")
    assert c.to_dict()["sample_prompts"] == ["photo of vadym --w 512", "portrait of vadym"]
    with pytest.raises(ConfigError):
        cfg(sample_prompts=["two\nlines"])


def test_fields_info_lists_every_field_with_type_default_and_help():
    info = TrainingConfig.fields_info()
    names = [i.name for i in info]
    assert len(names) == len(set(names)) == len(TrainingConfig.__dataclass_fields__)
    by = {i.name: i for i in info}
    name, type_, default, help_ = by["batch_size"][:4]
    assert (name, type_, default) == ("batch_size", "int", 1) and help_
    assert by["optimizer"].choices == OPTIMIZERS
    assert by["name"].required and by["max_train_steps"].type == "int | None"
    assert all(i.help for i in info)
    defaults = {i.name: i.default for i in info if not i.required}
    assert TrainingConfig.from_dict({**BASE, **defaults}) == cfg()


def test_choice_lists_match_the_engines():
    from lib_lora_trainer.engines.builtin import args as builtin_args
    from lib_lora_trainer.generation.samplers import SD_SCRIPTS_SAMPLERS

    assert set(BUILTIN_SCHEDULERS) == set(builtin_args.SCHEDULERS)
    assert {o.lower() for o in OPTIMIZERS} == set(builtin_args.OPTIMIZERS)
    assert set(SAMPLERS) == set(SD_SCRIPTS_SAMPLERS)


# ---- presets ----------------------------------------------------------------------------------

def test_preset_overlay_order_defaults_then_preset_then_overrides():
    plain = resolve_config(None, BASE)
    assert plain.network_dim == 32 and plain.repeats == 10 and plain.preset is None
    preset = resolve_config("sd15-portrait", BASE)
    assert preset.network_dim == 128 and preset.repeats == 100 and preset.preset == "sd15-portrait"
    assert preset.seed == plain.seed  # not in the preset: the default
    over = resolve_config("sd15-portrait", {**BASE, "network_dim": 64})
    assert over.network_dim == 64 and over.repeats == 100


def test_every_preset_is_a_valid_partial_overlay():
    known = set(TrainingConfig.__dataclass_fields__)
    ids = [p.id for p in list_presets()]
    assert ids == list(PRESETS) and {"sd15-portrait", "sd15-style", "sdxl-12gb", "sdxl-8gb", "sd15-6gb",
                                     "cpu-tiny"} <= set(ids)
    for p in list_presets():
        assert set(p.values) <= known, p.id
        assert not {"name", "base_model", "preset"} & set(p.values)
        assert p.name and p.description and p.model_types
        c = resolve_config(p.id, BASE)
        # presets need no correction on a bf16 GPU (the tiny one: on CPU)
        fixed, notes = device_corrections(c, cuda_available=p.for_gpu, bf16_supported=True)
        assert notes == [] and fixed is c, (p.id, notes)
    assert [p.id for p in list_presets("sdxl")] == ["sdxl-12gb", "sdxl-8gb"]


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError) as err:
        get_preset("sdxl-4gb")
    assert err.value.field == "preset"
    for pid in PRESETS:
        assert pid in str(err.value)
    with pytest.raises(ConfigError):
        resolve_config("nope", BASE)
    with pytest.raises(ConfigError, match="lerning_rate.*learning_rate"):
        resolve_config("sd15-portrait", {**BASE, "lerning_rate": 1})


def test_apply_preset_keeps_identity_and_takes_the_recipe():
    mine = resolve_config("sd15-portrait", {**BASE, "trigger": "Vadym", "seed": 7, "network_dim": 256})
    light = apply_preset(mine, "sd15-6gb")
    for key in KEEP_ON_PRESET_CHANGE:
        assert getattr(light, key) == getattr(mine, key)
    assert light.network_dim == 16 and light.preset == "sd15-6gb" and light.optimizer == "AdamW8bit"


def test_thesis_preset_is_1600_steps():
    thesis = resolve_config("sd15-portrait", BASE)
    assert (thesis.network_dim, thesis.effective_alpha, thesis.learning_rate, thesis.lr_scheduler) == \
        (128, 128.0, 1e-4, "constant")
    assert (thesis.mixed_precision, thesis.cache_latents, thesis.batch_size, thesis.epochs, thesis.repeats,
            thesis.resolution) == ("bf16", True, 1, 1, 100, 512)
    assert total_steps(thesis, 16) == 1600
    text = describe_plan(thesis, 16, rate_it_s=3.88)
    assert "16 images x 100 repeats x 1 epoch / batch 1 = 1600 steps" in text
    assert "about 7 min at the last measured speed" in text


# ---- step arithmetic --------------------------------------------------------------------------

def test_total_steps_like_sd_scripts():
    assert total_steps(cfg(repeats=100, batch_size=4, epochs=2), 16) == 800
    assert total_steps(cfg(repeats=1, grad_accum=3), 10) == 4
    assert total_steps(cfg(repeats=1, num_processes=2, grad_accum=2), 10) == 3
    assert total_steps(cfg(repeats=100, max_train_steps=500), 16) == 500
    # buckets are batched separately: 3 + 5 images at batch 2 -> 2 + 3 batches
    assert total_steps(cfg(repeats=1, batch_size=2), 8, bucket_sizes=[3, 5]) == 5


def test_describe_plan_mentions_override_and_warmup():
    text = describe_plan(cfg(repeats=100, max_train_steps=400, lr_scheduler="cosine", lr_warmup=0.1), 16)
    assert "1600 steps" in text and "stops it at 400 steps" in text and "warmup 10% = 40 steps" in text
    assert "warmup 50 steps" in describe_plan(cfg(lr_scheduler="cosine", lr_warmup=50), 4)
    assert describe_plan(cfg(), 0).startswith("No images")
    assert format_duration(30) == "under a minute" and format_duration(125 * 60) == "about 2 h 05 min"


# ---- device corrections -----------------------------------------------------------------------

def test_no_cuda_corrections():
    c = cfg(mixed_precision="bf16", optimizer="AdamW8bit", torch_compile=True)
    fixed, notes = device_corrections(c, cuda_available=False, bf16_supported=False)
    assert (fixed.mixed_precision, fixed.optimizer, fixed.torch_compile) == ("no", "AdamW", False)
    assert {n.field for n in notes} == {"mixed_precision", "optimizer", "torch_compile"}
    assert all(n.reason for n in notes)
    assert c.mixed_precision == "bf16"  # pure: the input is unchanged
    assert device_corrections(cfg(mixed_precision="fp16"), False, False)[0].mixed_precision == "no"


def test_gpu_without_bf16_gets_fp16():
    fixed, notes = device_corrections(cfg(mixed_precision="bf16"), cuda_available=True, bf16_supported=False)
    assert fixed.mixed_precision == "fp16" and notes[0].old == "bf16" and notes[0].new == "fp16"
    same, none = device_corrections(cfg(mixed_precision="bf16"), True, True)
    assert none == [] and same.mixed_precision == "bf16"


def test_constant_scheduler_loses_its_warmup():
    fixed, notes = device_corrections(cfg(lr_scheduler="constant", lr_warmup=100), True, True)
    assert fixed.lr_warmup == 0 and "constant does not require num_warmup_steps" in notes[0].reason
    kept, none = device_corrections(cfg(lr_scheduler="constant_with_warmup", lr_warmup=100), True, True)
    assert kept.lr_warmup == 100 and none == []


def test_cached_text_encoder_outputs_conflicts():
    fixed, notes = device_corrections(cfg(cache_text_encoder_outputs=True), True, True)
    assert fixed.cache_text_encoder_outputs is False and "text encoder is trained" in notes[0].reason
    fixed, notes = device_corrections(cfg(cache_text_encoder_outputs=True, train_unet_only=True,
                                          shuffle_caption=True), True, True)
    assert fixed.cache_text_encoder_outputs is False and "shuffle_caption" in notes[0].reason
    ok, none = device_corrections(cfg(cache_text_encoder_outputs=True, train_unet_only=True), True, True)
    assert ok.cache_text_encoder_outputs and none == []


# ---- VRAM -------------------------------------------------------------------------------------

def _measured_setup(**kw) -> TrainingConfig:
    return cfg(engine="kohya", resolution=512, mixed_precision="bf16", optimizer="AdamW", cache_latents=True,
               **kw)


@pytest.mark.parametrize("anchor", [a for a in ANCHORS if a.profile == "sd-scripts"], ids=lambda a: a.text)
def test_estimate_matches_the_sd_scripts_anchors(anchor):
    est = estimate_peak_vram_gib(_measured_setup(network_dim=anchor.rank, batch_size=anchor.batch), "sd1")
    assert abs(est.gib - anchor.gib) <= 0.15 * anchor.gib
    assert est.low <= anchor.gib <= est.high
    assert est.basis.startswith("measured: ") and "scaled: " in est.basis and anchor.text in est.basis


@pytest.mark.parametrize("anchor", [a for a in ANCHORS if a.profile == "diffusers-peft"], ids=lambda a: a.text)
def test_estimate_matches_the_diffusers_peft_anchors(anchor):
    gib, _ = _estimate(_Setup(rank=anchor.rank, batch=anchor.batch, te_trained=False), "diffusers-peft")
    assert abs(gib - anchor.gib) <= 0.15 * anchor.gib


@pytest.mark.parametrize("field,values", [("batch_size", [1, 2, 4, 8]), ("network_dim", [4, 16, 64, 256]),
                                          ("resolution", [256, 512, 768, 1024])])
@pytest.mark.parametrize("model_type", ["sd1", "sd2", "sdxl"])
def test_estimate_grows_with_batch_rank_and_resolution(field, values, model_type):
    gibs = [estimate_peak_vram_gib(cfg(**{field: v}), model_type).gib for v in values]
    assert gibs == sorted(gibs) and len(set(gibs)) == len(gibs)


def test_memory_levers_move_the_estimate_the_right_way():
    base = cfg(resolution=1024, max_bucket_reso=2048)
    g = estimate_peak_vram_gib(base, "sdxl").gib
    assert estimate_peak_vram_gib(base.replace(gradient_checkpointing=True), "sdxl").gib < g
    assert estimate_peak_vram_gib(base.replace(optimizer="AdamW8bit"), "sdxl").gib < g
    assert estimate_peak_vram_gib(base.replace(mixed_precision="no"), "sdxl").gib > g
    assert estimate_peak_vram_gib(base.replace(cache_latents=False), "sdxl").gib > g
    unet_only = base.replace(train_unet_only=True)
    assert estimate_peak_vram_gib(unet_only, "sdxl").gib < g
    assert estimate_peak_vram_gib(unet_only.replace(cache_text_encoder_outputs=True), "sdxl").gib < \
        estimate_peak_vram_gib(unet_only, "sdxl").gib
    assert estimate_peak_vram_gib(base, "sdxl").gib > estimate_peak_vram_gib(base, "sd1").gib
    est = estimate_peak_vram_gib(base, "sdxl")
    assert "not measured" in est.basis and est.high - est.low > 0.5 * est.gib  # wider when documented only


def test_sdxl_presets_match_the_documented_budgets():
    eight = estimate_peak_vram_gib(resolve_config("sdxl-8gb", BASE), "sdxl")
    twelve = estimate_peak_vram_gib(resolve_config("sdxl-12gb", BASE), "sdxl")
    assert eight.gib <= 8.0 < twelve.gib <= 11.0
    assert estimate_peak_vram_gib(resolve_config("sd15-6gb", BASE), "sd1").gib <= 5.0


def test_lighter_preset_and_warning():
    thesis = resolve_config("sd15-portrait", BASE)
    assert suggest_lighter_preset(thesis, "sd1", free_gib=4.0) == "sd15-6gb"
    assert vram_warning(thesis, "sd1", free_gib=24.0) is None
    warning = vram_warning(thesis, "sd1", free_gib=4.0)
    assert "sd15-6gb" in warning and "measured:" in warning
    sdxl = cfg(resolution=1024, batch_size=2)
    assert suggest_lighter_preset(sdxl, "sdxl", free_gib=12.0) == "sdxl-12gb"
    assert suggest_lighter_preset(sdxl, "sdxl", free_gib=8.0) == "sdxl-8gb"
    assert suggest_lighter_preset(sdxl, "sdxl", free_gib=4.0) == "sdxl-8gb"  # none fits: the lightest
    assert suggest_lighter_preset(resolve_config("sdxl-8gb", BASE), "sdxl", free_gib=6.0) is None
    assert "Lower the batch size" in vram_warning(resolve_config("sdxl-8gb", BASE), "sdxl", free_gib=6.0)


# ---- TOML files -------------------------------------------------------------------------------

def _dataset(root: Path, repeats: int = 100, n: int = 2, name: str = "VadymPanchenko") -> Path:
    folder = root / "img" / f"{repeats}_{name}"
    folder.mkdir(parents=True)
    for i in range(n):
        Image.new("RGB", (64, 64), (i * 40, 90, 160)).save(folder / f"{i:02d}.png")
        (folder / f"{i:02d}.txt").write_text(f"{name}, photo {i}", encoding="utf-8")
    return root / "img"


def _write(tmp_path: Path, c: TrainingConfig, model_type: str = "sd1", **kw):
    img = kw.pop("img", None) or _dataset(tmp_path, c.repeats)
    return write_training_tomls(c, job_dir=tmp_path / "job", image_dir_parent=img, model_type=model_type,
                                output_dir=tmp_path / "out", logging_dir=tmp_path / "logs",
                                tokenizer_cache_dir=tmp_path / "tok", **kw)


@pytest.mark.parametrize("preset_id", list(PRESETS))
def test_each_preset_writes_files_the_builtin_engine_accepts(tmp_path, preset_id):
    from lib_lora_trainer.engines.builtin.args import parse_args
    from lib_lora_trainer.engines.builtin.dataset_config import load_dataset_blueprint

    c = resolve_config(preset_id, {**BASE, "trigger": "VadymPanchenko",
                                   "sample_prompts": ["VadymPanchenko, portrait --w 512 --h 512 --d 1"],
                                   "sample_every_n_epochs": 1})
    run_path, ds_path = _write(tmp_path, c, model_type_of(preset_id))
    run, ds = tomllib.loads(run_path.read_text()), tomllib.loads(ds_path.read_text())
    args = parse_args(run)  # refuses unknown keys, wrong types, constant+warmup, missing prompt file
    assert args.network_dim == c.network_dim and args.network_alpha == c.effective_alpha
    specs = load_dataset_blueprint(ds, run)
    assert specs[0].subsets[0].num_repeats == c.repeats
    assert specs[0].subsets[0].caption_extension == ".txt"
    assert specs[0].resolution == (c.resolution, c.resolution)
    assert Path(run["sample_prompts"]).read_text().splitlines() == list(c.sample_prompts)


def test_run_toml_contents(tmp_path):
    c = cfg(trigger="VadymPanchenko", network_dim=16, network_alpha=8, conv_dim=4, optimizer="AdamW",
            optimizer_args={"weight_decay": 0.01, "betas": [0.9, 0.99]}, text_encoder_lr=5e-5, unet_lr=1e-4,
            lr_scheduler="cosine_with_restarts", lr_scheduler_num_cycles=2, lr_warmup=50, clip_skip=2,
            min_snr_gamma=5, seed=7, max_data_loader_n_workers=1, save_every_n_steps=100)
    run_path, ds_path = _write(tmp_path, c)
    text = run_path.read_text()
    run = tomllib.loads(text)
    assert "None" not in text and "null" not in text
    expect = {
        "pretrained_model_name_or_path": "/models/sd15.safetensors", "output_name": "vadym_v1",
        "output_dir": str((tmp_path / "out").resolve()), "save_model_as": "safetensors",
        "network_module": "networks.lora", "network_dim": 16, "network_alpha": 8.0,
        "network_args": ["conv_dim=4", "conv_alpha=4"], "learning_rate": 1e-4, "unet_lr": 1e-4,
        "text_encoder_lr": [5e-5], "lr_scheduler": "cosine_with_restarts", "lr_warmup_steps": 50,
        "lr_scheduler_num_cycles": 2, "optimizer_type": "AdamW",
        "optimizer_args": ["weight_decay=0.01", "betas=(0.9,0.99)"], "max_train_epochs": 1,
        "train_batch_size": 1, "gradient_accumulation_steps": 1, "mixed_precision": "bf16",
        "save_precision": "fp16", "cache_latents": True, "sdpa": True, "seed": 7, "clip_skip": 2,
        "min_snr_gamma": 5.0, "max_grad_norm": 1.0, "save_every_n_steps": 100, "save_state": True,
        "network_train_unet_only": False, "v2": False, "training_comment": "trigger: VadymPanchenko",
        "logging_dir": str((tmp_path / "logs").resolve()), "log_prefix": "vadym_v1_",
        "tokenizer_cache_dir": str((tmp_path / "tok").resolve()), "max_data_loader_n_workers": 1,
    }
    for key, value in expect.items():
        assert run[key] == value and type(run[key]) is type(value), key
    assert type(run["lr_warmup_steps"]) is int  # an int is steps; only a ratio is a float
    assert "max_train_steps" not in run and "noise_offset" not in run and "sample_prompts" not in run
    assert not list((tmp_path / "job").glob(".*.tmp")), "atomic writes leave no temp files"
    ds = tomllib.loads(ds_path.read_text())
    assert ds["general"] == {"caption_extension": ".txt", "shuffle_caption": False, "keep_tokens": 0,
                             "caption_dropout_rate": 0.0, "flip_aug": False}
    d = ds["datasets"][0]
    assert {k: d[k] for k in ("resolution", "batch_size", "enable_bucket", "min_bucket_reso", "max_bucket_reso",
                              "bucket_reso_steps", "bucket_no_upscale")} == \
        {"resolution": 512, "batch_size": 1, "enable_bucket": True, "min_bucket_reso": 256,
         "max_bucket_reso": 2048, "bucket_reso_steps": 64, "bucket_no_upscale": False}
    assert d["subsets"] == [{"image_dir": str((tmp_path / "img" / "10_VadymPanchenko").resolve()),
                             "num_repeats": 10, "class_tokens": "VadymPanchenko"}]


def test_ratio_warmup_steps_override_sd2_and_unet_only(tmp_path):
    # Adafactor takes a warmup only with a fixed lr (relative_step off), which the config says itself
    c = cfg(lr_scheduler="cosine", lr_warmup=0.1, max_train_steps=300, train_unet_only=True, text_encoder_lr=1e-5,
            optimizer="Adafactor", optimizer_args={"scale_parameter": False, "relative_step": False,
                                                   "warmup_init": False})
    run = tomllib.loads(_write(tmp_path, c, "sd2", v_parameterization=True)[0].read_text())
    assert run["lr_warmup_steps"] == 0.1 and type(run["lr_warmup_steps"]) is float
    assert run["max_train_steps"] == 300 and "max_train_epochs" not in run
    assert run["v2"] is True and run["v_parameterization"] is True
    assert run["network_train_unet_only"] is True and "text_encoder_lr" not in run
    assert run["optimizer_args"] == ["scale_parameter=False", "relative_step=False", "warmup_init=False"]


def test_dataset_folders_found_like_sd_scripts(tmp_path):
    img = _dataset(tmp_path, 10)
    (img / "not_a_subset").mkdir()
    (img / "5_empty").mkdir()
    (img / "loose.png").write_bytes(b"")
    _, ds_path = _write(tmp_path, cfg(repeats=10), img=img)
    subsets = tomllib.loads(ds_path.read_text())["datasets"][0]["subsets"]
    assert [Path(s["image_dir"]).name for s in subsets] == ["10_VadymPanchenko"]
    assert subsets[0] == {"image_dir": str((img / "10_VadymPanchenko").resolve()), "num_repeats": 10,
                          "class_tokens": "VadymPanchenko"}


def test_refusals_write_nothing(tmp_path):
    with pytest.raises(ConfigError) as err:
        _write(tmp_path, cfg(repeats=100), img=_dataset(tmp_path / "a", 10))
    assert err.value.field == "repeats" and "10_VadymPanchenko" in str(err.value)
    empty = tmp_path / "b" / "img"
    (empty / "VadymPanchenko").mkdir(parents=True)
    with pytest.raises(ConfigError, match="No data found"):
        _write(tmp_path, cfg(), img=empty)
    img = _dataset(tmp_path / "c", 10)
    with pytest.raises(ConfigError) as err:
        _write(tmp_path, cfg(lr_warmup=100, sample_prompts=["x"]), img=img)
    assert err.value.field == "lr_warmup"
    with pytest.raises(ConfigError) as err:
        _write(tmp_path, cfg(bucket_reso_steps=96, min_bucket_reso=192, max_bucket_reso=1920), img=img)
    assert err.value.field == "bucket_reso_steps"
    assert _write(tmp_path, cfg(bucket_reso_steps=96, min_bucket_reso=192, max_bucket_reso=1920,
                                resolution=1024), "sdxl", img=img)
    with pytest.raises(ConfigError):
        _write(tmp_path / "d", cfg(), "sd3", img=img)
    assert not (tmp_path / "job" / "sample_prompts.txt").exists()


@pytest.mark.slow
def test_builtin_engine_trains_from_the_written_files(tmp_path, tiny_model):
    from engine_helpers import make_dataset, run_training

    img = make_dataset(tmp_path / "ds", n=4, repeats=2)
    c = resolve_config("cpu-tiny", {"name": "tiny_cfg", "base_model": str(tiny_model), "trigger": "zkperson",
                                    "epochs": 1})
    run_path, ds_path = write_training_tomls(c, job_dir=tmp_path / "job", image_dir_parent=img, model_type="sd1",
                                             output_dir=tmp_path / "out", logging_dir=None,
                                             tokenizer_cache_dir=tmp_path / "tok")
    proc = run_training(run_path, ds_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / "out" / "tiny_cfg.safetensors").is_file()
    assert "2/2" in proc.stderr  # 4 images x 2 repeats / batch 4 x 1 epoch = 2 steps


def test_sd_scripts_toml_reader_sees_the_same_values(tmp_path):
    """sd-scripts reads both files with the `toml` package (0.10.2), not tomllib."""
    toml = pytest.importorskip("toml")
    img = tmp_path / "img"
    for name in ("100_o'q \"w\\ z", "100_ünï", "100_a_b"):
        (img / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(img / name / "a.png")
    c = resolve_config("sdxl-8gb", {**BASE, "repeats": 100, "optimizer_args": {"d": "x'y\"z", "b": [0.9, 0.99]},
                                    "sample_prompts": ["p --w 1024"]})
    for path in _write(tmp_path, c, "sdxl", img=img):
        text = path.read_text(encoding="utf-8")
        assert toml.loads(text) == tomllib.loads(text)


# ---- preset descriptions are generated from the values (issue 12, item 5) -------------------

def test_every_preset_description_states_its_own_numbers():
    from lib_lora_trainer.config.presets import format_lr

    for p in list_presets():
        c = resolve_config(p.id, BASE)
        d = p.description
        for phrase in (f"{c.repeats} repeat", f"{c.epochs} epoch", f"batch {c.batch_size}",
                       f"= {total_steps(c, 16)} steps for 16 pictures", f"rank {c.network_dim}",
                       f"alpha {c.effective_alpha:g}", f"{format_lr(c.learning_rate)} {c.lr_scheduler.split('_')[0]}",
                       f"{c.resolution} px", "fp32" if c.mixed_precision == "no" else c.mixed_precision):
            assert phrase in d, (p.id, phrase, d)
        assert ("no automatic test" in d) == (not c.test_after_training), (p.id, d)
        assert ("gradient checkpointing" in d) == c.gradient_checkpointing, (p.id, d)
        assert ("U-Net only" in d) == c.train_unet_only, (p.id, d)
        if c.noise_offset:
            assert f"noise offset {c.noise_offset:g}" in d, (p.id, d)
        # the hand-written part says what for and why, never a number the values also hold
        assert not re.search(r"\d+ (steps|repeats?|epochs?|px)\b|\de-\d|rank \d|batch \d|lr \d", p.note), p.id


def test_a_preset_description_follows_its_values():
    import dataclasses

    demo = get_preset("cpu-demo")
    changed = dataclasses.replace(demo, values={**demo.values, "repeats": 10, "learning_rate": 2e-3,
                                                "test_after_training": False})
    assert "10 repeats x 2 epochs at batch 4 = 80 steps for 16 pictures" in changed.description
    assert "AdamW 2e-3" in changed.description and "no automatic test" in changed.description
    assert "15 repeats" in demo.description and "AdamW 5e-3" in demo.description
    assert demo.as_dict()["description"] == demo.description


def test_cpu_demo_tests_after_training_and_the_demo_tests_once(tmp_path, monkeypatch):
    """The demo preset makes a grid and a card preview wherever it is used (tab, API, `train`);
    `make demo` runs its own evaluation, so its job service must not start a second one."""
    from lib_lora_trainer.demo import cli as demo_cli
    from lib_lora_trainer.jobs import service as service_mod

    assert resolve_config("cpu-demo", BASE).test_after_training is True
    assert resolve_config("cpu-tiny", BASE).test_after_training is False   # random model: nothing to test
    made = []

    class FakeService:
        def __init__(self, *args, hooks=None, **kwargs):
            self.hooks_arg, self.added = hooks, []
            self.hooks = type("H", (), {"add": lambda _, h: self.added.append(h)})()
            made.append(self)

        def submit(self, photos, cfg, crop):
            self.cfg = cfg
            (tmp_path / "job").mkdir()
            (tmp_path / "job" / "plan.json").write_text(json.dumps({"num_images": 16, "total_steps": 200}))
            return type("J", (), {"job_dir": str(tmp_path / "job"), "id": "j"})()

        def wait(self, job_id, **kw):
            return "done"

    monkeypatch.setattr(service_mod, "JobService", FakeService)
    assert demo_cli.train_demo_lora(tmp_path, tmp_path / "photos", tmp_path / "model.safetensors") == "done"
    (svc,) = made
    assert svc.cfg.preset == "cpu-demo" and svc.hooks_arg is None and svc.added == []
