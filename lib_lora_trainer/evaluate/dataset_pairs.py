"""Read a prepared kohya dataset (img/<repeats>_<name>/ with .txt captions) for evaluation."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def caption_pairs(folder: Path) -> list[tuple[Path, str]]:
    """(image, caption) for every image under `folder` (recursively, sorted); missing captions read ''."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder {folder} does not exist")
    out = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file() and not path.is_symlink():
            txt = path.with_suffix(".txt")
            caption = txt.read_text(encoding="utf-8", errors="replace").strip() if txt.is_file() else ""
            out.append((path, caption.splitlines()[0] if caption else ""))
    return out


def spread(items: list, k: int) -> list:
    """k items evenly spread over the list (all of them if there are fewer)."""
    if len(items) <= k:
        return list(items)
    step = len(items) / k
    return [items[int(i * step)] for i in range(k)]


def load_images(paths, limit: int = 32) -> list[Image.Image]:
    out = []
    for p in spread(list(paths), limit):
        with Image.open(p) as im:
            out.append(im.convert("RGB"))
    return out
