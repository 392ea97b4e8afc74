"""The demo world's attribute reader: a small CNN that reads every attribute off a 64 px picture.

It is trained on procedural pictures of the whole world (held-out looks included), blurred and
noised, and on pictures sent through the demo model's VAE and back (what a generated picture looks
like at best), so generated pictures are read fairly; it can tell whether a generated picture shows
the demo character and whether it follows the rest of the prompt. Scores are probabilities the
reader gives to the wanted values, averaged: 0..1, chance is 1/len(values) per attribute.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch import nn

from .render import render
from .world import ATTRIBUTES, random_person

ASSETS = Path(__file__).resolve().parent / "assets"
SCORER_FILE = ASSETS / "scorer.safetensors"
SIZE = 64


class AttributeReader(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [3, 32, 64, 64, 128]
        layers = []
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 3, padding=1), nn.GroupNorm(8, b), nn.SiLU(), nn.Conv2d(b, b, 3, stride=2, padding=1),
                       nn.SiLU()]
        self.features = nn.Sequential(*layers)  # 64 -> 4 px, keeps where things are (hair vs clothes)
        self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(128 * 4 * 4, 256), nn.SiLU(), nn.Dropout(0.1))
        self.heads = nn.ModuleDict({name: nn.Linear(256, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.trunk(self.features(x))
        return {name: head(h) for name, head in self.heads.items()}


def to_batch(images) -> torch.Tensor:
    """PIL images (any size, resized to 64) or uint8 arrays -> N x 3 x 64 x 64 in [-1, 1]."""
    arrays = [at_reader_size(im) if isinstance(im, Image.Image) else np.asarray(im, dtype=np.uint8) for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def at_reader_size(im: Image.Image) -> np.ndarray:
    im = im.convert("RGB")
    if im.size != (SIZE, SIZE):
        im = im.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


# --- training ----------------------------------------------------------------

def _augmented(person, seed: int, rng: random.Random) -> np.ndarray:
    # Generated pictures are softer and noisier than clean drawings: teach the reader both.
    img = render(person, SIZE, seed=seed, noise=rng.uniform(0, 12))
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.2)))
    arr = np.asarray(img, dtype=np.float32) * rng.uniform(0.92, 1.08) + rng.uniform(-10, 10)
    return np.clip(arr, 0, 255).astype(np.uint8)


def make_examples(n: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    rng = random.Random(seed)
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    labels = {name: np.empty(n, dtype=np.int64) for name in ATTRIBUTES}
    for i in range(n):
        p = random_person(rng, include_held_out=True)
        images[i] = _augmented(p, seed * 7919 + i, rng)
        for name, values in ATTRIBUTES.items():
            labels[name][i] = values.index(getattr(p, name))
    return images, labels


def make_round_trip_examples(n: int, seed: int, vae) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """People drawn at the demo model's size, through its VAE and back, reduced to the reader's size
    the way generated pictures are."""
    from .model_arch import RESOLUTION
    from .round_trip import vae_round_trip

    rng = random.Random(seed)
    people = [random_person(rng, include_held_out=True) for _ in range(n)]
    images = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, n, 256):  # in slices: 128 px pictures of all n would not need to be held at once
        drawn = [render(p, RESOLUTION, seed=seed * 7919 + start + i) for i, p in enumerate(people[start:start + 256])]
        back = vae_round_trip(vae, drawn)
        images[start:start + len(back)] = np.stack([at_reader_size(im) for im in back])
    labels = {name: np.array([values.index(getattr(p, name)) for p in people], dtype=np.int64)
              for name, values in ATTRIBUTES.items()}
    return images, labels


@dataclass
class ScorerTrainingLog:
    seed: int
    examples: int
    steps: int
    round_trip_examples: int = 0
    round_trip_model: str = ""
    seconds: float = 0.0
    accuracy: dict = field(default_factory=dict)             # attribute -> accuracy on fresh drawn pictures
    accuracy_round_trip: dict = field(default_factory=dict)  # ... on fresh pictures through the VAE and back


def train_reader(seed: int = 99, examples: int = 20000, steps: int = 2500, batch: int = 64, vae=None,
                 round_trip_examples: int = 0, say=print) -> tuple[AttributeReader, ScorerTrainingLog]:
    """With a demo model's `vae`, `round_trip_examples` of the examples go through it and back."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    round_trip_examples = round_trip_examples if vae is not None else 0
    images, labels = make_examples(examples, seed)
    if round_trip_examples:
        rt_images, rt_labels = make_round_trip_examples(round_trip_examples, seed + 2, vae)
        images = np.concatenate([images, rt_images])
        labels = {k: np.concatenate([labels[k], rt_labels[k]]) for k in labels}
        say(f"scorer: {round_trip_examples} round-trip examples in {time.perf_counter() - start:.0f} s")
    x_all = to_batch(images)
    y_all = {k: torch.from_numpy(v) for k, v in labels.items()}
    model = AttributeReader()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(x_all), (batch,), generator=gen)
        out = model(x_all[idx])
        loss = sum(F.cross_entropy(out[k], y_all[k][idx]) for k in ATTRIBUTES)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 250 == 0:
            say(f"scorer step {step + 1}/{steps} loss {loss.item():.3f}")
    model.eval()
    log = ScorerTrainingLog(seed=seed, examples=examples, steps=steps, round_trip_examples=round_trip_examples)
    log.accuracy = _accuracy(model, *make_examples(1000, seed + 1))
    if vae is not None:
        log.accuracy_round_trip = _accuracy(model, *make_round_trip_examples(1000, seed + 3, vae))
    log.seconds = round(time.perf_counter() - start, 1)
    return model, log


def _accuracy(model: AttributeReader, images: np.ndarray, labels: dict[str, np.ndarray]) -> dict[str, float]:
    probs = read_probabilities(model, images)
    return {k: round(float((probs[k].argmax(1) == torch.from_numpy(labels[k])).float().mean()), 4) for k in ATTRIBUTES}


# --- reading -------------------------------------------------------------------

_cached: AttributeReader | None = None


def load_reader(path: Path = SCORER_FILE) -> AttributeReader:
    global _cached
    if _cached is not None and path == SCORER_FILE:
        return _cached
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: build it with `python -m lib_lora_trainer demo-model scorer`")
    model = AttributeReader()
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    model.eval()
    if path == SCORER_FILE:
        _cached = model
    return model


@torch.no_grad()
def read_probabilities(model: AttributeReader, images) -> dict[str, torch.Tensor]:
    """attribute -> N x len(values) probabilities."""
    x = images if isinstance(images, torch.Tensor) else to_batch(images)
    outs = [model(x[i:i + 256]) for i in range(0, len(x), 256)]
    return {k: torch.cat([o[k] for o in outs]).softmax(1) for k in ATTRIBUTES}


def read_attributes(images, model: AttributeReader | None = None) -> list[dict[str, tuple[str, float]]]:
    """Per picture: attribute -> (most likely value, its probability)."""
    probs = read_probabilities(model or load_reader(), images)
    out = []
    for i in range(len(next(iter(probs.values())))):
        out.append({k: (ATTRIBUTES[k][int(p[i].argmax())], round(float(p[i].max()), 4)) for k, p in probs.items()})
    return out


def match_score(images, wanted: dict[str, str], model: AttributeReader | None = None) -> float:
    """Mean probability the reader gives to the wanted values (0..1) over pictures and attributes."""
    if not wanted:
        raise ValueError("match_score needs at least one wanted attribute")
    for name, value in wanted.items():
        if value not in ATTRIBUTES.get(name, ()):
            raise ValueError(f"unknown attribute value {name}={value!r}")
    probs = read_probabilities(model or load_reader(), images)
    per_attr = [probs[name][:, ATTRIBUTES[name].index(value)].mean() for name, value in wanted.items()]
    return round(float(torch.stack(per_attr).mean()), 4)


def save_reader(model: AttributeReader, path: Path = SCORER_FILE, metadata: dict | None = None) -> Path:
    from safetensors.torch import save_file

    from lib_lora_trainer import atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.atomic_path(path) as tmp:
        save_file({k: v.detach().half().contiguous() for k, v in model.state_dict().items()}, tmp,
                  metadata={k: str(v) for k, v in (metadata or {}).items()})
    return path
