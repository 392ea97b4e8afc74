"""Generated test images: textured like photos (edges everywhere), distinct per seed."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def textured(seed: int, size=(640, 640), mode="RGB") -> Image.Image:
    rng = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = rng.uniform(-0.2, 1) * w, rng.uniform(-0.2, 1) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.5) * h
        colour = tuple(rng.randrange(256) for _ in range(3))
        (d.ellipse if rng.random() < 0.5 else d.rectangle)([x0, y0, x1, y1], fill=colour)
    noise = np.random.default_rng(seed).normal(0, 5, (h, w, 3))
    arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
    out = Image.fromarray(arr)
    return out if mode == "RGB" else out.convert(mode)


def write_dataset(folder: Path, n: int = 12, trigger: str = "zkperson", size=(640, 640),
                  start_seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        textured(start_seed + i, size).save(folder / f"img_{i:03d}.jpg", quality=92)
        (folder / f"img_{i:03d}.txt").write_text(f"{trigger}, a photo number {i}\n", encoding="utf-8")
    return folder


def tree_digest(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def schematic_face(size: int = 200, skin: int = 190) -> Image.Image:
    """A shaded face drawing that OpenCV's frontal-face Haar cascade detects (dark eyes and brows
    over lighter cheeks, as the cascade's features expect)."""
    from PIL import ImageFilter
    img = Image.new("L", (size, int(size * 1.25)), 235)
    d = ImageDraw.Draw(img)
    w, h = img.size
    d.ellipse([w * 0.1, h * 0.05, w * 0.9, h * 0.95], fill=skin)
    d.chord([w * 0.08, 0, w * 0.92, h * 0.45], 180, 360, fill=50)
    for ex in (0.33, 0.67):
        cx, cy = w * ex, h * 0.42
        d.rectangle([cx - w * 0.12, cy - h * 0.09, cx + w * 0.12, cy - h * 0.06], fill=60)
        d.ellipse([cx - w * 0.1, cy - h * 0.04, cx + w * 0.1, cy + h * 0.04], fill=40)
    d.polygon([(w * 0.5, h * 0.45), (w * 0.44, h * 0.63), (w * 0.56, h * 0.63)], fill=skin - 40)
    d.ellipse([w * 0.35, h * 0.72, w * 0.65, h * 0.78], fill=80)
    return img.filter(ImageFilter.GaussianBlur(3)).convert("RGB")
