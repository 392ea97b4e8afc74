"""The builtin engine as a real subprocess on the tiny model: outputs, logs, metadata."""

import json
import re

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.lora_file import load_lora, read_lora_header


def test_train_writes_kohya_files_logs_and_metadata(tmp_path, tiny_model, sd_scripts_fixtures):
    img = make_dataset(tmp_path / "ds")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("zkperson, photo --w 64 --h 64 --s 2 --d 7\n", encoding="utf-8")
    run, ds = write_configs(tmp_path, tiny_model, img, {
        "save_every_n_steps": 2, "logging_dir": str(tmp_path / "logs"), "sample_prompts": str(prompts),
        "sample_every_n_steps": 4})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "out"
    assert (out / "tiny_lora.safetensors").is_file() and (out / "tiny_lora-step00000002.safetensors").is_file()
    # sd-scripts' stdout lines, in order.
    lines = r.stdout
    for expected in ("running training / 学習開始", "total optimization steps / 学習ステップ数: 4", "epoch 1/1",
                     f"saving checkpoint: {(out / 'tiny_lora-step00000002.safetensors').resolve()}", "model saved."):
        assert expected in lines
    # tqdm's bar on stderr, split by \r, ends at 4/4 with an average loss.
    updates = [u for u in re.split(r"[\r\n]", r.stderr) if u.startswith("steps:")]
    assert re.search(r"\| 4/4 \[.*avr_loss=\d", updates[-1])
    keys, md = read_lora_header(out / "tiny_lora.safetensors")
    assert keys and all(re.match(r"^lora_(unet|te)_\w+\.(lora_down\.weight|lora_up\.weight|alpha)$", k) for k in keys)
    assert {v[1] for k, v in keys.items() if k.endswith(".alpha")} == {"I64"}
    assert all(v[0][0] == 4 for k, v in keys.items() if k.endswith("lora_down.weight"))
    fixture_md = json.loads((sd_scripts_fixtures / "sd15_rich.VadymPanchenko_v1.metadata.json").read_text())
    assert set(md) == set(fixture_md), set(md) ^ set(fixture_md)
    assert md["ss_steps"] == "4" and md["ss_network_dim"] == "4" and md["ss_base_model_version"] == "sd_v1"
    assert json.loads(md["ss_dataset_dirs"]) == {"2_zkperson": {"n_repeats": 2, "img_count": 4}}
    # Intermediate and final differ (training went on), and the LoRA is not all zeros any more.
    final, _ = load_lora(out / "tiny_lora.safetensors")
    mid, _ = load_lora(out / "tiny_lora-step00000002.safetensors")
    ups = [k for k in final if k.endswith("lora_up.weight")]
    assert any(final[k].abs().sum() > 0 for k in ups)
    assert any(not (final[k] == mid[k]).all() for k in ups)
    assert list((tmp_path / "logs").rglob("events.out.tfevents.*")), "TensorBoard event file"
    samples = list((out / "sample").glob("tiny_lora_000004_00_*.png"))
    assert len(samples) == 1


def test_sdxl_and_sd2_v_models_train_with_their_own_names_and_metadata(tmp_path):
    from tiny_models import make_tiny_sd2, make_tiny_sdxl

    img = make_dataset(tmp_path / "ds")
    for kind, maker, prefixes, version in (
            ("sdxl", make_tiny_sdxl, {"lora_unet_", "lora_te1_", "lora_te2_"}, "sdxl_base_v1-0"),
            ("sd2", make_tiny_sd2, {"lora_unet_", "lora_te_"}, "sd_v2_v")):
        folder = tmp_path / kind
        folder.mkdir()
        model, _ = maker(folder / f"{kind}.safetensors")
        # the tiny SD2 is a v model: the TOML says so, as the job service writes it (sd-scripts reads only that)
        extra = {"v2": True, "v_parameterization": True} if kind == "sd2" else {}
        run, ds = write_configs(folder, model, img, {"max_train_steps": 2, **extra})
        r = run_training(run, ds)
        assert r.returncode == 0, r.stderr[-3000:]
        keys, md = read_lora_header(folder / "out" / "tiny_lora.safetensors")
        assert {re.match(r"lora_(unet|te\d?)_", k).group(0) for k in keys} == prefixes
        assert md["ss_base_model_version"] == version
        if kind == "sdxl":
            # sd-scripts names SDXL U-Net modules by their LDM paths.
            assert any(k.startswith("lora_unet_input_blocks_") for k in keys)
            assert not any(k.startswith("lora_unet_down_blocks_") for k in keys)
        else:
            assert md["ss_v2"] == "True" and md["modelspec.prediction_type"] == "v"
