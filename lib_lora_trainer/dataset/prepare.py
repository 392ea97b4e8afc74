"""`dataset prepare`: write a training-ready kohya dataset (img/<N>_<trigger>, log/, model/).

The source is only read. The image folder is built beside the target and renamed into place,
so an interrupted run never leaves a half-written img/.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from lib_lora_trainer import atomic
from lib_lora_trainer.config.steps import StepPlan, plan_steps

from .captions import decode_fallback, put_trigger_first, read_caption
from .check import DatasetReport, check_dataset
from .crop import CROP_MODES, crop_and_resize, to_rgb
from .layout import KohyaFolder, folder_for
from .source import open_source


class PrepareError(ValueError):
    pass


_NOT_FIXABLE = {"duplicate_exact", "too_small_severe"}


@dataclass
class PrepareOptions:
    out: Path
    trigger: str
    class_token: str | None = None
    repeats: int = 100
    resolution: int = 512
    crop: str = "center"
    trigger_in_captions: bool = False
    force: bool = False


@dataclass
class PreparedImage:
    source: str
    image: str
    caption: str
    actions: list[str] = field(default_factory=list)


@dataclass
class PrepareResult:
    out: Path
    image_dir: Path
    folder: KohyaFolder
    images: list[PreparedImage]
    skipped: dict[str, str]
    plan: StepPlan
    report: DatasetReport

    def step_sentence(self) -> str:
        p = self.plan
        return (f"{p.images} images x {p.repeats} repeats = {p.images * p.repeats} steps per epoch "
                f"at batch {p.batch_size}")


def _validate(src: Path, opts: PrepareOptions) -> KohyaFolder:
    folder = folder_for(opts.repeats, opts.trigger, opts.class_token)
    if opts.crop not in CROP_MODES:
        raise PrepareError(f"crop must be one of {', '.join(CROP_MODES)}, got {opts.crop!r}")
    if opts.resolution < 64 or opts.resolution % 64:
        raise PrepareError(f"resolution must be a multiple of 64 (e.g. 512, 768, 1024), got {opts.resolution}")
    out, source = opts.out.resolve(), src.resolve()
    if source.is_dir() and (out == source or source in out.parents):
        raise PrepareError(f"--out {opts.out} is inside the source {src}: the source is never written to. "
                           "Choose a folder outside it.")
    if out in source.parents or (out / "img") == source:
        raise PrepareError(f"the source {src} is inside --out {opts.out}: preparing would replace it. "
                           "Choose another --out.")
    if out.exists() and not out.is_dir():
        raise PrepareError(f"--out {opts.out} is a file: give a folder.")
    if out.exists() and any(out.iterdir()) and not opts.force:
        raise PrepareError(f"--out {opts.out} is not empty: choose an empty folder, or pass --force to "
                           "replace its img/ folder (log/ and model/ are kept).")
    return folder


_UNSAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


def _output_stem(rel: str, taken: set[str]) -> str:
    """The source file name, made safe and unique (nested sources can repeat names)."""
    stem = _UNSAFE_NAME.sub("_", os.path.splitext(os.path.basename(rel))[0]).strip(" .") or "image"
    candidate, n = stem, 2
    while candidate.lower() in taken:
        candidate, n = f"{stem}-{n}", n + 1
    taken.add(candidate.lower())
    return candidate


def _caption_for(report: DatasetReport, rel: str, opts: PrepareOptions, actions: list[str]) -> str:
    default = opts.trigger if not opts.class_token else f"{opts.trigger}, {opts.class_token}"
    cap_rel = report.scan.captions.get(rel)
    text = ""
    if cap_rel is not None:
        cap = read_caption(report.scan.abspath(cap_rel))
        if cap.text is None:
            actions.append(f"caption re-encoded from {cap.encoding} to UTF-8")
        # kohya reads one line: join a multi-line caption instead of losing its tail.
        text = ", ".join(l.strip() for l in decode_fallback(cap).splitlines() if l.strip())
    if not text:
        actions.append(f"caption written: {default!r}")
        return default
    if opts.trigger_in_captions:
        new = put_trigger_first(text, opts.trigger)
        if new != text:
            actions.append("trigger put first in caption")
        text = new
    return text


def prepare_dataset(src: str | Path, opts: PrepareOptions, workers: int | None = None) -> PrepareResult:
    src = Path(src)
    folder = _validate(src, opts)
    with open_source(src) as root:
        report = check_dataset(root, opts.resolution, opts.trigger, workers=workers, display_root=str(src))
        skipped = {rel: report.infos[rel].error for rel in report.scan.images if not report.infos[rel].usable}
        # Prepare fixes formats, modes, rotation and captions; it cannot fix these.
        skipped.update({p.path: p.code for p in report.problems if p.code in _NOT_FIXABLE})
        todo = [rel for rel in report.scan.images if rel not in skipped]
        if not todo:
            raise PrepareError(f"{src}: no usable image to prepare (the dataset check says why each file was left out).")
        opts.out.mkdir(parents=True, exist_ok=True)
        # Built beside img/ and swapped in: an interrupted run never leaves a half-written img/.
        with atomic.atomic_dir(opts.out / "img") as staging:
            image_dir = staging / folder.name
            image_dir.mkdir()
            prepared, taken = [], set()
            for rel in todo:
                prepared.append(_prepare_one(report, rel, image_dir, _output_stem(rel, taken), opts))
    for sub in ("log", "model"):
        (opts.out / sub).mkdir(exist_ok=True)
    plan = plan_steps(len(prepared), opts.repeats)
    for item in prepared:
        item.image = f"img/{folder.name}/{item.image}"
        item.caption = f"img/{folder.name}/{item.caption}"
    result = PrepareResult(opts.out, opts.out / "img" / folder.name, folder, prepared, skipped, plan, report)
    _write_manifest(result, src, opts)
    return result


def _prepare_one(report: DatasetReport, rel: str, image_dir: Path, stem: str, opts: PrepareOptions) -> PreparedImage:
    actions: list[str] = []
    with Image.open(report.scan.abspath(rel)) as img:
        img.load()
        rgb, done = to_rgb(img)
    actions += done
    rgb, done = crop_and_resize(rgb, opts.crop, opts.resolution)
    actions += done
    rgb.save(image_dir / f"{stem}.png", format="PNG", optimize=False)
    caption = _caption_for(report, rel, opts, actions)
    (image_dir / f"{stem}.txt").write_text(caption + "\n", encoding="utf-8")
    return PreparedImage(source=rel, image=f"{stem}.png", caption=f"{stem}.txt", actions=actions)


def _write_manifest(result: PrepareResult, src: Path, opts: PrepareOptions) -> None:
    manifest = {
        "source": str(src),
        "image_dir": str(result.image_dir),
        "folder": result.folder.name,
        "repeats": opts.repeats,
        "class_tokens": result.folder.class_tokens,
        "trigger": opts.trigger,
        "resolution": opts.resolution,
        "crop": opts.crop,
        "steps": asdict(result.plan),
        "images": [asdict(i) for i in result.images],
        "skipped": result.skipped,
    }
    atomic.write_text(opts.out / "prepare.json", json.dumps(manifest, indent=2, ensure_ascii=False))
