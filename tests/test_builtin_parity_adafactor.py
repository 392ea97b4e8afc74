"""Builtin engine vs sd-scripts' get_optimizer (issue 13): Adafactor without optimizer_args runs
with relative_step (its own step size, "adafactor:<lr>" schedule); the config writer adds nothing."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.config.kohya_args import ADAFACTOR_FIXED_LR, run_args
from lib_lora_trainer.config.presets import get_preset, resolve_config
from lib_lora_trainer.engines.builtin.args import ArgsError, parse_args
from lib_lora_trainer.engines.builtin.optim import make_optimizer, make_scheduler
from lib_lora_trainer.lora_file import read_lora_header

REQUIRED = {"pretrained_model_name_or_path": "m.safetensors", "output_dir": "out", "network_module": "networks.lora",
            "optimizer_type": "Adafactor", "learning_rate": 1e-3}
FIXED = [f"{k}={v}" for k, v in ADAFACTOR_FIXED_LR.items()]
BASE = {"name": "n", "base_model": "/models/sd15.safetensors"}


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(8, 4, generator=g)), torch.nn.Parameter(torch.randn(3, 8, generator=g))]


def _train(opt, sched, params, steps=3):
    x = torch.linspace(-1, 1, 4)
    for _ in range(steps):
        loss = (params[1] @ torch.tanh(params[0] @ x)).pow(2).sum()
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=False)
    return [p.detach().clone() for p in params], sched.get_last_lr()


def test_adafactor_without_args_is_relative_step_with_the_adafactor_schedule():
    from transformers.optimization import Adafactor, AdafactorSchedule

    args = parse_args(dict(REQUIRED, lr_scheduler="cosine"))  # replaced, as sd-scripts does
    params = _params()
    groups = [{"params": [params[0]], "lr": 1e-3}, {"params": [params[1]], "lr": 5e-4}]
    opt, kwargs = make_optimizer(args, groups, 1e-3, on_cuda=False)
    assert kwargs == {"relative_step": True}
    sched = make_scheduler(args, opt, total_steps=10, warmup=0)
    assert isinstance(sched, AdafactorSchedule)
    got, got_lr = _train(opt, sched, params)
    # sd-scripts' result: transformers' defaults, no lr, AdafactorSchedule(initial_lr=learning_rate)
    ref = _params()
    ref_opt = Adafactor([{"params": [ref[0]]}, {"params": [ref[1]]}], lr=None, relative_step=True)
    want, want_lr = _train(ref_opt, AdafactorSchedule(ref_opt, 1e-3), ref)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert got_lr == want_lr and got_lr != [1e-3, 5e-4]


def test_adafactor_with_relative_step_off_keeps_the_fixed_learning_rates():
    args = parse_args(dict(REQUIRED, optimizer_args=FIXED, lr_scheduler="constant"))
    params = _params()
    opt, kwargs = make_optimizer(args, [{"params": params, "lr": 2e-4}], 1e-3, on_cuda=False)
    assert kwargs == ADAFACTOR_FIXED_LR
    sched = make_scheduler(args, opt, total_steps=10, warmup=0)
    assert _train(opt, sched, params)[1] == [2e-4]


def test_adafactor_combinations_sd_scripts_refuses_are_refused_up_front():
    with pytest.raises(ArgsError, match="takes no warmup"):
        parse_args(dict(REQUIRED, lr_scheduler="constant_with_warmup", lr_warmup_steps=10))
    with pytest.raises(ArgsError, match="takes no warmup"):  # warmup_init turns relative_step back on
        parse_args(dict(REQUIRED, optimizer_args=["relative_step=False", "warmup_init=True"],
                        lr_scheduler="constant_with_warmup", lr_warmup_steps=10))
    with pytest.raises(ArgsError, match="lr_scheduler 'adafactor'"):
        parse_args(dict(REQUIRED, optimizer_args=FIXED, lr_scheduler="adafactor"))
    with pytest.raises(ArgsError, match="True or False"):
        parse_args(dict(REQUIRED, optimizer_args=["relative_step=false"]))
    parse_args(dict(REQUIRED, optimizer_args=FIXED, lr_scheduler="constant_with_warmup", lr_warmup_steps=10))
    parse_args(dict(REQUIRED, lr_scheduler="adafactor"))


def _run(c):
    return run_args(c, model_type="sd1", output_dir="out", logging_dir=None, tokenizer_cache_dir=None)


def test_the_config_writer_writes_only_the_optimizer_args_the_config_has():
    plain = resolve_config(None, {**BASE, "optimizer": "Adafactor"})
    assert "optimizer_args" not in _run(plain)
    preset = resolve_config("sdxl-8gb", {**BASE, "base_model": "/models/sdxl.safetensors"})
    written = run_args(preset, model_type="sdxl", output_dir="out", logging_dir=None, tokenizer_cache_dir=None)
    assert written["optimizer_args"] == ["scale_parameter=False", "relative_step=False", "warmup_init=False"]
    with pytest.raises(ConfigError) as err:
        _run(resolve_config(None, {**BASE, "optimizer": "Adafactor", "lr_scheduler": "cosine", "lr_warmup": 10}))
    assert err.value.field == "lr_warmup"
    with pytest.raises(ConfigError) as err:
        _run(resolve_config(None, {**BASE, "optimizer": "Adafactor", "lr_scheduler": "adafactor",
                                   "optimizer_args": dict(ADAFACTOR_FIXED_LR)}))
    assert err.value.field == "lr_scheduler"


def test_preset_descriptions_say_which_adafactor_runs():
    preset = get_preset("sdxl-8gb")
    assert "(fixed lr: relative_step off)" in preset.description
    values = {k: v for k, v in preset.values.items() if k != "optimizer_args"}
    relative = dataclasses.replace(preset, values={**values, "lr_warmup": 0})
    assert "relative step: Adafactor sets its own step size" in relative.description
    assert "fixed lr" not in relative.description


def test_a_run_with_plain_adafactor_writes_sd_scripts_metadata(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds", n=2)
    run, ds = write_configs(tmp_path, tiny_model, img, {"optimizer_type": "Adafactor", "max_train_steps": 2,
                                                        "unet_lr": 1e-3})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "use adafactor_scheduler" in r.stdout and "unet_lr and text_encoder_lr are ignored" in r.stdout
    _, md = read_lora_header(tmp_path / "out" / "tiny_lora.safetensors")
    assert md["ss_optimizer"] == "transformers.optimization.Adafactor(relative_step=True)"
    assert md["ss_lr_scheduler"] == "adafactor:0.001"
    assert md["ss_learning_rate"] == "None" and md["ss_unet_lr"] == "None"
