"""Engines by name. Standard library only at import time."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .base import Engine
from .builtin_engine import BuiltinEngine
from .kohya import KohyaEngine

_ENGINES: dict[str, Callable[..., Engine]] = {
    BuiltinEngine.name: BuiltinEngine,
    KohyaEngine.name: KohyaEngine,
}
_ALIASES = {"sd-scripts": KohyaEngine.name, "sd_scripts": KohyaEngine.name}


def list_engines() -> list[str]:
    """Engine names, the default first."""
    return list(_ENGINES)


def get_engine(name: str, settings: Mapping[str, Any] | None = None) -> Engine:
    key = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in _ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of: {', '.join(list_engines())}")
    return _ENGINES[key](settings)
