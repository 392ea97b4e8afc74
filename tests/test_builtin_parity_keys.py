"""Builtin engine vs sd-scripts (issue 13): kohya_ss configs load. Keys that change nothing here are
accepted with one note each; keys that would change the result and are not implemented stay errors."""

from __future__ import annotations

import pytest
import torch

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.engines.builtin.args import ArgsError, parse_args
from lib_lora_trainer.engines.builtin.trainer import Trainer
from lib_lora_trainer.lora_file import read_lora_header

REQUIRED = {"pretrained_model_name_or_path": "m.safetensors", "output_dir": "out", "network_module": "networks.lora"}
NO_EFFECT = ("xformers", "mem_eff_attn", "lowram", "highvram")


def test_keys_without_effect_are_accepted_with_one_note_each():
    args = parse_args({**REQUIRED, **{k: True for k in NO_EFFECT}})
    assert len(args.notes) == len(NO_EFFECT)
    for key, note in zip(NO_EFFECT, args.notes):
        assert note.startswith(f"note: {key} = true has no effect in the builtin engine")
    assert parse_args({**REQUIRED, **{k: False for k in NO_EFFECT}}).notes == ()
    with pytest.raises(ArgsError, match="wrong type"):
        parse_args({**REQUIRED, "xformers": "yes"})


@pytest.mark.parametrize("key,value", [("full_fp16", True), ("fp8_base", True), ("random_crop", True),
                                       ("vae_batch_size", 4), ("zero_terminal_snr", True), ("xformerz", True)])
def test_keys_that_would_change_the_result_stay_errors(key, value):
    with pytest.raises(ArgsError, match=key):
        parse_args({**REQUIRED, key: value})


@pytest.mark.parametrize("mixed,model_type,no_half,want,noted", [
    ("bf16", "sd1", True, torch.float32, False),     # sd-scripts: the VAE stays fp32
    ("bf16", "sd1", False, torch.bfloat16, False),
    ("no", "sd1", True, torch.float32, True),        # fp32 anyway
    ("bf16", "sdxl", True, torch.float32, False),
])
def test_no_half_vae_keeps_the_vae_in_fp32_and_notes_when_it_already_is(capsys, mixed, model_type, no_half, want,
                                                                       noted):
    from lib_lora_trainer.engines.builtin.trainer import WEIGHT_DTYPES

    t = Trainer(parse_args({**REQUIRED, "mixed_precision": mixed, "no_half_vae": no_half}), None)
    t.weight_dtype, t.model_type = WEIGHT_DTYPES[mixed], model_type
    assert t._vae_dtype() == want
    assert ("no_half_vae = true has no effect here" in capsys.readouterr().out) == noted


def test_a_kohya_ss_style_config_trains_with_long_captions(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds", n=2)
    run, ds = write_configs(tmp_path, tiny_model, img, {
        "max_train_steps": 2, "max_token_length": 150, "xformers": True, "mem_eff_attn": False, "lowram": True,
        "no_half_vae": True})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    for key in ("xformers", "lowram"):
        assert r.stdout.count(f"note: {key} = true has no effect") == 1
    assert "mem_eff_attn" not in r.stdout
    assert r.stdout.count("note: no_half_vae = true has no effect here") == 1  # fp32 run
    _, md = read_lora_header(tmp_path / "out" / "tiny_lora.safetensors")
    assert md["ss_max_token_length"] == "150" and md["ss_lowram"] == "True"
