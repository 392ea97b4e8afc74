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


def flatten_sections(raw: dict) -> dict:
    """What sd-scripts' --config_file reader sees: the keys of a [section] lifted to the top level
    (one level; deeper tables stay values)."""
    flat: dict = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat
