"""The shipped demo model: size, card, loader files, reproducible recipe, and that it follows
prompts on its own attributes (measured on generated pictures)."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from lib_lora_trainer.demo.base_training import BaseTrainingPlan, tokenize, train_base_model
from lib_lora_trainer.demo.demo_model import SHIPPED_CARD, SHIPPED_MODEL, install_demo_model, scaling_factor_of

shipped = pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="demo model not built")


@shipped
def test_shipped_model_fits_the_budget_and_has_its_card():
    assert SHIPPED_MODEL.stat().st_size + SHIPPED_CARD.stat().st_size <= 40 * 1000 * 1000  # issue 14's budget
    card = json.loads(SHIPPED_CARD.read_text())
    assert card["plan"]["seed"] and card["plan"]["unet_steps"] > 0 and card["seconds"]["total"] > 0
    assert card["scaling_factor"] == pytest.approx(scaling_factor_of(SHIPPED_MODEL))


@shipped
def test_install_writes_files_for_our_loader_and_for_a1111(tmp_path):
    path = install_demo_model(tmp_path / "Stable-diffusion")
    assert path.read_bytes() == SHIPPED_MODEL.read_bytes()
    assert (tmp_path / "Stable-diffusion" / "cartoon128.config" / "unet" / "config.json").is_file()
    yaml = path.with_suffix(".yaml").read_text()
    assert f"scale_factor: {scaling_factor_of(path)}" in yaml and "context_dim: 64" in yaml
    te = path.with_name("cartoon128.text_encoder")
    assert json.loads((te / "config.json").read_text())["hidden_size"] == 64
    assert (te / "vocab.json").is_file() and (te / "merges.txt").is_file()
    assert install_demo_model(tmp_path / "Stable-diffusion") == path  # idempotent


def _prompt(hair: str = "black", background: str = "blue") -> str:
    # No colour word twice: this small text encoder binds colours loosely ("white hair, a white shirt,
    # blue background" comes out on white).
    return f"a woman with long {hair} hair, tan skin, a red shirt, neutral expression, {background} background"


def _generate(tmp_path, prompts: dict[str, str], seeds=range(6)):
    from lib_lora_trainer.generation.pipeline import generate_many, load_model_pipeline

    pipe = load_model_pipeline(install_demo_model(tmp_path))
    pipe.set_progress_bar_config(disable=True)
    return {key: generate_many(pipe, prompt, list(seeds), steps=20, cfg_scale=5.0) for key, prompt in prompts.items()}


def _reads(images, attribute: str, values) -> dict[str, float]:
    from lib_lora_trainer.demo.scorer import load_reader, read_probabilities
    from lib_lora_trainer.demo.world import ATTRIBUTES

    probs = read_probabilities(load_reader(), images)[attribute].mean(0)
    return {v: round(float(probs[ATTRIBUTES[attribute].index(v)]), 3) for v in values}


# Background colours as drawn (render.COLOURS), loosely: generated pictures are softer.
_BACKGROUND_PIXELS = {
    "blue": lambda r, g, b: (b > 140) & (b > r + 50) & (b > g + 40),
    "yellow": lambda r, g, b: (r > 170) & (g > 150) & (b < 110),
    "pink": lambda r, g, b: (r > 190) & (g < 170) & (b > 130) & (r > g + 50),
}


@shipped
def test_base_model_follows_background_colour(tmp_path):
    """Measured (bench/demo_model_quality.py, 96 people): background 0.96, every colour 0.85-1.0;
    read two independent ways: the attribute reader and a pixel count in the corners."""
    shots = _generate(tmp_path, {c: _prompt(background=c) for c in _BACKGROUND_PIXELS})
    for colour, images in shots.items():
        reads = _reads(images, "background", _BACKGROUND_PIXELS)
        assert reads[colour] > 0.8, (colour, reads)
        a = np.stack([np.asarray(im, dtype=np.int32) for im in images])
        corners = np.concatenate([a[:, :16, :16], a[:, :16, -16:]], axis=1)
        share = {c: float(test(corners[..., 0], corners[..., 1], corners[..., 2]).mean())
                 for c, test in _BACKGROUND_PIXELS.items()}
        assert share[colour] > 0.7 and all(share[o] < 0.2 for o in share if o != colour), (colour, share)


@shipped
def test_base_model_tells_black_hair_from_white_hair(tmp_path):
    """cartoon128 confuses most hair colours (card: black 0.64, white 0.49, the rest 0.2-0.33), so
    the test holds it to black hair, asked or not, read two ways (measured here: the reader gives
    black 0.83 when asked, 0.0 when white is asked)."""
    shots = _generate(tmp_path, {c: _prompt(hair=c) for c in ("black", "white")})
    reads = {c: _reads(images, "hair_colour", ("black", "white")) for c, images in shots.items()}
    assert reads["black"]["black"] > 0.6 and reads["white"]["black"] < 0.2, reads
    dark = {}
    for colour, images in shots.items():
        a = np.stack([np.asarray(im, dtype=np.int32) for im in images])
        top = a[:, : a.shape[1] // 2]  # the upper half: hair
        dark[colour] = int(((top[..., 0] < 70) & (top[..., 1] < 70) & (top[..., 2] < 70)).sum())
    assert dark["black"] > 2 * dark["white"], dark


def test_the_recipe_is_reproducible():
    plan = BaseTrainingPlan(images=48, vae_steps=2, vae_batch=4, unet_steps=2, unet_batch=4, warmup=1, log_every=1)
    runs = [train_base_model(plan, say=lambda m: None) for _ in range(2)]
    for a, b in zip(runs[0][:3], runs[1][:3]):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert runs[0][3].scaling_factor == runs[1][3].scaling_factor


def test_tokenize_matches_the_sd1_convention():
    ids = tokenize(["a photo of VadymPanchenko, man", ""])
    assert ids.shape == (2, 77)
    assert ids[0, :12].tolist() == [49406, 320, 1125, 539, 11880, 88, 1037, 514, 29073, 267, 786, 49407]
    assert ids[1, 0] == 49406 and (ids[1, 1:] == 49407).all()


def _build(out, ckpt, steps):
    return [sys.executable, "-m", "lib_lora_trainer", "demo-model", "build", "--out", str(out), "--images", "48",
            "--vae-steps", "4", "--vae-batch", "2", "--unet-steps", str(steps), "--unet-batch", "2", "--warmup", "2",
            "--log-every", "1", "--checkpoint-every", "1", "--checkpoint-dir", str(ckpt)]


def test_a_killed_build_resumes_to_the_same_weights(tmp_path):
    """The base-model build is long: killed (SIGKILL, a real process), it goes on from its last
    checkpoint and ends with the weights of an uninterrupted build."""
    from safetensors.torch import load_file

    steps = 60
    whole = subprocess.run(_build(tmp_path / "whole", tmp_path / "ck-whole", steps), capture_output=True, text=True,
                           timeout=600)
    assert whole.returncode == 0, whole.stderr[-2000:]
    ck = tmp_path / "ck"
    proc = subprocess.Popen(_build(tmp_path / "cut", ck, steps), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (ck / "unet.pt").is_file() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    again = subprocess.run(_build(tmp_path / "cut", ck, steps), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    resumed = re.search(r"unet: resuming at step (\d+)", again.stdout)
    assert resumed and 0 < int(resumed.group(1)) < steps, again.stdout[-2000:]
    a, b = (load_file(str(d / "cartoon128.safetensors")) for d in (tmp_path / "whole", tmp_path / "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_second_stage_continues_from_a_built_file_and_keeps_its_vae(tmp_path):
    """`--continue-from` a bare built file (as shipped, no config files beside it): the VAE is kept
    bit for bit, the UNet trains further, and the card carries the first stage's card."""
    from safetensors.torch import load_file

    first = subprocess.run(_build(tmp_path / "one", tmp_path / "ck1", 2), capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    src = tmp_path / "one" / "cartoon128.safetensors"
    second = subprocess.run(_build(tmp_path / "two", tmp_path / "ck2", 2) + ["--continue-from", str(src)],
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = load_file(str(src)), load_file(str(tmp_path / "two" / "cartoon128.safetensors"))
    assert a.keys() == b.keys()
    vae = [k for k in a if k.startswith("first_stage_model.")]
    unet = [k for k in a if k.startswith("model.diffusion_model.")]
    assert vae and unet and all(torch.equal(a[k], b[k]) for k in vae)
    assert any(not torch.equal(a[k], b[k]) for k in unet)
    card = json.loads((tmp_path / "two" / "cartoon128.card.json").read_text())
    assert card["plan"]["continue_from"] == str(src) and card["previous_stage"]["plan"]["unet_steps"] == 2
