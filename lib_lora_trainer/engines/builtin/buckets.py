"""Aspect-ratio buckets with sd-scripts' rules (BucketManager, make_bucket_resolutions).

The bucket list: for the area w*h of the resolution, every width from min_reso to max_reso in
`steps` with the largest height (multiple of `steps`, <= max_reso) that keeps the area, both
orientations, plus the square; an image goes to the bucket whose aspect ratio is nearest, is
scaled so it covers the bucket, and the overhang is cut off evenly on both sides.

bucket_no_upscale: no predefined list. An image larger than the area is first scaled down (aspect
kept) to fit the area, with the side rounded to `steps` that keeps the aspect best; the bucket is
that size (or the original size of a smaller image) rounded *down* to `steps`, so an image is
never enlarged, only cropped by less than `steps` pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image


@dataclass(frozen=True)
class BucketChoice:
    bucket: tuple[int, int]        # (width, height) of the training crop
    resized: tuple[int, int]       # size the image is scaled to before the centre crop
    ar_error: float                # bucket aspect - image aspect


def make_bucket_resolutions(max_reso: tuple[int, int], min_size: int = 256, max_size: int = 1024,
                            steps: int = 64) -> list[tuple[int, int]]:
    area = max_reso[0] * max_reso[1]
    side = int(math.sqrt(area) // steps) * steps
    resos = {(side, side)}
    width = min_size
    while width <= max_size:
        height = min(max_size, (area // width) // steps * steps)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += steps
    return sorted(resos)


def cover_size(image: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int]:
    """Smallest scaled size (aspect kept) that covers the bucket."""
    (iw, ih), (bw, bh) = image, bucket
    scale = bh / ih if iw / ih > bw / bh else bw / iw
    return max(bw, int(iw * scale + 0.5)), max(bh, int(ih * scale + 0.5))


class BucketSet:
    def __init__(self, resolution: tuple[int, int], enable: bool = True, min_reso: int = 256,
                 max_reso: int = 1024, steps: int = 64, no_upscale: bool = False):
        self.resolution = resolution
        self.max_area = resolution[0] * resolution[1]
        self.steps = steps
        self.no_upscale = enable and no_upscale
        if not enable:
            self.predefined = [tuple(resolution)]
        elif no_upscale:
            self.predefined = []
        else:
            self.predefined = make_bucket_resolutions(resolution, min_reso, max_reso, steps)

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.steps

    def select(self, width: int, height: int) -> BucketChoice:
        aspect = width / height
        if not self.no_upscale:
            if (width, height) in self.predefined:
                bucket = (width, height)
            else:  # first of the sorted list on a tie, like numpy argmin
                bucket = min(self.predefined, key=lambda r: abs(r[0] / r[1] - aspect))
            resized = cover_size((width, height), bucket)
        else:
            if width * height > self.max_area:
                rw = math.sqrt(self.max_area * aspect)
                rh = self.max_area / rw
                w_r = self._round(rw)
                h_in_w = self._round(w_r / aspect)
                h_r = self._round(rh)
                w_in_h = self._round(h_r * aspect)
                err_w = abs(w_r / h_in_w - aspect) if h_in_w else math.inf
                err_h = abs(w_in_h / h_r - aspect) if h_r else math.inf
                if err_w < err_h:
                    resized = (w_r, int(w_r / aspect + 0.5))
                else:
                    resized = (int(h_r * aspect + 0.5), h_r)
            else:
                resized = (width, height)
            bucket = (resized[0] - resized[0] % self.steps, resized[1] - resized[1] % self.steps)
            if bucket[0] == 0 or bucket[1] == 0:
                raise ValueError(f"image {width}x{height} is smaller than bucket_reso_steps "
                                 f"{self.steps} on one side")
        return BucketChoice(bucket, resized, bucket[0] / bucket[1] - aspect)


def crop_offsets(resized: tuple[int, int], bucket: tuple[int, int]) -> tuple[int, int]:
    """(left, top) of the centre crop inside the resized image (overhang // 2, as sd-scripts)."""
    return (resized[0] - bucket[0]) // 2, (resized[1] - bucket[1]) // 2


def load_bucket_image(path, choice: BucketChoice) -> np.ndarray:
    """The training crop as HxWx3 uint8: RGB (alpha dropped, as sd-scripts), scaled to
    `choice.resized` (area/box filter when shrinking, Lanczos when enlarging), centre-cropped."""
    with Image.open(path) as im:
        img = im.convert("RGB") if im.mode != "RGB" else im.copy()
    w, h = img.size
    rw, rh = choice.resized
    if (rw, rh) != (w, h):
        shrink = rw <= w and rh <= h
        img = img.resize((rw, rh), Image.Resampling.BOX if shrink else Image.Resampling.LANCZOS)
    left, top = crop_offsets(choice.resized, choice.bucket)
    bw, bh = choice.bucket
    if (left, top, bw, bh) != (0, 0, rw, rh):
        img = img.crop((left, top, left + bw, top + bh))
    return np.array(img, dtype=np.uint8)


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> 3xHxW float32 in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
