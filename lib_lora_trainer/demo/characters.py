"""Procedural cartoon people: a reproducible stand-in for a user's photos of one person."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLOURS = {
    "red": (200, 40, 40), "green": (40, 150, 60), "blue": (40, 70, 200), "yellow": (230, 200, 40),
    "purple": (130, 50, 160), "orange": (235, 130, 30), "black": (25, 25, 25), "white": (240, 240, 240),
    "brown": (110, 70, 35), "blonde": (235, 205, 120), "gray": (130, 130, 130), "pink": (240, 150, 180),
}
SKIN = {"light": (245, 215, 190), "tan": (215, 165, 120), "dark": (120, 80, 55)}


@dataclass(frozen=True)
class Character:
    skin: str = "light"
    hair_colour: str = "brown"
    hair_length: str = "short"    # short | long
    eye_colour: str = "blue"
    jacket_colour: str = "green"

    def describe(self) -> str:
        return (f"a person with {self.hair_length} {self.hair_colour} hair and a "
                f"{self.jacket_colour} jacket, {self.skin} skin, {self.eye_colour} eyes")


@dataclass(frozen=True)
class Shot:
    background: str = "white"
    expression: str = "smiling"   # smiling | neutral | open mouth
    dx: float = 0.0               # head offset, fraction of the image width
    scale: float = 1.0


def draw(character: Character, shot: Shot, size: int = 512, seed: int = 0) -> Image.Image:
    rng = random.Random(seed)
    img = Image.new("RGB", (size, size), COLOURS[shot.background])
    d = ImageDraw.Draw(img)
    s = size / 512 * shot.scale
    cx, cy = size / 2 + shot.dx * size, size * 0.45
    # Background texture, so a sharp picture has edges everywhere (as real photos do).
    for _ in range(12):
        x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(8, 30) * s
        shade = tuple(max(0, c - 25) for c in COLOURS[shot.background])
        d.ellipse([x - r, y - r, x + r, y + r], outline=shade, width=max(1, int(3 * s)))
    hair = COLOURS[character.hair_colour]
    skin = SKIN[character.skin]
    # Body and jacket.
    d.rounded_rectangle([cx - 150 * s, cy + 120 * s, cx + 150 * s, size + 40], radius=int(60 * s),
                        fill=COLOURS[character.jacket_colour], outline=(0, 0, 0), width=max(1, int(3 * s)))
    d.rectangle([cx - 25 * s, cy + 80 * s, cx + 25 * s, cy + 130 * s], fill=skin)
    if character.hair_length == "long":
        d.rounded_rectangle([cx - 115 * s, cy - 100 * s, cx + 115 * s, cy + 170 * s], radius=int(50 * s), fill=hair)
    # Head, hair cap, eyes, mouth.
    d.ellipse([cx - 95 * s, cy - 115 * s, cx + 95 * s, cy + 115 * s], fill=skin, outline=(0, 0, 0),
              width=max(1, int(3 * s)))
    d.chord([cx - 100 * s, cy - 125 * s, cx + 100 * s, cy + 10 * s], 180, 360, fill=hair)
    for ex in (-40, 40):
        d.ellipse([cx + (ex - 20) * s, cy - 5 * s, cx + (ex + 20) * s, cy + 25 * s], fill=(255, 255, 255),
                  outline=(0, 0, 0), width=max(1, int(2 * s)))
        d.ellipse([cx + (ex - 9) * s, cy + 1 * s, cx + (ex + 9) * s, cy + 19 * s],
                  fill=COLOURS[character.eye_colour])
    if shot.expression == "smiling":
        d.arc([cx - 40 * s, cy + 30 * s, cx + 40 * s, cy + 80 * s], 20, 160, fill=(90, 20, 20), width=max(2, int(5 * s)))
    elif shot.expression == "open mouth":
        d.ellipse([cx - 22 * s, cy + 50 * s, cx + 22 * s, cy + 85 * s], fill=(110, 20, 30))
    else:
        d.line([cx - 30 * s, cy + 65 * s, cx + 30 * s, cy + 65 * s], fill=(90, 20, 20), width=max(2, int(5 * s)))
    # Sensor-like noise: photographs are never flat colour.
    noise = np.random.default_rng(seed).normal(0, 4, (size, size, 3))
    arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def caption(trigger: str, character: Character, shot: Shot) -> str:
    return (f"{trigger}, {character.hair_length} {character.hair_colour} hair, {character.jacket_colour} jacket, "
            f"{shot.expression}, {shot.background} background")
