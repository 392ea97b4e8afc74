"""The Host protocol: what the Train LoRA tab needs from the program it runs in.

ui/ is written against this interface only, so the same Blocks runs inside A1111
(hosts/a1111.py) and standalone (hosts/standalone.py). Implementations keep host calls thin;
nothing here imports gradio, torch or A1111.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

# A captioner takes a PIL image and returns a caption.
Captioner = Callable[[object], str]

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")


@runtime_checkable
class Host(Protocol):
    name: str                      # "a1111" | "standalone": shown in messages
    txt2img_available: bool        # whether "Send to txt2img" has somewhere to send

    def lora_dir(self) -> Path: ...
    def data_dir(self) -> Path: ...
    def checkpoints(self) -> list[tuple[str, str]]: ...          # (title, path), display order
    def refresh_checkpoints(self) -> None: ...
    def captioners(self) -> dict[str, Captioner]: ...
    def job_service(self): ...                                    # a jobs.service.JobService
    def after_install(self, path: str | Path) -> None: ...        # e.g. rescan the Lora list
    def dataset_roots(self) -> list[Path]: ...
    def settings(self) -> dict: ...                               # engine settings for the job service

    # Optional (read through the helpers below, so older or minimal hosts need not have them):
    #   folder_limit() -> confine.FolderLimit | None   the tab's folder fields confined on an exposed server
    #   captioners_note() -> str                        why captioners() is empty, in the host's words


def folder_limit(host):
    """The host's confinement of the tab's folder fields (a confine.FolderLimit), or None when the
    tab may open any folder (a web UI reachable from this machine only)."""
    fn = getattr(host, "folder_limit", None)
    return fn() if callable(fn) else None


def confined_folder(host, value: str, field: str = "Dataset folder") -> str:
    """`value` unchanged where the host does not confine folders; else its real path inside the
    dataset roots, or a ValueError whose message names them."""
    limit = folder_limit(host)
    if limit is None or not (value or "").strip():
        return value
    return str(limit.resolve(value, field))


def captioners_note(host) -> str:
    fn = getattr(host, "captioners_note", None)
    return fn() if callable(fn) else "No captioning model in this app: write captions here or with another tool."


def scan_checkpoints(folder: str | os.PathLike | None) -> list[tuple[str, str]]:
    """(title, path) of every .safetensors/.ckpt under `folder` (recursive, natural order), as
    A1111 lists them: the title is the path relative to the folder. VAE files and the
    `<stem>.config/` folders of test models are skipped."""
    if not folder:
        return []
    root = Path(folder)
    if not root.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not d.endswith(".config"))
        for name in sorted(filenames):
            lower = name.lower()
            if not lower.endswith(CHECKPOINT_SUFFIXES) or ".vae." in lower:
                continue
            path = Path(dirpath) / name
            out.append((path.relative_to(root).as_posix(), str(path)))
    return out


def checkpoint_path(host: Host, title: str | None) -> str:
    """The file behind a checkpoint dropdown title; a ValueError naming the field otherwise."""
    if not (title or "").strip():
        raise ValueError("Base checkpoint: none selected. Pick one from the list (press the refresh "
                         "button after copying a model into the models folder).")
    for t, path in host.checkpoints():
        if t == title:
            return path
    raise ValueError(f"Base checkpoint: {title!r} is no longer in the model list. Press refresh and pick it again.")
