"""Confinement of client-given paths to the folders the server owner allowed.

Every path from a request is resolved the way the file system will resolve it (absolute,
'..' collapsed, every symlink followed: `os.path.realpath`) and must then lie inside one of the
allowed roots, themselves resolved the same way. The resolved path is what the caller uses
afterwards, so a link cannot be swapped in between the check and the use of a '..'-free name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .errors import ApiError

MAX_PATH_CHARS = 4096


def path_text(value: Any, field: str) -> str:
    """A path string that is worth resolving at all, or a 400."""
    if not isinstance(value, str):
        raise ApiError(400, f"{field} must be a string path, got {type(value).__name__}", field=field,
                       fix=f"send {field} as a string such as \"/data/datasets/me\"")
    if not value.strip():
        raise ApiError(400, f"{field} is empty", field=field, fix=f"give {field} as a folder or .zip path")
    if "\x00" in value:
        raise ApiError(400, f"{field} contains a NUL byte", field=field, fix="remove the NUL byte from the path")
    if len(value) > MAX_PATH_CHARS:
        raise ApiError(400, f"{field} is {len(value)} characters long, over the {MAX_PATH_CHARS} limit",
                       field=field, fix="give a shorter path")
    return value


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


def resolve_inside(value: Any, roots: Sequence[str | os.PathLike], field: str, what: str = "dataset") -> Path:
    """The real path of `value` if it lies inside one of `roots` (a relative path is taken
    relative to the first root); otherwise ApiError 400 (malformed) or 403 (outside)."""
    text = path_text(value, field)
    real_roots = [_real(r) for r in roots]
    shown = ", ".join(str(r) for r in real_roots) or "(none configured)"
    fix = (f"put the {what} inside one of the allowed {what} folders ({shown}) and send that path"
           + (", or upload it as a .zip" if what == "dataset" else ""))
    candidate = Path(text)
    if not candidate.is_absolute():
        if not real_roots:
            raise ApiError(403, f"{text!r} is outside the allowed {what} folders", field=field, fix=fix)
        candidate = real_roots[0] / candidate
    try:
        real = _real(candidate)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ApiError(400, f"{field} {text!r} cannot be resolved ({type(exc).__name__})", field=field,
                       fix="give an existing folder or .zip") from None
    for root in real_roots:
        if real == root or real.is_relative_to(root):
            return real
    raise ApiError(403, f"{text!r} is outside the allowed {what} folders", field=field, fix=fix)
