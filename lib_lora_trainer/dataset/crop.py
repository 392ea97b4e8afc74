"""Turning any readable image into the RGB square (or scaled) picture kohya trains on."""

from __future__ import annotations

from PIL import Image, ImageOps

CROP_MODES = ("center", "face", "none")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def to_rgb(img: Image.Image, background=(255, 255, 255)) -> tuple[Image.Image, list[str]]:
    """EXIF-transposed 8-bit RGB; returns the image and what was done to it."""
    actions = []
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (0, 1):
        img = ImageOps.exif_transpose(img)
        actions.append(f"applied EXIF orientation {orientation}")
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        img = img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
        actions.append(f"16-bit {mode} -> 8-bit")
    if img.mode == "P" or img.mode == "PA":
        img = img.convert("RGBA" if ("transparency" in img.info or img.mode == "PA") else "RGB")
        actions.append("palette -> RGB")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        flat = Image.new("RGB", rgba.size, background)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        img = flat
        actions.append("alpha flattened onto white")
    if img.mode == "CMYK":
        actions.append("CMYK -> RGB")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img, actions


def largest_face(img: Image.Image) -> tuple[int, int, int, int] | None:
    """(x, y, w, h) of the largest frontal face, by OpenCV's bundled Haar cascade (offline)."""
    try:
        import cv2
        import numpy as np
    except ImportError as exc:
        raise RuntimeError("--crop face needs OpenCV: pip install 'opencv-python-headless<5' "
                           "(5.x no longer ships the face cascades)") from exc
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError("OpenCV's haarcascade_frontalface_default.xml is missing: "
                           "install opencv-python-headless<5")
    scale = min(1.0, 640 / max(img.size))  # detection at <= 640 px is fast and accurate enough
    small = img.convert("L")
    if scale < 1:
        small = small.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BILINEAR)
    faces = cascade.detectMultiScale(np.asarray(small), scaleFactor=1.1, minNeighbors=5, minSize=(24, 24))
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
    return tuple(int(round(v / scale)) for v in (x, y, w, h))


def square_box(width: int, height: int, cx: float, cy: float) -> tuple[int, int, int, int]:
    """The largest square inside the image, centred on (cx, cy) as far as the edges allow."""
    side = min(width, height)
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, top, left + side, top + side


def crop_and_resize(img: Image.Image, mode: str, resolution: int) -> tuple[Image.Image, list[str]]:
    if mode not in CROP_MODES:
        raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {mode!r}")
    actions = []
    w, h = img.size
    if mode == "none":
        # Keep the whole picture; kohya's buckets fit its aspect. Only shrink, never enlarge.
        short = min(w, h)
        if short > resolution:
            s = resolution / short
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)
            actions.append(f"resized {w}x{h} -> {img.width}x{img.height}")
        return img, actions
    cx, cy = w / 2, h / 2
    if mode == "face":
        face = largest_face(img)
        if face is None:
            actions.append("no face found: centre crop")
        else:
            fx, fy, fw, fh = face
            cx, cy = fx + fw / 2, fy + fh / 2
            actions.append(f"face at {fx},{fy} {fw}x{fh}")
    box = square_box(w, h, cx, cy)
    if box != (0, 0, w, h):
        img = img.crop(box)
        actions.append(f"cropped {w}x{h} -> {img.width}x{img.height} at {box[0]},{box[1]}")
    if img.size != (resolution, resolution):
        verb = "upscaled" if img.width < resolution else "resized"
        img = img.resize((resolution, resolution), Image.Resampling.LANCZOS)
        actions.append(f"{verb} to {resolution}x{resolution}")
    return img, actions
