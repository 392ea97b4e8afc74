"""Validation loss in the builtin engine (sd-scripts v0.10's keys and meaning): the split of the
pictures, the fixed noise and timesteps, the bars the progress parser reads, TensorBoard, metadata."""

from __future__ import annotations

import random
import re

import pytest
import tomli_w

from engine_helpers import make_dataset, run_training, write_configs
from lib_lora_trainer.engines.builtin.data import TrainingData
from lib_lora_trainer.engines.builtin.dataset_config import DatasetConfigError
from lib_lora_trainer.jobs.progress import ProgressParser
from lib_lora_trainer.lora_file import read_lora_header


def _config(*datasets):
    return {"general": {"caption_extension": ".txt", "resolution": 64},
            "datasets": [{"subsets": [{"image_dir": str(d), **sub}], **ds} for d, ds, sub in datasets]}


def test_split_is_sd_scripts_split_train_val(tmp_path):
    img = make_dataset(tmp_path / "a", n=8, repeats=1) / "1_zkperson"
    data = TrainingData.from_config(_config((img, {"validation_split": 0.25, "validation_seed": 3}, {})), {})
    # sd-scripts' own code: random.seed(validation_seed); random.shuffle(list(zip(paths, sizes)))
    paths = sorted(p for p in img.iterdir() if p.suffix == ".png")
    state = random.getstate()
    random.seed(3)
    random.shuffle(paths)
    random.setstate(state)
    assert [i.path for i in data.val_items] == paths[6:]
    assert sorted(i.path for i in data.items) == sorted(paths[:6]) and data.num_train_images == 6
    other = TrainingData.from_config(_config((img, {"validation_split": 0.25, "validation_seed": 4}, {})), {})
    assert [i.path for i in other.val_items] != paths[6:]
    assert [b.paths for b in map(data.load_validation_batch, data.validation_plans())] == [[p] for p in paths[6:]]


def test_a_validation_only_dataset_trains_nothing_and_regularisation_is_never_held_out(tmp_path):
    train = make_dataset(tmp_path / "a", n=4, repeats=2) / "2_zkperson"
    held = make_dataset(tmp_path / "b", n=3, repeats=2) / "2_zkperson"
    reg = make_dataset(tmp_path / "r", n=2, repeats=1, trigger="person") / "1_person"
    conf = _config((train, {}, {}), (held, {"validation_split": 1.0}, {}))
    conf["datasets"][0]["subsets"].append({"image_dir": str(reg), "is_reg": True})
    data = TrainingData.from_config(conf, {})
    assert data.num_train_images == 4 and data.num_validation_images == 3   # num_repeats 1: not set here
    assert {i.path.parent for i in data.val_items} == {held}
    assert data.plan_epoch(0) and all(p.dataset_index == 0 for p in data.plan_epoch(0))
    conf["datasets"][0]["validation_split"] = 0.5    # the reg subset stays whole
    data = TrainingData.from_config(conf, {})
    assert reg not in {i.path.parent for i in data.val_items} and data.num_validation_images == 5
    with pytest.raises(DatasetConfigError, match="every dataset's pictures are validation pictures"):
        TrainingData.from_config(_config((held, {"validation_split": 1.0}, {})), {})


def test_engine_validates_after_steps_and_epochs_with_fixed_noise(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds", n=4, repeats=1)
    held = make_dataset(tmp_path / "holdout", n=2, repeats=1)
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": 4, "validate_every_n_steps": 2,
                                                        "logging_dir": str(tmp_path / "logs"), "log_with": "tensorboard"})
    conf = __import__("tomllib").loads(ds.read_text())
    conf["datasets"].append({"resolution": 64, "batch_size": 1, "validation_split": 1.0, "validation_seed": 5,
                             "subsets": [{"image_dir": str(held / "1_zkperson"), "num_repeats": 1}]})
    ds.write_text(tomli_w.dumps(conf))
    r = run_training(run, ds)
    log = r.stdout + r.stderr
    assert r.returncode == 0, r.stderr[-3000:]
    assert "num validation images * repeats / 学習画像の数×繰り返し回数: 2" in log
    # tqdm shows 3 digits (as in sd-scripts); the full values are in TensorBoard, below
    assert re.search(r"(?m)^validation steps: 100%\|[^|]*\| 8/8 \[[^\]]*val_avg_loss=[\d.]+, timestep=800\]", log)
    assert re.search(r"(?m)^epoch validation steps: 100%\|[^|]*\| 8/8 \[[^\]]*val_epoch_avg_loss=[\d.]+, timestep=800\]", log)

    parser = ProgressParser()
    parser.feed(r.stdout, "stdout")
    parser.feed(r.stderr, "stderr")
    parser.finish()
    assert [s for s, _ in parser.state.val_loss_history] == [2, 4]

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(next((tmp_path / "logs").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    steps = events.Scalars("loss/validation/step_average")
    epochs = events.Scalars("loss/validation/epoch_average")
    assert [e.step for e in steps] == [2, 4] and [e.step for e in epochs] == [4]
    # The epoch's validation follows step 4's on the same weights: same pictures, noise, timesteps.
    assert epochs[0].value == steps[1].value and steps[0].value != steps[1].value
    assert parser.state.val_loss_history[1][1] == pytest.approx(steps[1].value, abs=0.01)
    assert "loss/validation/step_divergence" in events.Tags()["scalars"]

    _, md = read_lora_header(tmp_path / "out" / "tiny_lora.safetensors")
    assert md["ss_num_validation_images"] == "2" and md["ss_validate_every_n_steps"] == "2"


def test_parser_reads_sd_scripts_validation_bars():
    """Lines as real sd-scripts v0.10.1 printed them here (a kohya job with holdout_images, random
    SD1.5 at 128 px): nested bars end with ESC[A, the 8/8 line shows first with the previous
    timestep, the epoch bar says val_epoch_avg_loss."""
    text = ("\rsteps:  50%|█████     | 2/4 [00:41<00:41, 20.60s/it, avr_loss=1.12]"
            "\n\nvalidation steps:  88%|████████▊ | 7/8 [00:10<00:01,  1.45s/it, val_avg_loss=1.13, timestep=400]\x1b[A"
            "\n\nvalidation steps: 100%|██████████| 8/8 [00:11<00:00,  1.48s/it, val_avg_loss=1.12, timestep=600]\x1b[A"
            "\n\nvalidation steps: 100%|██████████| 8/8 [00:11<00:00,  1.48s/it, val_avg_loss=1.11, timestep=800]\x1b[A"
            "\nvalidation steps: 100%|██████████| 8/8 [00:18<00:00,  2.35s/it, val_avg_loss=1.11, timestep=800]\n"
            "\rsteps: 100%|██████████| 4/4 [01:35<00:00, 23.80s/it, avr_loss=1.14]"
            "\n\nvalidation steps: 100%|██████████| 8/8 [00:09<00:00,  1.22s/it, val_avg_loss=1.15, timestep=800]\n"
            "\n\nepoch validation steps: 100%|██████████| 8/8 [00:10<00:00,  1.35s/it, val_epoch_avg_loss=1.09, "
            "timestep=800]\n")
    parser = ProgressParser()
    events = parser.feed(text, "stderr")
    assert parser.state.val_loss_history == [(2, 1.11), (4, 1.09)]
    assert all(e.step in (2, 4) for e in events if e.kind == "step")   # validation bars are no steps
