"""Reading and checking caption files the way kohya will read them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MAX_CLIP_TOKENS = 75  # 77 minus the start and end tokens


@dataclass
class Caption:
    text: str | None          # None when the bytes are not UTF-8
    raw: bytes
    encoding: str | None = None  # the fallback encoding that decoded it, when not UTF-8

    @property
    def first_line(self) -> str:
        return (self.text or "").splitlines()[0].strip() if (self.text or "").strip() else ""

    @property
    def is_multiline(self) -> bool:
        lines = [l for l in (self.text or "").splitlines() if l.strip()]
        return len(lines) > 1


def read_caption(path: str | Path) -> Caption:
    raw = Path(path).read_bytes()
    try:
        return Caption(raw.decode("utf-8-sig"), raw)
    except UnicodeDecodeError:
        pass
    # Common editors on Windows save cp1252; prepare re-encodes such files as UTF-8.
    try:
        raw.decode("cp1252")
        return Caption(None, raw, encoding="cp1252")
    except UnicodeDecodeError:
        return Caption(None, raw, encoding="latin-1")


def decode_fallback(caption: Caption) -> str:
    if caption.text is not None:
        return caption.text
    return caption.raw.decode(caption.encoding or "latin-1", errors="replace")


def contains_trigger(text: str, trigger: str) -> bool:
    """Whole-word, case-insensitive: CLIP lower-cases everything it reads."""
    return re.search(rf"(?<![\w]){re.escape(trigger)}(?![\w])", text, re.IGNORECASE) is not None


def put_trigger_first(text: str, trigger: str) -> str:
    """`trigger, rest of caption`, with other mentions of the trigger removed."""
    tags = [t.strip() for t in text.split(",")]
    kept = [t for t in tags if t and t.lower() != trigger.lower()]
    if kept and contains_trigger(kept[0], trigger) and kept[0].lower().startswith(trigger.lower()):
        return ", ".join(kept)
    return ", ".join([trigger, *kept])
