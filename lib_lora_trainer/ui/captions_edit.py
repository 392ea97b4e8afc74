"""Editing a dataset's captions: one image, or all of them at once (trigger, find/replace,
auto-caption). Captions are `<image stem>.txt` beside the image, UTF-8, one line."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lib_lora_trainer import atomic
from lib_lora_trainer.dataset.captions import decode_fallback, put_trigger_first, read_caption
from lib_lora_trainer.dataset.scan import CAPTION_EXTENSION, scan_folder


@dataclass
class Item:
    rel: str          # image path relative to the dataset folder ("/" separators)
    image: Path
    caption: str      # "" when there is no caption file


def caption_file(folder: Path, rel: str) -> Path:
    """The .txt beside an image; refuses paths that leave the folder."""
    root = Path(folder).resolve()
    image = (root / rel).resolve()
    if root not in image.parents:
        raise ValueError(f"{rel!r} is not inside the dataset folder")
    return image.with_suffix(CAPTION_EXTENSION)


def read_text(folder: Path, rel: str) -> str:
    path = caption_file(folder, rel)
    if not path.is_file():
        return ""
    return decode_fallback(read_caption(path)).strip()


def list_items(folder: str | Path) -> list[Item]:
    folder = Path(folder)
    scan = scan_folder(folder)
    return [Item(rel, scan.abspath(rel), read_text(folder, rel)) for rel in scan.images]


def write_caption(folder: str | Path, rel: str, text: str) -> Path:
    """One line (kohya reads only the first), UTF-8, written atomically."""
    line = " ".join((text or "").split())
    if not line:
        raise ValueError("Caption: empty. kohya stops on empty caption files: write at least the trigger word.")
    path = caption_file(Path(folder), rel)
    atomic.write_text(path, line + "\n")
    return path


def _rewrite_all(folder: Path, change: Callable[[str], str]) -> int:
    changed = 0
    for item in list_items(folder):
        new = " ".join(change(item.caption).split())
        if new and new != item.caption:
            write_caption(folder, item.rel, new)
            changed += 1
    return changed


def _word(word: str) -> re.Pattern:
    return re.compile(rf"(?<![\w]){re.escape(word)}(?![\w])", re.IGNORECASE)


def set_trigger(folder: str | Path, trigger: str, old: str | None = None) -> int:
    """Replace the old trigger word (whole word) by `trigger`, then put `trigger` first in every
    caption (images without a caption get one). Returns the number of captions written."""
    trigger = (trigger or "").strip()
    if not trigger or any(c.isspace() for c in trigger) or "," in trigger:
        raise ValueError("Trigger word: enter one word without spaces or commas (e.g. zyrette).")
    old = (old or "").strip()

    def change(text: str) -> str:
        if old and old.lower() != trigger.lower():
            text = _word(old).sub(trigger, text)
        return put_trigger_first(text, trigger) if text.strip() else trigger
    return _rewrite_all(Path(folder), change)


def find_replace(folder: str | Path, find: str, replace: str, whole_word: bool = False) -> int:
    if not find:
        raise ValueError("Find: enter the text to replace.")
    pattern = _word(find) if whole_word else re.compile(re.escape(find))
    return _rewrite_all(Path(folder), lambda text: pattern.sub(replace or "", text))


def auto_caption(folder: str | Path, captioner: Callable, overwrite: bool = False,
                 trigger: str | None = None) -> tuple[int, list[str]]:
    """Caption images with `captioner(PIL image) -> str`; keeps existing captions unless
    `overwrite`. The trigger is put first when given. Returns (written, failures)."""
    from PIL import Image, ImageOps

    written, failures = 0, []
    for item in list_items(folder):
        if item.caption and not overwrite:
            continue
        try:
            with Image.open(item.image) as im:
                text = str(captioner(ImageOps.exif_transpose(im).convert("RGB")) or "").strip()
        except Exception as exc:  # one bad image must not stop the batch; it is reported
            failures.append(f"{item.rel}: {type(exc).__name__}: {exc}")
            continue
        if trigger:
            text = put_trigger_first(text, trigger)
        if text:
            write_caption(folder, item.rel, text)
            written += 1
    return written, failures


def thumbnail(image: Path, cache_dir: Path, size: int = 256) -> Path:
    """A small PNG of the image (EXIF rotation applied) for the gallery, cached by path + mtime;
    the browser then gets a few KB per picture and every format displays."""
    from hashlib import sha1

    from PIL import Image, ImageOps

    st = image.stat()
    key = sha1(f"{image.resolve()}|{st.st_mtime_ns}|{st.st_size}|{size}".encode()).hexdigest()[:20]
    out = Path(cache_dir) / f"{key}.png"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(image) as im:
        im = ImageOps.exif_transpose(im)
        im.thumbnail((size, size))
        if im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        im.save(tmp, format="PNG")
    os.replace(tmp, out)
    return out
