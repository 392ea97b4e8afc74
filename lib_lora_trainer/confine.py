"""Confinement of user-given server paths to the folders the server owner allowed.

Shared by the HTTP API (api/paths.py turns a refusal into a 400/403) and by the tab's folder
fields when the web UI is reachable from other machines (hosts decide when: A1111's
`cmd_opts.disable_extension_access`, the standalone `ui` on a non-loopback address).

Every path is resolved the way the file system will resolve it (absolute, '..' collapsed, every
symlink followed: `os.path.realpath`) and must then lie inside one of the allowed roots, themselves
resolved the same way. The resolved path is what the caller uses afterwards, so a link cannot be
swapped in between the check and the use of a '..'-free name. Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

MAX_PATH_CHARS = 4096


class PathRefused(ValueError):
    """A path that is malformed (status 400) or outside the allowed roots (status 403)."""

    def __init__(self, status: int, message: str, *, field: str, fix: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.fix = status, message, field, fix


def path_text(value: Any, field: str) -> str:
    """A path string that is worth resolving at all, else PathRefused(400)."""
    if not isinstance(value, str):
        raise PathRefused(400, f"{field} must be a string path, got {type(value).__name__}", field=field,
                          fix=f"send {field} as a string such as \"/data/datasets/me\"")
    if not value.strip():
        raise PathRefused(400, f"{field} is empty", field=field, fix=f"give {field} as a folder or .zip path")
    if "\x00" in value:
        raise PathRefused(400, f"{field} contains a NUL byte", field=field, fix="remove the NUL byte from the path")
    if len(value) > MAX_PATH_CHARS:
        raise PathRefused(400, f"{field} is {len(value)} characters long, over the {MAX_PATH_CHARS} limit",
                          field=field, fix="give a shorter path")
    return value


def real_path(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def roots_text(roots: Sequence[str | os.PathLike]) -> str:
    """The roots as a person reads them in a refusal: resolved, comma-separated."""
    return ", ".join(str(real_path(r)) for r in roots) or "(none configured)"


def inside(path: Path, roots: Sequence[Path]) -> bool:
    """Whether the already-resolved `path` is one of the resolved `roots` or lies below one."""
    return any(path == root or path.is_relative_to(root) for root in roots)


def resolve_inside(value: Any, roots: Sequence[str | os.PathLike], field: str, what: str = "dataset",
                   expand_user: bool = False) -> Path:
    """The real path of `value` if it lies inside one of `roots` (a relative path is taken
    relative to the first root; `~` is the home folder only with expand_user); otherwise
    PathRefused 400 (malformed) or 403 (outside)."""
    text = path_text(value, field)
    real_roots = [real_path(r) for r in roots]
    fix = (f"put the {what} inside one of the allowed {what} folders ({roots_text(real_roots)}) and send that path"
           + (", or upload it as a .zip" if what == "dataset" else ""))
    candidate = Path(text).expanduser() if expand_user else Path(text)
    if not candidate.is_absolute():
        if not real_roots:
            raise PathRefused(403, f"{text!r} is outside the allowed {what} folders", field=field, fix=fix)
        candidate = real_roots[0] / candidate
    try:
        real = real_path(candidate)
    except (OSError, ValueError, RuntimeError) as exc:
        raise PathRefused(400, f"{field} {text!r} cannot be resolved ({type(exc).__name__})", field=field,
                          fix="give an existing folder or .zip") from None
    if inside(real, real_roots):
        return real
    raise PathRefused(403, f"{text!r} is outside the allowed {what} folders", field=field, fix=fix)


@dataclass(frozen=True)
class FolderLimit:
    """The tab's folder fields on an exposed server: only paths inside `roots` are opened.
    `reason` says why in the host's words (e.g. "A1111 listens beyond this machine (--listen)"),
    `lift` how the owner turns the limit off (e.g. "start A1111 with --enable-insecure-extension-access")."""

    roots: tuple[Path, ...]
    reason: str
    lift: str = ""

    def resolve(self, value: Any, field: str = "Dataset folder") -> Path:
        """The real path inside one of the roots, else a ValueError whose message names them."""
        try:
            return resolve_inside(value.strip() if isinstance(value, str) else value, self.roots, field,
                                  expand_user=True)
        except PathRefused as exc:
            if exc.status == 400:
                raise ValueError(f"{field}: {exc.message}.") from None
            raise ValueError(self.refusal(str(value).strip(), field)) from None

    def refusal(self, text: str, field: str = "Dataset folder") -> str:
        lift = f" ({self.lift})" if self.lift else ""
        return (f"{field}: {text} is outside the dataset folders. {self.reason}, so the tab opens only folders "
                f"inside {roots_text(self.roots)}{lift}. Copy the dataset into one of them, or upload it "
                "(images or a .zip).")
