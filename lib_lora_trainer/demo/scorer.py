"""The demo world's attribute reader: a small CNN that reads every attribute off a 64 px picture.

It is trained on procedural pictures of the whole world (held-out looks included, blurred and
noised so generated pictures are read fairly), so it can tell whether a generated picture shows
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
    arrays = []
    for im in images:
        if isinstance(im, Image.Image):
            im = im.convert("RGB")
            if im.size != (SIZE, SIZE):
                im = im.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
            im = np.asarray(im)
        arrays.append(np.asarray(im, dtype=np.uint8))
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


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


@dataclass
class ScorerTrainingLog:
    seed: int
    examples: int
    steps: int
    seconds: float = 0.0
    accuracy: dict = field(default_factory=dict)  # attribute -> accuracy on fresh pictures


def train_reader(seed: int = 99, examples: int = 20000, steps: int = 2500, batch: int = 64,
                 say=print) -> tuple[AttributeReader, ScorerTrainingLog]:
    start = time.perf_counter()
    torch.manual_seed(seed)
    images, labels = make_examples(examples, seed)
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
    log = ScorerTrainingLog(seed=seed, examples=examples, steps=steps)
    test_images, test_labels = make_examples(1000, seed + 1)
    probs = read_probabilities(model, test_images)
    log.accuracy = {k: round(float((probs[k].argmax(1) == torch.from_numpy(test_labels[k])).float().mean()), 4)
                    for k in ATTRIBUTES}
    log.seconds = round(time.perf_counter() - start, 1)
    return model, log


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
