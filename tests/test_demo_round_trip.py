"""The reader's round-trip examples: people drawn at the demo model's size, through its real VAE
and back, at the reader's size, labelled with the people's attributes."""

import numpy as np
from PIL import Image

from lib_lora_trainer.demo.demo_model import install_demo_model
from lib_lora_trainer.demo.model_arch import RESOLUTION
from lib_lora_trainer.demo.render import render
from lib_lora_trainer.demo.round_trip import load_vae, vae_round_trip
from lib_lora_trainer.demo.scorer import SIZE, make_examples, make_round_trip_examples
from lib_lora_trainer.demo.world import ATTRIBUTES, Person


def test_round_trip_keeps_size_and_changes_pixels_a_little(tmp_path):
    vae = load_vae(install_demo_model(tmp_path))
    drawn = [render(Person(background=b), RESOLUTION, seed=3) for b in ("blue", "yellow")]
    back = vae_round_trip(vae, drawn)
    assert [im.size for im in back] == [(RESOLUTION, RESOLUTION)] * 2
    diff = [np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).mean() for a, b in zip(drawn, back)]
    assert all(0 < d < 40 for d in diff), diff  # a lossy copy, not noise and not the input itself
    corner = np.asarray(back[0])[:8, :8].reshape(-1, 3).mean(0)
    assert corner[2] > corner[0] + 60  # the blue background survives


def test_round_trip_examples_are_labelled_like_drawn_ones(tmp_path):
    vae = load_vae(install_demo_model(tmp_path))
    images, labels = make_round_trip_examples(5, seed=11, vae=vae)
    assert images.shape == (5, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert set(labels) == set(ATTRIBUTES) and all(len(v) == 5 for v in labels.values())
    again, _ = make_round_trip_examples(5, seed=11, vae=vae)
    assert np.array_equal(images, again)  # seeded
    drawn, _ = make_examples(5, seed=11)
    assert not np.array_equal(images, drawn)
    assert isinstance(Image.fromarray(images[0]), Image.Image)
