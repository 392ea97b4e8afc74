"""The shipped demo model: size, card, loader files, reproducible recipe, and that it follows
prompts on its own attributes (measured on generated pictures)."""

import json

import numpy as np
import pytest
import torch

from lib_lora_trainer.demo.base_training import BaseTrainingPlan, tokenize, train_base_model
from lib_lora_trainer.demo.demo_model import SHIPPED_CARD, SHIPPED_MODEL, install_demo_model, scaling_factor_of

shipped = pytest.mark.skipif(not SHIPPED_MODEL.is_file(), reason="demo model not built")


@shipped
def test_shipped_model_fits_the_budget_and_has_its_card():
    assert SHIPPED_MODEL.stat().st_size + SHIPPED_CARD.stat().st_size <= 25 * 1024 * 1024
    card = json.loads(SHIPPED_CARD.read_text())
    assert card["plan"]["seed"] and card["plan"]["unet_steps"] > 0 and card["seconds"]["total"] > 0
    assert card["scaling_factor"] == pytest.approx(scaling_factor_of(SHIPPED_MODEL))


@shipped
def test_install_writes_files_for_our_loader_and_for_a1111(tmp_path):
    path = install_demo_model(tmp_path / "Stable-diffusion")
    assert path.read_bytes() == SHIPPED_MODEL.read_bytes()
    assert (tmp_path / "Stable-diffusion" / "cartoon64.config" / "unet" / "config.json").is_file()
    yaml = path.with_suffix(".yaml").read_text()
    assert f"scale_factor: {scaling_factor_of(path)}" in yaml and "context_dim: 64" in yaml
    te = path.with_name("cartoon64.text_encoder")
    assert json.loads((te / "config.json").read_text())["hidden_size"] == 64
    assert (te / "vocab.json").is_file() and (te / "merges.txt").is_file()
    assert install_demo_model(tmp_path / "Stable-diffusion") == path  # idempotent


def _hair_prompt(colour: str) -> str:
    return f"a woman with long {colour} hair, light skin, a white shirt, smiling, gray background"


# Pixels of each hair colour as drawn (render.COLOURS), loosely: generated pictures are softer.
_PIXEL_TESTS = {
    "black": lambda r, g, b: (r < 70) & (g < 70) & (b < 70),
    "blue": lambda r, g, b: (b > 140) & (b > r + 50) & (b > g + 40),
}
_READ_ONLY = ("white",)  # light skin and a white shirt are near-white too: no pixel test for it


@shipped
def test_base_model_follows_hair_colour(tmp_path):
    """Measured per hair colour (closing note of issue 5): black, blue and white come out as asked
    (reader 0.83-1.0); red, brown, blonde and green are confused by this small model, so the test
    holds it to the colours it does draw, read two independent ways."""
    from lib_lora_trainer.demo.scorer import load_reader, read_probabilities
    from lib_lora_trainer.demo.world import ATTRIBUTES
    from lib_lora_trainer.generation.pipeline import generate_many, load_model_pipeline

    pipe = load_model_pipeline(install_demo_model(tmp_path))
    pipe.set_progress_bar_config(disable=True)
    reader = load_reader()
    reads, pixels = {}, {}
    for colour in (*_PIXEL_TESTS, *_READ_ONLY):
        images = generate_many(pipe, _hair_prompt(colour), list(range(6)), steps=20, cfg_scale=5.0)
        probs = read_probabilities(reader, images)["hair_colour"].mean(0)
        reads[colour] = {c: round(float(probs[ATTRIBUTES["hair_colour"].index(c)]), 3)
                         for c in (*_PIXEL_TESTS, *_READ_ONLY)}
        a = np.stack([np.asarray(im, dtype=np.int32) for im in images])[:, :32]  # the upper half: hair
        pixels[colour] = {c: int(test(a[..., 0], a[..., 1], a[..., 2]).sum()) for c, test in _PIXEL_TESTS.items()}
    for colour in _READ_ONLY:
        assert reads[colour][colour] > 0.6, reads
    for colour in _PIXEL_TESTS:
        # The attribute reader and a plain pixel count agree: the asked colour wins.
        assert reads[colour][colour] > 0.6, reads
        assert pixels[colour][colour] == max(pixels[other][colour] for other in _PIXEL_TESTS), pixels
        assert pixels[colour][colour] > 2 * min(pixels[other][colour] for other in _PIXEL_TESTS), pixels


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
