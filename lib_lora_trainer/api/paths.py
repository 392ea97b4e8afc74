"""Confinement of client-given paths to the folders the server owner allowed: the shared rules
live in lib_lora_trainer/confine.py (the tab uses them too); here a refusal becomes an ApiError
(400 malformed, 403 outside the roots) with the field and the fix."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from lib_lora_trainer import confine
from lib_lora_trainer.confine import MAX_PATH_CHARS, PathRefused  # noqa: F401  (re-exported)

from .errors import ApiError


def _api_error(exc: PathRefused) -> ApiError:
    return ApiError(exc.status, exc.message, field=exc.field, fix=exc.fix)


def path_text(value: Any, field: str) -> str:
    """A path string that is worth resolving at all, or a 400."""
    try:
        return confine.path_text(value, field)
    except PathRefused as exc:
        raise _api_error(exc) from None


def resolve_inside(value: Any, roots: Sequence[str | os.PathLike], field: str, what: str = "dataset") -> Path:
    """The real path of `value` if it lies inside one of `roots` (a relative path is taken
    relative to the first root); otherwise ApiError 400 (malformed) or 403 (outside)."""
    try:
        return confine.resolve_inside(value, roots, field, what)
    except PathRefused as exc:
        raise _api_error(exc) from None
