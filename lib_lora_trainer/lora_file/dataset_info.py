"""What the metadata says about the training data: ss_datasets, ss_tag_frequency, ss_dataset_dirs.

Mirrors how sd-scripts' DreamBoothDataset counts: a subset with num_repeats < 1 is dropped
entirely; a subset with no images is dropped too, but its folder still gets an (empty)
tag-frequency entry because sd-scripts counts tags before it checks the image count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence


def count_tags(captions: Sequence[str], into: dict[str, int] | None = None) -> dict[str, int]:
    """Comma-separated tags, stripped and lower-cased, counted once per caption occurrence."""
    freq = {} if into is None else into
    for caption in captions:
        for tag in caption.split(","):
            tag = tag.strip()
            if tag:
                tag = tag.lower()
                freq[tag] = freq.get(tag, 0) + 1
    return freq


def make_bucket_info(buckets: Mapping[int, tuple[tuple[int, int], int]],
                     mean_img_ar_error: float) -> dict[str, Any]:
    """sd-scripts' bucket_info: {bucket index: (resolution, count incl. repeats)} for non-empty
    buckets (index into the full bucket list), plus the mean aspect-ratio error without repeats."""
    return {
        "buckets": {i: {"resolution": tuple(reso), "count": count}
                    for i, (reso, count) in buckets.items() if count > 0},
        "mean_img_ar_error": mean_img_ar_error,
    }


@dataclass
class SubsetInfo:
    """One image folder. `captions` has one entry per image, as sd-scripts read it: the first line
    of the caption file stripped (all non-empty lines joined by "\\n" with enable_wildcard), or
    class_tokens when an image has no caption file, or "" when there are neither."""

    image_dir: str
    captions: Sequence[str]
    num_repeats: int = 1
    class_tokens: str | None = None
    is_reg: bool = False
    color_aug: bool = False
    flip_aug: bool = False
    random_crop: bool = False
    shuffle_caption: bool = False
    keep_tokens: int = 0
    keep_tokens_separator: str = ""
    secondary_separator: str | None = None
    enable_wildcard: bool = False
    caption_prefix: str | None = None
    caption_suffix: str | None = None
    resize_interpolation: str | None = None

    @property
    def img_count(self) -> int:
        return len(self.captions)

    @property
    def dir_name(self) -> str:
        # sd-scripts records only the folder's base name, never the full path.
        return os.path.basename(os.fspath(self.image_dir))

    def to_metadata(self) -> dict[str, Any]:
        return {
            "img_count": self.img_count,
            "num_repeats": self.num_repeats,
            "color_aug": bool(self.color_aug),
            "flip_aug": bool(self.flip_aug),
            "random_crop": bool(self.random_crop),
            "shuffle_caption": bool(self.shuffle_caption),
            "keep_tokens": self.keep_tokens,
            "keep_tokens_separator": self.keep_tokens_separator,
            "secondary_separator": self.secondary_separator,
            "enable_wildcard": bool(self.enable_wildcard),
            "caption_prefix": self.caption_prefix,
            "caption_suffix": self.caption_suffix,
            "resize_interpolation": self.resize_interpolation,
            "image_dir": self.dir_name,
            "class_tokens": self.class_tokens,
            "is_reg": self.is_reg,
        }


@dataclass
class DatasetInfo:
    """One [[datasets]] entry (DreamBooth style). resolution is (width, height) or one int."""

    resolution: int | tuple[int, int]
    subsets: list[SubsetInfo]
    batch_size: int = 1
    enable_bucket: bool = False
    min_bucket_reso: int | None = None  # sd-scripts records None unless bucketing is on
    max_bucket_reso: int | None = None
    bucket_no_upscale: bool = False
    bucket_info: dict[str, Any] | None = None  # make_bucket_info(...) when enable_bucket
    resize_interpolation: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        r = self.resolution
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))

    @property
    def used_subsets(self) -> list[SubsetInfo]:
        return [s for s in self.subsets if s.num_repeats >= 1 and s.img_count > 0]

    @property
    def num_train_images(self) -> int:
        return sum(s.num_repeats * s.img_count for s in self.used_subsets if not s.is_reg)

    @property
    def num_reg_images(self) -> int:
        return sum(s.num_repeats * s.img_count for s in self.used_subsets if s.is_reg)

    @property
    def tag_frequency(self) -> dict[str, dict[str, int]]:
        freq: dict[str, dict[str, int]] = {}
        for s in self.subsets:
            if s.num_repeats >= 1:  # counted before the empty-folder check, as in sd-scripts
                count_tags(s.captions, freq.setdefault(s.dir_name, {}))
        return freq

    def to_metadata(self) -> dict[str, Any]:
        return {
            "is_dreambooth": True,
            "batch_size_per_device": self.batch_size,
            "num_train_images": self.num_train_images,
            "num_reg_images": self.num_reg_images,
            "resolution": self.size,
            "enable_bucket": bool(self.enable_bucket),
            "min_bucket_reso": self.min_bucket_reso,
            "max_bucket_reso": self.max_bucket_reso,
            "tag_frequency": self.tag_frequency,
            "bucket_info": self.bucket_info,
            "resize_interpolation": self.resize_interpolation,
            "subsets": [s.to_metadata() for s in self.used_subsets],
        }


def dataset_dirs(datasets: Sequence[DatasetInfo]) -> dict[str, dict[str, int]]:
    """Non-reg folders across all datasets; a repeated name becomes "name (2)", "name (3)"..."""
    dirs: dict[str, dict[str, int]] = {}
    for ds in datasets:
        for s in ds.used_subsets:
            if s.is_reg:
                continue
            name, i = s.dir_name, 2
            while name in dirs:
                name, i = f"{s.dir_name} ({i})", i + 1
            dirs[name] = {"n_repeats": s.num_repeats, "img_count": s.img_count}
    return dirs


def merged_tag_frequency(datasets: Sequence[DatasetInfo]) -> dict[str, dict[str, int]]:
    """A folder used by several datasets is counted once (the first), as sd-scripts does."""
    merged: dict[str, dict[str, int]] = {}
    for ds in datasets:
        for name, freq in ds.tag_frequency.items():
            merged.setdefault(name, freq)
    return merged
