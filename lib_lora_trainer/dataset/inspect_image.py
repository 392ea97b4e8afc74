"""Everything the checks need from one image file, read in a single pass.

Pure function of the file, so a process pool can run it; the header is read first, so a
decompression bomb is refused before any pixel is decoded.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .hashing import laplacian_variance, phash

# kohya's glob_images: these extensions, any case.
KOHYA_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
# Images Pillow may open that kohya will not pick up; prepare converts them.
OTHER_IMAGE_EXTENSIONS = {".gif", ".tif", ".tiff", ".avif", ".heic", ".heif", ".jxl", ".jfif",
                          ".tga", ".ico", ".psd", ".jp2", ".ppm", ".pgm", ".pbm"}
MAX_PIXELS = 50_000_000
EXIF_ORIENTATION = 0x0112
# Decoding for the checks needs no more than this; JPEG draft mode decodes at 1/2..1/8 scale.
ANALYSIS_SIDE = 512


@dataclass
class ImageInfo:
    path: str
    size_bytes: int
    sha256: str = ""
    format: str | None = None
    width: int = 0
    height: int = 0
    mode: str = ""
    bit16: bool = False
    has_alpha: bool = False
    exif_orientation: int = 1
    phash: int | None = None
    blur: float | None = None
    error: str | None = None  # a problem code from problems.py
    detail: str = ""

    @property
    def usable(self) -> bool:
        return self.error is None


def _png_bit_depth(head: bytes) -> int:
    # IHDR is the first chunk: 8 bytes signature, 8 length+type, 4 w, 4 h, then bit depth.
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 24:
        return head[24]
    return 8


def _has_alpha(img: Image.Image) -> bool:
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return True
    return img.mode == "P" and "transparency" in img.info


def inspect_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    p = Path(path)
    info = ImageInfo(path=str(p), size_bytes=p.stat().st_size)
    if info.size_bytes == 0:
        info.error, info.detail = "zero_byte", "the file is empty (0 bytes)"
        return info
    data = p.read_bytes()
    info.sha256 = hashlib.sha256(data).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
    except Image.DecompressionBombError as exc:
        info.error, info.detail = "decompression_bomb", str(exc)
        return info
    except Exception as exc:  # Pillow raises many types for junk input
        info.error, info.detail = "unreadable", f"not an image Pillow can open ({type(exc).__name__}: {exc})"
        return info
    with img:
        info.format, info.mode = img.format, img.mode
        info.width, info.height = img.size
        if info.width * info.height > max_pixels:
            info.error = "decompression_bomb"
            info.detail = (f"{info.width}x{info.height} = {info.width * info.height / 1e6:.0f} megapixels, "
                           f"over the {max_pixels / 1e6:.0f} MP limit; not decoded")
            return info
        info.bit16 = img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F") or _png_bit_depth(data[:32]) == 16
        info.has_alpha = _has_alpha(img)
        try:
            info.exif_orientation = int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
        except Exception:
            info.exif_orientation = 1
        try:
            if img.format == "JPEG":
                img.draft("L", (ANALYSIS_SIDE, ANALYSIS_SIDE))
            img.load()  # full decode: catches truncated and corrupt data
        except OSError as exc:
            info.error = "truncated" if "truncat" in str(exc).lower() else "unreadable"
            info.detail = str(exc)
            return info
        except Exception as exc:
            info.error, info.detail = "unreadable", f"{type(exc).__name__}: {exc}"
            return info
        gray = _to_gray(img)
    info.phash = phash(gray)
    info.blur = laplacian_variance(gray)
    return info


def _to_gray(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's convert("L") clips 16-bit values instead of scaling them.
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    elif img.mode != "L":
        img = img.convert("RGB").convert("L")
    if max(img.size) > ANALYSIS_SIDE:
        img = img.copy()
        img.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BOX)
    return img
