"""Where the tab's dataset lives while it is edited.

A folder path is used in place (caption edits write its .txt files; `prepare` never touches
it). A .zip path, or images / a zip uploaded from the browser, are copied into a new folder
under `<data dir>/datasets/`, so edits are kept and training reads the same files. The sample
dataset is written there too.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from lib_lora_trainer.dataset.scan import CAPTION_EXTENSION, is_image_name
from lib_lora_trainer.dataset.zip_import import extract_zip_safely

_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class WorkspaceError(ValueError):
    """A dataset that cannot be loaded; the message says what to do."""


def _new_folder(datasets_dir: Path, stem: str) -> Path:
    stem = _SAFE.sub("_", stem).strip(" ._") or "dataset"
    base = datasets_dir / f"{stem[:60]}-{time.strftime('%Y%m%d-%H%M%S')}"
    folder, n = base, 1
    while folder.exists():
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    folder.mkdir(parents=True)
    return folder


def load_source(src: str, datasets_dir: Path, limit=None) -> Path:
    """A folder to work on: the folder itself, or a .zip's safe extraction into datasets_dir.
    `limit` (a confine.FolderLimit, on an exposed server): the path must lie inside its roots."""
    text = (src or "").strip()
    if not text:
        raise WorkspaceError("Dataset folder: enter the path of a folder of images or a .zip, or upload files.")
    if limit is not None:
        try:
            text = str(limit.resolve(text))
        except ValueError as exc:
            raise WorkspaceError(str(exc)) from None
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if not path.exists():
        raise WorkspaceError(f"Dataset folder: {text} does not exist. Enter an existing folder or .zip.")
    if path.suffix.lower() != ".zip":
        raise WorkspaceError(f"Dataset folder: {text} is a file but not a .zip. Give its folder instead.")
    folder = _new_folder(datasets_dir, path.stem)
    try:
        extract_zip_safely(path, folder)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def write_sample(datasets_dir: Path, trigger: str | None = None) -> Path:
    """The sample dataset (demo/sample_dataset.py: the demo character with the mistakes real folders
    have) written into a new folder under datasets_dir, captioned with `trigger` (default: the
    sample's own). A new folder each time, so earlier edits of a sample are never overwritten."""
    from lib_lora_trainer.demo.sample_dataset import DEMO_TRIGGER, write_sample_dataset

    folder = _new_folder(datasets_dir, "sample")
    try:
        write_sample_dataset(folder, (trigger or "").strip() or DEMO_TRIGGER)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def import_uploads(files: list, datasets_dir: Path) -> Path:
    """Uploaded images + captions (and/or .zip files) into one new folder. `files` are paths or
    gradio's temp-file objects (with .name). Names are reduced to safe base names."""
    paths = [Path(getattr(f, "name", f)) for f in (files or []) if f]
    if not paths:
        raise WorkspaceError("Upload: no files received. Choose images (with their .txt captions) or a .zip.")
    folder = _new_folder(datasets_dir, "upload")
    kept = 0
    try:
        for p in paths:
            name = _SAFE.sub("_", p.name).strip(" ") or "file"
            if p.suffix.lower() == ".zip":
                extract_zip_safely(p, folder / Path(name).stem)
                kept += 1
            elif is_image_name(name) or name.lower().endswith(CAPTION_EXTENSION):
                shutil.copyfile(p, _free_name(folder, name))
                kept += 1
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if not kept:
        shutil.rmtree(folder, ignore_errors=True)
        raise WorkspaceError("Upload: none of the files is an image, a .txt caption or a .zip.")
    return folder


def _free_name(folder: Path, name: str) -> Path:
    target = folder / name
    stem, suffix, n = target.stem, target.suffix, 1
    while target.exists():
        n += 1
        target = folder / f"{stem}_{n}{suffix}"
    return target
