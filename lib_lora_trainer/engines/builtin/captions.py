"""Captions as sd-scripts' DreamBoothDataset reads and processes them.

Read once: the first line of `<image stem><caption_extension>` (UTF-8), stripped; no file ->
the subset's class tokens. Per fetch: caption dropout (the caption becomes ""), else with
shuffle_caption the comma-separated tags after the first keep_tokens are shuffled and the tags
are joined again with ", ".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .dataset_config import DatasetConfigError, SubsetSpec


def caption_path(image: Path, caption_extension: str) -> Path:
    return image.with_name(image.stem + caption_extension)


def read_caption(image: Path, caption_extension: str) -> str | None:
    """The first line of the caption file, or None when there is none.

    sd-scripts asserts on a caption file with no lines; we also refuse one whose first line is
    blank (sd-scripts would silently train that image with an empty caption)."""
    path = caption_path(image, caption_extension)
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetConfigError(f"caption file {str(path)!r} is not UTF-8 (byte {e.start}): save it "
                                 "as UTF-8.") from None
    first = text.splitlines()[0].strip() if text else ""
    if not first:
        raise DatasetConfigError(f"caption file {str(path)!r} is empty (its first line is blank): write "
                                 "the caption on the first line, or delete the file to use the "
                                 "folder's class tokens.")
    return first


def process_caption(caption: str, subset: SubsetSpec, rng: np.random.Generator) -> str:
    """One fetch of one caption; draws from rng only when the subset needs randomness."""
    if subset.caption_dropout_rate > 0 and rng.random() < subset.caption_dropout_rate:
        return ""
    if not subset.shuffle_caption:
        return caption
    tags = [t.strip() for t in caption.strip().split(",")]
    keep = subset.keep_tokens
    fixed, flex = tags[:keep], tags[keep:]
    flex = [flex[i] for i in rng.permutation(len(flex))]
    return ", ".join(fixed + flex)


def count_tags(captions: list[str], into: dict[str, int] | None = None) -> dict[str, int]:
    """ss_tag_frequency for one folder: comma-separated tags, stripped, lower-cased, once per image."""
    counts = {} if into is None else into
    for caption in captions:
        for tag in caption.split(","):
            tag = tag.strip().lower()
            if tag:
                counts[tag] = counts.get(tag, 0) + 1
    return counts
