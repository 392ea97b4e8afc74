"""Accuracy of the demo attribute reader on fresh pictures at the demo model's size, drawn and
after a round trip through the demo model's VAE (the sharpest a generated picture can be).

    .venv/bin/python bench/demo_reader_accuracy.py [--n 1000] [--model PATH]
"""

import argparse
import json
import random
import tempfile
from pathlib import Path

import numpy as np
import torch

from lib_lora_trainer.demo.demo_model import install_demo_model
from lib_lora_trainer.demo.model_arch import RESOLUTION
from lib_lora_trainer.demo.render import render
from lib_lora_trainer.demo.scorer import load_reader, read_probabilities
from lib_lora_trainer.demo.world import ATTRIBUTES, random_person

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=1000)
p.add_argument("--seed", type=int, default=4242)
p.add_argument("--model", type=Path, help="an installed demo model file (default: the shipped one)")
args = p.parse_args()

rng = random.Random(args.seed)
people = [random_person(rng, include_held_out=True) for _ in range(args.n)]
drawn = [render(person, RESOLUTION, seed=args.seed + i) for i, person in enumerate(people)]


def accuracy(images) -> dict[str, float]:
    probs = read_probabilities(load_reader(), images)
    return {k: round(float(np.mean([ATTRIBUTES[k][int(probs[k][i].argmax())] == getattr(person, k)
                                    for i, person in enumerate(people)])), 4) for k in ATTRIBUTES}


@torch.no_grad()
def vae_round_trip(model_path: Path, images):
    from PIL import Image

    from lib_lora_trainer.models.loading import load_components

    vae = load_components(model_path).vae.eval()
    out = []
    for i in range(0, len(images), 32):
        x = torch.from_numpy(np.stack([np.asarray(im) for im in images[i:i + 32]])).permute(0, 3, 1, 2).float() / 127.5 - 1
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        arr = ((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        out += [Image.fromarray(a) for a in arr]
    return out


with tempfile.TemporaryDirectory() as tmp:
    model = args.model or install_demo_model(Path(tmp))
    result = {"pictures": args.n, "size": RESOLUTION, "drawn": accuracy(drawn),
              "vae_round_trip": accuracy(vae_round_trip(model, drawn))}
print(json.dumps(result, indent=1))
