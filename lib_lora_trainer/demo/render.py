"""Draw a demo-world Person as a flat cartoon "photo" at any size.

Coordinates are in units of a 512 px canvas and scaled, so a 640 px "phone photo" and the
64 px training picture of the same Person show the same thing. Small pictures are drawn 4x
larger and reduced, for anti-aliased edges like a real downscaled photo.
"""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from .world import Person

COLOURS = {
    "red": (205, 40, 40), "green": (40, 150, 60), "blue": (40, 70, 205), "yellow": (235, 205, 40),
    "purple": (130, 50, 165), "orange": (240, 130, 30), "black": (25, 25, 25), "white": (242, 242, 242),
    "brown": (115, 70, 35), "blonde": (240, 210, 120), "gray": (135, 135, 135), "pink": (250, 130, 190),
}
SKIN = {"light": (250, 220, 195), "tan": (220, 170, 120), "brown": (160, 105, 65), "dark": (95, 60, 40)}
OUTLINE = (20, 20, 20)
SUPERSAMPLE_BELOW = 256


def render(person: Person, size: int = 512, seed: int = 0, noise: float = 4.0) -> Image.Image:
    """An RGB picture of `person`; the same (person, size, seed) gives the same pixels."""
    if size < SUPERSAMPLE_BELOW:
        big = _draw(person, size * 4, seed, noise=0.0)
        small = big.resize((size, size), Image.Resampling.LANCZOS)
        return _add_noise(small, seed, noise / 2)
    return _draw(person, size, seed, noise)


def _add_noise(img: Image.Image, seed: int, sigma: float) -> Image.Image:
    if sigma <= 0:
        return img
    arr = np.asarray(img, dtype=np.float32)
    arr = arr + np.random.default_rng(seed).normal(0, sigma, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _draw(p: Person, size: int, seed: int, noise: float) -> Image.Image:
    rng = random.Random(seed)
    bg = COLOURS[p.background]
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    s = size / 512 * p.scale
    w = lambda px: max(1, int(round(px * s)))  # noqa: E731 - line widths scale too
    cx, cy = size / 2 + p.dx * size, size * 0.42 + p.dy * size

    def box(x0, y0, x1, y1):
        return [cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s]

    # Faint background texture, so a sharp picture has edges everywhere (as photos do).
    shade = tuple(max(0, c - 18) for c in bg)
    for _ in range(8):
        x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(10, 30) * size / 512
        d.ellipse([x - r, y - r, x + r, y + r], outline=shade, width=max(1, size // 256))

    hair, skin = COLOURS[p.hair_colour], SKIN[p.skin]
    if p.hair_style == "long":
        d.rounded_rectangle(box(-118, -100, 118, 175), radius=w(50), fill=hair)
    # Body: clothing, then the neck over it.
    cloth = COLOURS[p.clothing_colour]
    d.rounded_rectangle([cx - 150 * s, cy + 120 * s, cx + 150 * s, size + 60], radius=w(60), fill=cloth,
                        outline=OUTLINE, width=w(3))
    d.rectangle(box(-25, 80, 25, 135), fill=skin)
    if p.clothing == "jacket":
        # Open jacket: a white shirt in a V, lapel lines and a zip line down the middle.
        d.polygon([(cx - 45 * s, cy + 122 * s), (cx + 45 * s, cy + 122 * s), (cx, cy + 230 * s)], fill=(245, 245, 245))
        d.line([(cx - 45 * s, cy + 122 * s), (cx, cy + 230 * s), (cx + 45 * s, cy + 122 * s)], fill=OUTLINE, width=w(5))
        d.line([(cx, cy + 230 * s), (cx, size + 10)], fill=OUTLINE, width=w(5))
    else:
        d.chord(box(-35, 95, 35, 150), 0, 180, fill=skin, outline=OUTLINE, width=w(3))
    if p.hair_style == "long":  # hair over the shoulders
        d.rounded_rectangle(box(-118, 60, -80, 190), radius=w(18), fill=hair)
        d.rounded_rectangle(box(80, 60, 118, 190), radius=w(18), fill=hair)
    if p.hair_style == "buns":
        for bx in (-78, 78):
            d.ellipse(box(bx - 45, -150, bx + 45, -60), fill=hair, outline=OUTLINE, width=w(3))
    # Head, then the hair cap over its top.
    d.ellipse(box(-95, -115, 95, 115), fill=skin, outline=OUTLINE, width=w(3))
    d.chord(box(-100, -125, 100, 10), 180, 360, fill=hair)
    # Eyes and brows.
    brow = w(9) if p.gender == "man" else w(4)
    for ex in (-40, 40):
        d.ellipse(box(ex - 20, 15, ex + 20, 45), fill=(255, 255, 255), outline=OUTLINE, width=w(2))
        d.ellipse(box(ex - 9, 21, ex + 9, 39), fill=(40, 30, 25))
        d.line([(cx + (ex - 22) * s, cy + 2 * s), (cx + (ex + 22) * s, cy + 2 * s)], fill=(40, 30, 25), width=brow)
    if p.glasses == "yes":
        for ex in (-40, 40):
            d.ellipse(box(ex - 31, -1, ex + 31, 61), outline=OUTLINE, width=w(7))
        d.line([(cx - 9 * s, cy + 28 * s), (cx + 9 * s, cy + 28 * s)], fill=OUTLINE, width=w(7))
    if p.gender == "woman":
        for ex in (-58, 58):
            d.ellipse(box(ex - 16, 55, ex + 16, 75), fill=(240, 140, 150))
    lips = (205, 30, 60) if p.gender == "woman" else (95, 25, 25)
    if p.expression == "smiling":
        d.arc(box(-40, 45, 40, 95), 20, 160, fill=lips, width=w(7))
    elif p.expression == "surprised":
        d.ellipse(box(-20, 62, 20, 100), fill=(90, 15, 25), outline=lips, width=w(4))
    elif p.expression == "tongue out":
        d.chord(box(-16, 60, 16, 108), 0, 180, fill=(235, 95, 115), outline=OUTLINE, width=w(2))
        d.line([(cx - 30 * s, cy + 82 * s), (cx + 30 * s, cy + 82 * s)], fill=lips, width=w(6))
    else:
        d.line([(cx - 30 * s, cy + 80 * s), (cx + 30 * s, cy + 80 * s)], fill=lips, width=w(6))
    return _add_noise(img, seed, noise)
