"""Reading TOML in both Pythons we run in: tomllib (3.11+) or tomli (A1111's Python 3.10;
install.py adds it there when missing)."""

from __future__ import annotations

try:
    import tomllib as _toml
except ImportError:  # Python 3.10
    import tomli as _toml

TOMLDecodeError = _toml.TOMLDecodeError


def loads(text: str) -> dict:
    return _toml.loads(text)
