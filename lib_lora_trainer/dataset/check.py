"""`dataset check`: inspect every image and caption and report what is wrong, with fixes."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .captions import MAX_CLIP_TOKENS, contains_trigger, read_caption
from .hashing import BLUR_THRESHOLD, hamming_matrix
from .inspect_image import KOHYA_EXTENSIONS, ImageInfo, inspect_image
from .problems import ERROR, WARNING, Problem
from .scan import DatasetScan, scan_folder

MIN_IMAGES = 10
MAX_ASPECT = 2.0
NEAR_DUPLICATE_BITS = 6  # of 64 phash bits; re-encodes and resizes of one photo stay under 4
_PARALLEL_FROM = 48       # below this, starting worker processes costs more than it saves


@dataclass
class DatasetReport:
    root: Path
    scan: DatasetScan
    infos: dict[str, ImageInfo]
    problems: list[Problem] = field(default_factory=list)
    resolution: int = 512
    trigger: str | None = None
    token_check: str = "ok"

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    def usable_images(self) -> list[str]:
        return [rel for rel in self.scan.images if self.infos[rel].usable]

    def summary(self) -> dict:
        usable = [self.infos[r] for r in self.usable_images()]
        sides = sorted(min(i.width, i.height) for i in usable)
        return {
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "usable_images": len(usable),
            "formats": dict(Counter(i.format or "?" for i in usable)),
            "min_short_side": sides[0] if sides else None,
            "median_short_side": sides[len(sides) // 2] if sides else None,
            "resolution": self.resolution,
            "trigger": self.trigger,
            "token_check": self.token_check,
            "by_code": dict(Counter(p.code for p in self.problems)),
        }

    def to_dict(self) -> dict:
        return {
            "source": str(self.root),
            "images": len(self.scan.images),
            "captions": len(self.scan.captions),
            "summary": self.summary(),
            "problems": [p.to_dict() for p in self.problems],
        }


def inspect_all(paths: list[Path], workers: int | None = None) -> list[ImageInfo]:
    workers = workers if workers is not None else min(4, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < _PARALLEL_FROM:
        return [inspect_image(p) for p in paths]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(inspect_image, paths, chunksize=16))


def check_dataset(root: str | os.PathLike, resolution: int = 512, trigger: str | None = None,
                  workers: int | None = None, display_root: str | None = None) -> DatasetReport:
    if resolution < 64 or resolution % 8:
        raise ValueError(f"resolution must be a multiple of 8 and >= 64, got {resolution}")
    scan = scan_folder(root)
    infos = dict(zip(scan.images, inspect_all([scan.abspath(r) for r in scan.images], workers)))
    for info, rel in zip(infos.values(), infos):
        info.path = rel
    report = DatasetReport(Path(display_root or root), scan, infos, resolution=resolution, trigger=trigger)
    out = report.problems
    _file_problems(scan, infos, resolution, out)
    _duplicate_problems(scan, infos, out)
    report.token_check = _caption_problems(scan, infos, trigger, out)
    _dataset_problems(scan, infos, out)
    out.sort(key=lambda p: (p.severity != ERROR, p.path, p.code))
    return report


def _file_problems(scan: DatasetScan, infos: dict[str, ImageInfo], res: int, out: list[Problem]) -> None:
    for rel in scan.symlinks:
        out.append(Problem("symlink_skipped", rel, "a symbolic link; it is not followed or imported"))
    for rel in scan.unknown_files:
        out.append(Problem("unknown_file", rel, "not an image or a caption"))
    for rel, info in infos.items():
        ext = os.path.splitext(rel)[1].lower()
        if info.error:
            out.append(Problem(info.error, rel, info.detail))
            continue
        if ext not in KOHYA_EXTENSIONS:
            out.append(Problem("unsupported_format", rel,
                               f"{ext} ({info.format}) is not read by kohya: it skips this file"))
        short = min(info.width, info.height)
        if short < res / 2:
            out.append(Problem("too_small_severe", rel,
                               f"{info.width}x{info.height}: shorter side {short} px is under half of {res}"))
        elif short < res:
            out.append(Problem("too_small", rel, f"{info.width}x{info.height}: shorter side {short} px < {res}"))
        aspect = max(info.width, info.height) / max(1, short)
        if aspect > MAX_ASPECT:
            out.append(Problem("extreme_aspect", rel, f"{info.width}x{info.height} is {aspect:.1f}:1"))
        if info.blur is not None and info.blur < BLUR_THRESHOLD:
            out.append(Problem("blurry", rel, f"sharpness {info.blur:.0f} (variance of the Laplacian) "
                                              f"< {BLUR_THRESHOLD:.0f}"))
        if info.exif_orientation not in (0, 1):
            out.append(Problem("exif_rotation", rel, f"EXIF orientation {info.exif_orientation} is not applied "
                                                     "to the pixels"))
        if info.mode == "CMYK":
            out.append(Problem("mode_cmyk", rel, "CMYK colour mode"))
        if info.bit16:
            out.append(Problem("mode_16bit", rel, f"16 bits per channel ({info.mode})"))
        if info.mode in ("P", "PA"):
            out.append(Problem("mode_palette", rel, "palette (indexed) colours"))
        if info.has_alpha:
            out.append(Problem("mode_alpha", rel, f"has an alpha channel ({info.mode})"))
        if info.mode in ("L", "1", "LA") or (info.bit16 and info.mode in ("I;16", "I")):
            out.append(Problem("mode_grayscale", rel, f"grayscale ({info.mode})"))


def _duplicate_problems(scan: DatasetScan, infos: dict[str, ImageInfo], out: list[Problem]) -> None:
    usable = [rel for rel in scan.images if infos[rel].usable]
    first_by_sha: dict[str, str] = {}
    exact: set[str] = set()
    # The shortest name is taken as the original: "x (copy).jpg" is flagged, not "x.jpg".
    for rel in sorted(usable, key=lambda r: (len(r), r)):
        first = first_by_sha.setdefault(infos[rel].sha256, rel)
        if first != rel:
            exact.add(rel)
            out.append(Problem("duplicate_exact", rel, f"the same bytes as {first}", related=[first]))
    distinct = [rel for rel in usable if rel not in exact]
    if len(distinct) < 2:
        return
    dist = hamming_matrix([infos[r].phash for r in distinct])
    for i, j in zip(*((dist <= NEAR_DUPLICATE_BITS).nonzero())):
        if i < j:
            a, b = distinct[i], distinct[j]
            out.append(Problem("duplicate_near", b, f"looks like {a} ({dist[i, j]} of 64 hash bits differ)",
                               related=[a]))


def _caption_problems(scan: DatasetScan, infos: dict[str, ImageInfo], trigger: str | None,
                      out: list[Problem]) -> str:
    counter, token_check = _token_counter()
    for rel in scan.images:
        cap_rel = scan.captions.get(rel)
        if not infos[rel].usable:
            continue  # the image itself is reported; its caption does not matter
        if cap_rel is None:
            out.append(Problem("caption_missing", rel, f"no {os.path.splitext(rel)[0]}.txt"))
            continue
        cap = read_caption(scan.abspath(cap_rel))
        if cap.text is None:
            out.append(Problem("caption_not_utf8", cap_rel, f"not valid UTF-8 (looks like {cap.encoding})"))
            continue
        if not cap.text.strip():
            out.append(Problem("caption_empty", cap_rel, "the caption file is empty"))
            continue
        if cap.is_multiline:
            out.append(Problem("caption_multiline", cap_rel, "more than one non-empty line"))
        text = cap.first_line
        if counter is not None:
            n = counter(text)
            if n > MAX_CLIP_TOKENS:
                out.append(Problem("caption_too_long", cap_rel, f"{n} CLIP tokens > {MAX_CLIP_TOKENS}"))
        if trigger and not contains_trigger(text, trigger):
            out.append(Problem("trigger_missing", cap_rel, f"the trigger word {trigger!r} is not in the caption"))
    for rel in scan.orphan_captions:
        out.append(Problem("caption_orphan", rel, "a caption with no image of the same name"))
    return token_check


def _token_counter():
    try:
        from lib_lora_trainer.tokenizer.clip_bpe import get_tokenizer
        return get_tokenizer().count_tokens, "ok"
    except FileNotFoundError as exc:  # no CLIP vocabulary installed: say so, do not fail
        return None, f"skipped: {exc}"


def _dataset_problems(scan: DatasetScan, infos: dict[str, ImageInfo], out: list[Problem]) -> None:
    usable = [i for i in infos.values() if i.usable]
    if not usable:
        out.append(Problem("no_images", ".", "no readable image found"))
        return
    if len(usable) < MIN_IMAGES:
        out.append(Problem("too_few_images", ".", f"{len(usable)} usable images (fewer than {MIN_IMAGES})"))
    formats = Counter(i.format for i in usable)
    if len(formats) > 1:
        desc = ", ".join(f"{n} {f}" for f, n in formats.most_common())
        out.append(Problem("mixed_formats", ".", desc))
