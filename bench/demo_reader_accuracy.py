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

from lib_lora_trainer.demo.demo_model import install_demo_model
from lib_lora_trainer.demo.model_arch import RESOLUTION
from lib_lora_trainer.demo.render import render
from lib_lora_trainer.demo.round_trip import load_vae, vae_round_trip
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


with tempfile.TemporaryDirectory() as tmp:
    model = args.model or install_demo_model(Path(tmp))
    result = {"pictures": args.n, "size": RESOLUTION, "drawn": accuracy(drawn),
              "vae_round_trip": accuracy(vae_round_trip(load_vae(model), drawn))}
print(json.dumps(result, indent=1))
