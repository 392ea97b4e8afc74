"""Walk a dataset folder: images, their .txt captions, and everything else that is there.

Recursive (kohya layouts keep images in `img/<N>_<name>/`), never follows symlinks out of the
folder, and skips OS junk. Paths are reported relative to the root, with "/" separators.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .inspect_image import KOHYA_EXTENSIONS, OTHER_IMAGE_EXTENSIONS

CAPTION_EXTENSION = ".txt"
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}
# Files kohya or our own tools write beside images; not the user's problem.
IGNORED_SUFFIXES = {".npz", ".json", ".toml", ".caption", ".log"}


@dataclass
class DatasetScan:
    root: Path
    images: list[str] = field(default_factory=list)           # relative paths
    captions: dict[str, str] = field(default_factory=dict)    # image rel -> caption rel
    orphan_captions: list[str] = field(default_factory=list)
    unknown_files: list[str] = field(default_factory=list)
    symlinks: list[str] = field(default_factory=list)

    def abspath(self, rel: str) -> Path:
        return self.root / rel


def is_image_name(name: str) -> bool:
    ext = os.path.splitext(name)[1].lower()
    return ext in KOHYA_EXTENSIONS or ext in OTHER_IMAGE_EXTENSIONS


def scan_folder(root: str | os.PathLike, caption_extension: str = CAPTION_EXTENSION) -> DatasetScan:
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a folder: give a folder of images or a .zip.")
    scan = DatasetScan(root=root)
    captions: dict[str, str] = {}  # caption rel path without extension -> rel path
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(dirpath, root)
        # Hidden folders and macOS resource forks are never dataset content.
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX"
                             and not _is_link(dirpath, d, scan, rel_dir))
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/")
            if name.lower() in JUNK_NAMES or name.startswith("._"):
                continue
            if os.path.islink(os.path.join(dirpath, name)):
                scan.symlinks.append(rel)
                continue
            stem, ext = os.path.splitext(rel)
            if ext.lower() == caption_extension:
                captions[stem] = rel
            elif is_image_name(name):
                scan.images.append(rel)
            elif ext.lower() not in IGNORED_SUFFIXES:
                scan.unknown_files.append(rel)
    image_stems = {}
    for rel in scan.images:
        image_stems.setdefault(os.path.splitext(rel)[0], rel)
    for rel in scan.images:
        cap = captions.get(os.path.splitext(rel)[0])
        if cap is not None:
            scan.captions[rel] = cap
    scan.orphan_captions = sorted(c for stem, c in captions.items() if stem not in image_stems)
    return scan


def _is_link(dirpath: str, d: str, scan: DatasetScan, rel_dir: str) -> bool:
    if os.path.islink(os.path.join(dirpath, d)):
        scan.symlinks.append(d if rel_dir == "." else f"{rel_dir}/{d}".replace(os.sep, "/"))
        return True
    return False
