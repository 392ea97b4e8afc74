"""Reproduce a run from a LoRA (lora_file/reproduce.py): real sd-scripts v0.10.1 metadata read back
as its run.toml, our own writer's files round-tripped, what cannot be recovered listed, the
network_weights field, the CLI (a real subprocess) and the HTTP route."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
tomllib = pytest.importorskip("tomllib")

from lib_lora_trainer.config.arithmetic import total_steps  # noqa: E402
from lib_lora_trainer.config.errors import ConfigError  # noqa: E402
from lib_lora_trainer.config.kohya_args import run_args  # noqa: E402
from lib_lora_trainer.config.presets import resolve_config  # noqa: E402
from lib_lora_trainer.config.training_config import TrainingConfig  # noqa: E402
from lib_lora_trainer.lora_file import (DatasetInfo, SubsetInfo, TrainingMetadataInput, build_metadata,  # noqa: E402
                                        finalize_metadata, save_lora)
from lib_lora_trainer.lora_file.reproduce import reproduce, reproduce_metadata  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FINAL = {"sd15_rich": "sd15_rich.VadymPanchenko_v1", "sd15_folder": "sd15_folder.VadymPanchenko_v1",
         "sd15_alpha_float": "sd15_alpha_float.VadymPanchenko_v1", "sdxl_rich": "sdxl_rich.VadymPanchenko_v1"}


def _fixture(fix: Path, stem: str) -> tuple[dict, dict]:
    md = json.loads((fix / f"{stem}.metadata.json").read_text("utf-8"))
    keys = json.loads((fix / f"{stem}.keys.json").read_text("utf-8"))
    return md, {k: (shape, dtype) for k, (shape, dtype) in keys.items()}


# ---- real sd-scripts files ---------------------------------------------------------------------------

@pytest.mark.parametrize("run", sorted(FINAL))
def test_sd_scripts_runs_read_back_as_their_toml(sd_scripts_fixtures, run):
    md, entries = _fixture(sd_scripts_fixtures, FINAL[run])
    r = reproduce_metadata(md, entries, source=f"{FINAL[run]}.safetensors", dataset_roots=[sd_scripts_fixtures])
    toml = tomllib.loads((sd_scripts_fixtures / f"{run}.run.toml").read_text("utf-8"))
    ds_path = sd_scripts_fixtures / f"{run}.dataset.toml"
    c = r.config
    assert c["learning_rate"] == toml["learning_rate"] and c["network_dim"] == toml["network_dim"]
    assert c["network_alpha"] == toml["network_alpha"] and c["max_train_steps"] == toml["max_train_steps"]
    assert c["batch_size"] == toml["train_batch_size"] and c["mixed_precision"] == toml["mixed_precision"]
    assert c["seed"] == toml["seed"] and c["optimizer"] == toml["optimizer_type"] and c["optimizer_args"] == {}
    assert c["lr_scheduler"] == toml["lr_scheduler"] and c["name"] == toml["output_name"]
    assert c["train_unet_only"] is toml.get("network_train_unet_only", False)
    assert c["save_precision"] == "float"   # sd-scripts saved fp32 (no save_precision)
    if ds_path.exists():
        ds = tomllib.loads(ds_path.read_text("utf-8"))
        d, s = ds["datasets"][0], ds["datasets"][0]["subsets"][0]
        assert (c["resolution"], c["enable_bucket"]) == (d["resolution"], d["enable_bucket"])
        assert (c["repeats"], c["trigger"]) == (s["num_repeats"], s["class_tokens"])
    else:   # folder layout: resolution and the <repeats>_<class tokens> folder name
        assert c["resolution"] == int(toml["resolution"]) and (c["repeats"], c["trigger"]) == (2, "VadymPanchenko")
    assert r.model_type == ("sdxl" if run.startswith("sdxl") else "sd1")
    assert r.made_by.startswith("sd-scripts ae72efb92b")
    assert r.dataset.found == str(sd_scripts_fixtures / "dataset" / "2_VadymPanchenko")
    assert [m.field for m in r.not_recovered] == ["base_model"]   # the 2 GB random checkpoint is not here
    assert "sd15-random" in r.not_recovered[0].reason or "sdxl-random" in r.not_recovered[0].reason


def test_an_intermediate_checkpoint_says_so(sd_scripts_fixtures):
    md, entries = _fixture(sd_scripts_fixtures, "sd15_rich.VadymPanchenko_v1-step00000002")
    r = reproduce_metadata(md, entries)
    assert r.config["max_train_steps"] == 4
    assert any("saved at step 2 of 4" in n for n in r.notes)


def test_without_the_dataset_folder_the_dataset_and_captions_are_not_recovered(sd_scripts_fixtures):
    md, entries = _fixture(sd_scripts_fixtures, FINAL["sd15_rich"])
    r = reproduce_metadata(md, entries, dataset_roots=[sd_scripts_fixtures / "nowhere"])
    missing = {m.field: m for m in r.not_recovered}
    assert "'2_VadymPanchenko'" in missing["dataset"].reason and "captions" in missing
    assert r.dataset.folders == [{"name": "2_VadymPanchenko", "repeats": 2, "images": 4,
                                  "class_tokens": "VadymPanchenko"}]


# ---- our own writer ------------------------------------------------------------------------------------

def _modules(rank: int, conv: int | None, te: bool = True) -> dict:
    names = {"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (rank, 32, None),
             "lora_unet_down_blocks_0_attentions_0_proj_in": (rank, 32, (1, 1))}
    if te:
        names["lora_te_text_model_encoder_layers_0_self_attn_q_proj"] = (rank, 32, None)
    if conv:
        names["lora_unet_down_blocks_0_resnets_0_conv1"] = (conv, 32, (3, 3))
    out = {}
    for name, (r, width, kernel) in names.items():
        out[f"{name}.lora_down.weight"] = torch.randn(r, width, *(kernel or ()))
        out[f"{name}.lora_up.weight"] = torch.randn(width, r, *((1, 1) if kernel else ()))
        out[f"{name}.alpha"] = torch.tensor(float(r))
    return out


def write_our_lora(path: Path, cfg: TrainingConfig, base_model: str, images: int = 6, steps_done=None) -> Path:
    """What the builtin engine writes for `cfg` (engines/builtin/outputs.py base_metadata)."""
    folder = f"{cfg.repeats}_{cfg.trigger}" + (f" {cfg.class_token}" if cfg.class_token else "")
    captions = [f"{cfg.trigger}, photo {i}" for i in range(images)]
    subset = SubsetInfo(f"/jobs/x/dataset/img/{folder}", captions, cfg.repeats, folder.split("_", 1)[1],
                        flip_aug=cfg.flip_aug, shuffle_caption=cfg.shuffle_caption, keep_tokens=cfg.keep_tokens)
    bucketed = cfg.enable_bucket
    ds = DatasetInfo(cfg.resolution, [subset], cfg.batch_size, bucketed, cfg.min_bucket_reso if bucketed else None,
                     cfg.max_bucket_reso if bucketed else None, cfg.bucket_no_upscale and bucketed)
    batches = math.ceil(images * cfg.repeats / cfg.batch_size)
    steps = total_steps(cfg, images)
    opt = "torch.optim.adamw.AdamW" if cfg.optimizer == "AdamW" else "bitsandbytes.optim.adamw.AdamW8bit"
    if cfg.optimizer_args:
        args = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.optimizer_args.items()}
        opt += "(" + ",".join(f"{k}={v}" for k, v in args.items()) + ")"
    net_args = {"conv_dim": str(cfg.conv_dim), "conv_alpha": str(cfg.effective_conv_alpha)} if cfg.conv_dim else None
    md = build_metadata(TrainingMetadataInput(
        session_id=1, training_started_at=1.0, output_name=cfg.name, model_type="sd1", base_model=base_model,
        datasets=[ds], network_dim=cfg.network_dim, network_alpha=cfg.effective_alpha, learning_rate=cfg.learning_rate,
        optimizer=opt, max_train_steps=steps, num_epochs=math.ceil(steps / math.ceil(batches / cfg.grad_accum)),
        num_batches_per_epoch=batches, seed=cfg.seed, network_args=net_args, network_dropout=cfg.network_dropout,
        text_encoder_lr=cfg.text_encoder_lr, unet_lr=cfg.unet_lr, lr_scheduler=cfg.lr_scheduler,
        lr_warmup_steps=cfg.lr_warmup, mixed_precision=cfg.mixed_precision, clip_skip=cfg.clip_skip,
        cache_latents=cfg.cache_latents, gradient_checkpointing=cfg.gradient_checkpointing,
        gradient_accumulation_steps=cfg.grad_accum, max_grad_norm=cfg.max_grad_norm, min_snr_gamma=cfg.min_snr_gamma,
        noise_offset=cfg.noise_offset, training_comment=f"trigger: {cfg.trigger}",
        commit_hash="lib_lora_trainer-0.1.0"))
    md = finalize_metadata(md, steps_done or steps, 1, 2.0)
    save_lora(path, _modules(cfg.network_dim, cfg.conv_dim, te=not cfg.train_unet_only), md, torch.float16)
    return path


@pytest.fixture
def base(tmp_path) -> Path:
    """A stand-in checkpoint (only its name and bytes matter here): 1.2 MB, so the short hash reads data."""
    path = tmp_path / "models" / "sd15-base.safetensors"
    path.parent.mkdir()
    path.write_bytes(os.urandom(0x100000 + 0x30000))
    return path


RECIPE = dict(name="vadym_v1", trigger="VadymPanchenko", class_token="man", repeats=20, resolution=512,
              enable_bucket=True, min_bucket_reso=320, max_bucket_reso=1024, shuffle_caption=True, keep_tokens=1,
              flip_aug=True, epochs=3, batch_size=2, grad_accum=2, learning_rate=2e-4, unet_lr=3e-4,
              text_encoder_lr=5e-5, lr_scheduler="cosine", lr_warmup=0.05, optimizer="AdamW8bit",
              optimizer_args={"weight_decay": 0.1, "betas": [0.9, 0.99]}, min_snr_gamma=5.0, noise_offset=0.05,
              seed=1234, network_dim=16, network_alpha=8.0, conv_dim=4, conv_alpha=2.0, network_dropout=0.1,
              clip_skip=2, mixed_precision="fp16", gradient_checkpointing=True, max_grad_norm=0.5)


def test_our_own_lora_round_trips_to_the_config_it_was_trained_with(tmp_path, base):
    cfg = TrainingConfig.from_dict({**RECIPE, "base_model": str(base)})
    lora = write_our_lora(tmp_path / "vadym_v1.safetensors", cfg, str(base))
    r = reproduce(lora, checkpoints=[base])
    assert [m.field for m in r.not_recovered] == ["dataset", "captions"]
    for key, value in RECIPE.items():
        assert r.config[key] == value, key
    assert r.config["save_precision"] == "fp16" and r.config["train_unet_only"] is False
    assert r.base_model == str(base) and r.made_by == "lib_lora_trainer-0.1.0"
    assert r.recovered["trigger"] == "ss_training_comment" and r.recovered["network_dim"] == "tensor shapes"
    again = TrainingConfig.from_dict(r.config)
    assert total_steps(again, 6) == total_steps(cfg, 6) and again.max_train_steps is None   # whole epochs


def test_base_model_found_by_name_and_hash_then_by_hash_after_a_rename(tmp_path, base):
    cfg = TrainingConfig.from_dict({**RECIPE, "base_model": str(base)})
    lora = write_our_lora(tmp_path / "v.safetensors", cfg, str(base))
    other = tmp_path / "other" / base.name   # same name, other bytes
    other.parent.mkdir()
    other.write_bytes(os.urandom(0x110000))
    assert reproduce(lora, checkpoints=[other, base]).recovered["base_model"].endswith("(file name and hash)")
    renamed = base.with_name("renamed.safetensors")
    base.rename(renamed)
    r = reproduce(lora, checkpoints=[other, renamed])
    assert r.base_model == str(renamed) and "renamed from sd15-base.safetensors" in r.recovered["base_model"]
    r = reproduce(lora, checkpoints=[other])
    assert r.base_model == str(other) and any("hash differs" in n for n in r.notes)
    r = reproduce(lora, checkpoints=[])
    assert r.base_model is None and r.training_config() is None
    assert any(m.field == "base_model" and "sd15-base.safetensors" in m.reason for m in r.not_recovered)


def test_what_cannot_be_recovered_is_listed_and_the_rest_still_makes_a_config(tmp_path, base):
    md = build_metadata(TrainingMetadataInput(
        session_id=1, training_started_at=1.0, output_name="odd", model_type="sd1", base_model=str(base),
        datasets=[DatasetInfo((512, 768), [SubsetInfo("/d/10_zk", ["zk, a"] * 4, 10, "zk"),
                                           SubsetInfo("/d/3_zk", ["zk, b"] * 2, 3, "zk")], 1)],
        network_dim=8, network_alpha=4, learning_rate=5.0, optimizer="dadaptation.DAdaptAdam(decouple=True)",
        max_train_steps=100, num_epochs=2, num_batches_per_epoch=46, seed=1, lr_scheduler="rex",
        network_args={"conv_dim": "4", "rank_dropout": "0.1"}, zero_terminal_snr=True, use_dataset_config=False))
    lora = tmp_path / "odd.safetensors"
    save_lora(lora, _modules(8, 4), md)
    r = reproduce(lora, checkpoints=[base])
    missing = {m.field: m for m in r.not_recovered}
    assert "resolution" in missing and "512x768" in missing["resolution"].value
    assert "'DAdaptAdam'" in missing["optimizer"].reason and "lr_scheduler" in missing
    assert missing["learning_rate"].key == "ss_learning_rate" and "out of range" in missing["learning_rate"].reason
    assert "network_args.rank_dropout" in missing and missing["ss_zero_terminal_snr"].value == "True"
    assert "10_zk x10, 3_zk x3" in missing["repeats"].reason and r.config["repeats"] == 10
    assert r.config["conv_dim"] == 4 and r.config["network_alpha"] == 4.0 and r.config["trigger"] == "zk"
    assert r.training_config() == TrainingConfig.from_dict(r.config)   # valid as it is


@pytest.mark.parametrize("text,name,args", [
    ("torch.optim.adamw.AdamW", "AdamW", {}),
    ("bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.1)", "AdamW8bit", {"weight_decay": 0.1}),
    ("torch.optim.adamw.AdamW(weight_decay=0.01,betas=(0.9, 0.99))", "AdamW",
     {"weight_decay": 0.01, "betas": [0.9, 0.99]}),
    ("transformers.optimization.Adafactor(scale_parameter=False,relative_step=False,warmup_init=False)",
     "Adafactor", {"scale_parameter": False, "relative_step": False, "warmup_init": False}),   # a fixed lr
    ("transformers.optimization.Adafactor(scale_parameter=True,relative_step=True,warmup_init=False)", "Adafactor",
     {"scale_parameter": True, "relative_step": True, "warmup_init": False}),
    ("prodigyopt.prodigy.Prodigy(d_coef=2,use_bias_correction=True,safeguard_warmup=True)", "Prodigy",
     {"d_coef": 2, "use_bias_correction": True, "safeguard_warmup": True}),
    ("lion_pytorch.lion_pytorch.Lion", "Lion", {}),
])
def test_ss_optimizer_becomes_our_optimizer_and_its_args(text, name, args):
    r = reproduce_metadata({"ss_optimizer": text, "ss_output_name": "x"})
    assert (r.config["optimizer"], r.config["optimizer_args"]) == (name, args)
    assert not [m for m in r.not_recovered if m.field.startswith("optimizer")]


def test_junk_metadata_never_breaks_reproduction(sd_scripts_fixtures):
    """Metadata is whatever a tool wrote: every key with odd text, JSON of the wrong shape, NaN..."""
    import random

    md, entries = _fixture(sd_scripts_fixtures, FINAL["sd15_rich"])
    junk = ["", "None", "nan", "inf", "-1", "1e999", "True", "[]", "{}", "[1, [2]]", '{"a": [1]}', "(512,)",
            '[{"subsets": [{"image_dir": [1], "num_repeats": "x", "class_tokens": 5}]}]', '[null, 3]',
            '{"2_x": [1]}', '{"2_x": {"n_repeats": [1], "img_count": {}}}', "x" * 5000, "\x00", "AdamW(=,=)",
            "torch.optim.adamw.AdamW(betas=(0.9,", "9" * 400, "9" * 5000, "[" * 100000,
            '[{"resolution": "x", "subsets": null, "batch_size_per_device": 1e400}]']
    rng = random.Random(7)
    for _ in range(400):
        bad = dict(md)
        for key in rng.sample(sorted(md), rng.randint(1, 30)):
            bad[key] = rng.choice(junk)
        r = reproduce_metadata(bad, entries, dataset_roots=[sd_scripts_fixtures])
        TrainingConfig.from_dict({**r.config, "base_model": "/m.safetensors"})   # always a valid config
        json.dumps(r.to_dict())


def test_adafactor_with_relative_step_as_sd_scripts_records_it():
    """get_optimizer sets learning_rate None and lr_scheduler "adafactor:<lr>" before the metadata is made."""
    r = reproduce_metadata({"ss_learning_rate": "None", "ss_lr_scheduler": "adafactor:0.0001",
                            "ss_optimizer": "transformers.optimization.Adafactor(relative_step=True)"})
    assert (r.config["lr_scheduler"], r.config["learning_rate"]) == ("adafactor", 1e-4)
    assert r.config["optimizer_args"] == {"relative_step": True} and r.not_recovered[0].field == "trigger"


# ---- network_weights ----------------------------------------------------------------------------------

def _run(cfg, model_type="sd1"):
    return run_args(cfg, model_type=model_type, output_dir="/o", logging_dir=None, tokenizer_cache_dir=None)


def test_network_weights_must_be_a_lora_of_the_same_rank_and_family(tmp_path, base):
    good = tmp_path / "r16.safetensors"
    save_lora(good, _modules(16, 4), {"ss_network_dim": "16"})
    with pytest.raises(ConfigError) as err:
        TrainingConfig.from_dict({"name": "x", "base_model": str(base), "network_weights": "/x/model.ckpt"})
    assert err.value.field == "network_weights"
    cfg = TrainingConfig.from_dict({"name": "x", "base_model": str(base), "network_weights": str(good),
                                    "network_dim": 16, "conv_dim": 4})
    assert _run(cfg)["network_weights"] == str(good)
    assert "network_weights" not in _run(cfg.replace(network_weights=None))
    for change, words in (({"network_dim": 8}, "has rank 16 but network_dim is 8: set network_dim to 16"),
                          ({"conv_dim": None}, "conv_dim is empty: set conv_dim to 4"),
                          ({"network_weights": str(tmp_path / "gone.safetensors")}, "does not exist")):
        with pytest.raises(ConfigError) as err:
            _run(cfg.replace(**change))
        assert err.value.field == "network_weights" and words in str(err.value)
    with pytest.raises(ConfigError, match="SD1/SD2 LoRA but the base model is SDXL"):
        _run(cfg.replace(train_unet_only=True), "sdxl")


def test_continue_sets_network_weights_and_the_train_command_trains_that_config(tmp_path, base):
    from lib_lora_trainer.cli import build_parser
    from lib_lora_trainer.jobs.cli import parse_sets

    cfg = TrainingConfig.from_dict({**RECIPE, "base_model": str(base)})
    lora = write_our_lora(tmp_path / "vadym_v1.safetensors", cfg, str(base))
    r = reproduce(lora, mode="continue", checkpoints=[base])
    assert r.config["network_weights"] == str(lora.resolve())
    argv = r.train_command("/data/photos")
    assert argv[:5] == ["python", "-m", "lib_lora_trainer", "train", "/data/photos"]
    args = build_parser().parse_args(argv[3:])
    overrides = parse_sets(args.set)   # what jobs/cli.py run_train does with them
    overrides.update(name=args.name, trigger=args.trigger, base_model=str(args.base), engine=args.engine,
                     class_token=args.class_token)
    trained = resolve_config(args.preset, overrides).to_dict()
    assert trained.pop("preset") == "sd15-portrait"
    assert trained == {k: v for k, v in r.config.items() if k != "preset"}


# ---- CLI and API --------------------------------------------------------------------------------------

def _cli(*args, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    env.pop("LORA_TRAINER_DATA_DIR", None)
    return subprocess.run([sys.executable, "-m", "lib_lora_trainer", "lora", "reproduce", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def test_cli_prints_json_and_writes_a_config_the_trainer_accepts(tmp_path, base):
    cfg = TrainingConfig.from_dict({**RECIPE, "base_model": str(base), "seed": None})
    lora = write_our_lora(tmp_path / "vadym_v1.safetensors", cfg, str(base))
    out = tmp_path / "cfg.json"
    r = _cli(lora, "--json", "--models", base.parent, "--write-config", out, "--continue")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["config"]["base_model"] == str(base) and data["mode"] == "continue"
    assert data["train_command"][3:5] == ["train", "<dataset folder>"] and "--set" in data["train_command"]
    written = TrainingConfig.from_dict(json.loads(out.read_text()))
    assert written.network_weights == str(lora.resolve()) and written.seed is None and written.network_dim == 16
    r = _cli(lora, "--write-config", tmp_path / "cfg.toml")
    assert r.returncode == 0 and "seed will read back as the default" in r.stderr
    assert "Not recovered:\n  dataset:" in r.stdout and "Train again:" in r.stdout
    assert tomllib.loads((tmp_path / "cfg.toml").read_text())["network_dim"] == 16
    r = _cli(tmp_path / "missing.safetensors")
    assert r.returncode == 2 and "is not a file" in r.stderr
    (tmp_path / "text.safetensors").write_text("not a LoRA")
    r = _cli(tmp_path / "text.safetensors")
    assert r.returncode == 2 and "not a safetensors file" in r.stderr


def test_api_route_reproduces_a_lora_inside_the_allowed_folders(tmp_path, base):
    from test_api import make_env

    e = make_env(tmp_path)
    cfg = TrainingConfig.from_dict({**RECIPE, "base_model": str(base)})
    lora_dir = Path(e.service.lora_dir)
    lora_dir.mkdir(parents=True, exist_ok=True)
    write_our_lora(lora_dir / "vadym_v1.safetensors", cfg, str(base))
    url = e.url("/loras/reproduce")
    r = e.client.post(url, json={"path": "vadym_v1.safetensors", "mode": "continue"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["config"]["network_dim"] == 16 and body["config"]["network_weights"].endswith("vadym_v1.safetensors")
    assert body["config"]["base_model"] is None   # not in any allowed place the server searches
    assert {m["field"] for m in body["not_recovered"]} >= {"base_model", "dataset", "captions"}
    assert body["submit"] == {"dataset": None, "config": body["config"]}
    (lora_dir / "text.safetensors").write_text("not a LoRA")
    for payload, status, field in (({"path": "/etc/passwd"}, 403, "path"), ({"path": "gone.safetensors"}, 404, "path"),
                                   ({"path": "text.safetensors"}, 400, "path"),
                                   ({"path": "vadym_v1.safetensors", "mode": "later"}, 400, "mode"),
                                   ({"path": "vadym_v1.safetensors", "x": 1}, 400, "x")):
        r = e.client.post(url, json=payload)
        assert (r.status_code, r.json()["field"]) == (status, field), (payload, r.text)
    assert e.client.post(url, content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415
    # a job may start from a LoRA only inside the allowed folders (the server reads no other file)
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes((lora_dir / "vadym_v1.safetensors").read_bytes())
    job = {"dataset": "photos", "config": {**body["config"], "base_model": str(base), "network_weights": str(outside)}}
    r = e.client.post(e.url("/jobs"), json=job)
    assert (r.status_code, r.json()["field"]) == (403, "network_weights"), r.text


def test_the_tab_confines_network_weights_on_an_exposed_server(tmp_path, base):
    from lib_lora_trainer.hosts.standalone import StandaloneHost
    from lib_lora_trainer.ui.reproduce_section import confined_weights

    inside = tmp_path / "Lora" / "a.safetensors"
    inside.parent.mkdir()
    save_lora(inside, _modules(4, None), {})
    cfg = TrainingConfig.from_dict({"name": "x", "base_model": str(base),
                                    "network_weights": str(tmp_path / "b.safetensors")})
    local = StandaloneHost(lora_dir=tmp_path / "Lora", data_dir=tmp_path / "data")
    exposed = StandaloneHost(lora_dir=tmp_path / "Lora", data_dir=tmp_path / "data", exposed_as="0.0.0.0:7860")
    assert confined_weights(local, cfg) is cfg
    with pytest.raises(ValueError, match="outside the allowed LoRA folders"):
        confined_weights(exposed, cfg)
    assert confined_weights(exposed, cfg.replace(network_weights=str(inside))).network_weights == str(inside)
