"""A dataset source is a folder or a .zip; a zip is extracted safely into a temporary folder."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .zip_import import extract_zip_safely


class SourceError(ValueError):
    pass


@contextmanager
def open_source(src: str | Path) -> Iterator[Path]:
    """Yield a folder to read the dataset from; a zip's temporary copy is removed afterwards."""
    path = Path(src)
    try:
        exists = path.exists()
    except OSError as exc:  # e.g. a path part longer than the filesystem allows
        raise SourceError(f"{src}: not a usable path ({exc.strerror or exc}).") from None
    if not exists:
        raise SourceError(f"{src}: no such file or folder. Give a folder of images or a .zip of them.")
    if path.is_dir():
        yield path
        return
    if path.suffix.lower() != ".zip":
        raise SourceError(f"{src} is a file but not a .zip: give a folder of images or a .zip of them.")
    with tempfile.TemporaryDirectory(prefix="lora_trainer_zip_") as tmp:
        dest = Path(tmp) / "dataset"
        dest.mkdir()
        extract_zip_safely(path, dest)
        yield dest
