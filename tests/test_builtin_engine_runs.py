"""Builtin engine behaviour that needs real runs: diffusers round trip, resume, DDP, NaN, stop."""

import json
import re
import signal
import subprocess
import sys
import time
import tomllib
from types import SimpleNamespace

import numpy as np
import pytest

from engine_helpers import ROOT, env, make_dataset, run_training, train_cmd, write_configs
from lib_lora_trainer.lora_file import load_lora, read_lora_header


def _steps(stderr: str) -> list[str]:
    return [u for u in re.split(r"[\r\n]", stderr) if u.startswith("steps:")]


def test_diffusers_loads_the_file_weight0_is_base_weight1_is_trained_model(tmp_path, tiny_model):
    from lib_lora_trainer.engines.builtin.args import parse_args
    from lib_lora_trainer.engines.builtin.trainer import Trainer
    from lib_lora_trainer.generation.pipeline import apply_loras, build_pipeline, generate, load_model_pipeline

    img = make_dataset(tmp_path / "ds")
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": 3, "learning_rate": 5e-3,
                                                        "network_alpha": 2})
    t = Trainer(parse_args(tomllib.loads(run.read_text())), tomllib.loads(ds.read_text()), str(ds))
    t.run()
    lora = tmp_path / "out" / "tiny_lora.safetensors"
    for m in (t.unet, *t.text_encoders):
        m.eval()
    trained = build_pipeline(SimpleNamespace(unet=t.unet, vae=t.vae, text_encoders=t.text_encoders,
                                             tokenizers=t.tokenizers, noise_scheduler=t.noise_scheduler,
                                             model_type="sd1", v_prediction=False), "Euler")
    kw = dict(prompt="zkperson, photo 1", seed=3, steps=4, width=64, height=64, sampler="Euler")
    in_memory = np.asarray(generate(trained, **kw), dtype=np.int16)

    base_pipe = load_model_pipeline(tiny_model, "Euler")
    base = np.asarray(generate(base_pipe, **kw), dtype=np.int16)
    apply_loras(base_pipe, [(lora, 0.0)])
    at_zero = np.asarray(generate(base_pipe, **kw), dtype=np.int16)
    apply_loras(base_pipe, [(lora, 1.0)])
    at_one = np.asarray(generate(base_pipe, **kw), dtype=np.int16)
    assert np.array_equal(at_zero, base), "weight 0 must reproduce the base model exactly"
    assert np.abs(at_one - base).max() > 0, "the LoRA must change the image"
    assert np.abs(at_one - in_memory).max() <= 1, "the file must reproduce the trained model"
    _, md = read_lora_header(lora)
    assert md["ss_network_alpha"] == "2"


def test_buckets_with_mixed_aspect_ratios(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds", n=4, sizes=[(64, 128), (128, 64), (96, 96), (128, 80)])
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": 3}, ds_over={
        "resolution": 128, "enable_bucket": True, "min_bucket_reso": 64, "max_bucket_reso": 256,
        "bucket_reso_steps": 64})
    r = run_training(run, ds)
    assert r.returncode == 0, r.stderr[-3000:]
    _, md = read_lora_header(tmp_path / "out" / "tiny_lora.safetensors")
    buckets = json.loads(md["ss_datasets"])[0]["bucket_info"]["buckets"]
    sizes = {tuple(b["resolution"]) for b in buckets.values()}
    assert len(sizes) >= 2 and all(w * h <= 128 * 128 and w % 64 == 0 and h % 64 == 0 for w, h in sizes)


def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds")
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    full_dir.mkdir(), part_dir.mkdir()
    run, ds = write_configs(full_dir, tiny_model, img, {"max_train_steps": 4})
    assert run_training(run, ds).returncode == 0
    run, ds = write_configs(part_dir, tiny_model, img, {"max_train_steps": 4, "save_every_n_steps": 2,
                                                         "save_state": True})
    first = run_training(run, ds)
    assert first.returncode == 0, first.stderr[-2000:]
    state = part_dir / "out" / "tiny_lora-step00000002-state"
    assert json.loads((state / "train_state.json").read_text())["current_step"] == 2
    (part_dir / "out" / "tiny_lora.safetensors").unlink()
    run, ds = write_configs(part_dir, tiny_model, img, {"max_train_steps": 4, "resume": str(state)})
    second = run_training(run, ds)
    assert second.returncode == 0, second.stderr[-2000:]
    updates = _steps(second.stderr)
    assert updates[0].startswith("steps:  50%") and "2/4" in updates[0]
    assert "4/4" in updates[-1]
    _, md = read_lora_header(part_dir / "out" / "tiny_lora.safetensors")
    assert md["ss_steps"] == "4"
    resumed, _ = load_lora(part_dir / "out" / "tiny_lora.safetensors")
    straight, _ = load_lora(full_dir / "out" / "tiny_lora.safetensors")
    assert resumed.keys() == straight.keys()
    worst = max((resumed[k] - straight[k]).abs().max().item() for k in resumed)
    assert worst < 1e-5, f"resumed run drifted from the uninterrupted one by {worst}"


def test_two_process_data_parallel_on_cpu(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds")
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": 2})
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--num_cpu_threads_per_process", "1", "-m", "lib_lora_trainer.engines.builtin.train",
           "--config_file", str(run), "--dataset_config", str(ds)]
    r = subprocess.run(cmd, env=env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "loading model for process 0/2" in r.stdout and "loading model for process 1/2" in r.stdout
    # 8 batches shared by 2 processes: 4 per process per epoch.
    assert "num batches per epoch / 1epochのバッチ数: 4" in r.stdout
    assert (tmp_path / "out" / "tiny_lora.safetensors").is_file()


def test_nan_loss_stops_with_a_clear_error(tmp_path, tiny_model):
    img = make_dataset(tmp_path / "ds")
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": 30, "learning_rate": 1e30,
                                                        "max_grad_norm": 0.0})
    r = run_training(run, ds)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "loss is NaN" in r.stderr and "avr_loss=nan" in r.stderr
    assert not (tmp_path / "out" / "tiny_lora.safetensors").exists()


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_weights_and_state_then_exits_nonzero(tmp_path, tiny_model, sig, code):
    img = make_dataset(tmp_path / "ds")
    run, ds = write_configs(tmp_path, tiny_model, img, {"max_train_steps": 5000})
    proc = subprocess.Popen(train_cmd(run, ds), env=env(), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    buf = ""
    while time.time() < deadline:  # wait for the first optimisation steps
        chunk = proc.stderr.read(64)
        if not chunk:
            break
        buf += chunk
        if re.search(r"steps:\s+\d+%.*\| [1-9]\d*/5000", buf):
            break
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, (buf + err)[-2000:]
    m = re.search(r"stopped at step (\d+)/5000: saved (\S+)", out)
    assert m, out[-2000:]
    step = int(m.group(1))
    saved = tmp_path / "out" / f"tiny_lora-step{step:08d}.safetensors"
    assert saved.is_file() and (tmp_path / "out" / f"tiny_lora-step{step:08d}-state" / "train_state.json").is_file()
    _, md = read_lora_header(saved)
    assert md["ss_steps"] == str(step)
