"""Builtin engine vs sd-scripts (issue 13): the prediction type is the TOML's v_parameterization,
never the model's own say (sd-scripts trains epsilon unless v_parameterization = true)."""

from __future__ import annotations

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.engines.builtin.args import parse_args
from lib_lora_trainer.engines.builtin.trainer import Trainer
from lib_lora_trainer.lora_file import read_lora_header
from lib_lora_trainer.models.loading import Components

REQUIRED = {"pretrained_model_name_or_path": "m.safetensors", "output_dir": "out", "network_module": "networks.lora"}


def _decide(capsys, declared, model_type="sd2", **toml):
    trainer = Trainer(parse_args({**REQUIRED, **toml}), None)
    c = Components(unet=None, vae=None, model_type=model_type, declared_v_prediction=declared)
    return trainer._prediction_type(c), capsys.readouterr().out


def test_an_sd2_file_that_does_not_say_trains_epsilon_unless_the_toml_says_v(capsys):
    v, out = _decide(capsys, None)
    assert v is False and "does not say whether it is a v-prediction model" in out
    v, out = _decide(capsys, None, v2=True, v_parameterization=True)
    assert v is True and out == ""


def test_the_toml_wins_over_what_the_model_declares_with_a_warning(capsys):
    v, out = _decide(capsys, True)
    assert v is False and "WARNING: the model declares v-prediction, but v_parameterization = false" in out
    v, out = _decide(capsys, False, model_type="sd1", v_parameterization=True)
    assert v is True and "declares epsilon-prediction" in out
    v, out = _decide(capsys, False, model_type="sd1")
    assert v is False and out == ""


def test_tiny_v_declaring_sd2_trains_epsilon_without_v_parameterization(tmp_path):
    from tiny_models import make_tiny_sd2

    img = make_dataset(tmp_path / "ds", n=2)
    model, _ = make_tiny_sd2(tmp_path / "sd2.safetensors")
    run, ds = write_configs(tmp_path, model, img, {"max_train_steps": 1, "v2": True})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    _, md = read_lora_header(tmp_path / "out" / "tiny_lora.safetensors")
    assert md["ss_base_model_version"] == "sd_v2" and md["modelspec.prediction_type"] == "epsilon"
    assert "WARNING: the model declares v-prediction" in r.stdout
