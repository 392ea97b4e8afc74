"""One field's rules (`Spec`) and the coercion of a JSON value to that field's type.

JSON has one number type, so 2.0 is accepted where an integer is expected; anything that would
be a guess is refused: booleans are not numbers (True is not 1), strings are not numbers ("1e-4"
comes from a text box the UI must convert), numbers are not booleans.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable

from .errors import ConfigError

# Characters refused in an output name: path separators, NUL, and what Windows forbids in a
# file name (A1111 runs there too and the name becomes <name>.safetensors).
_NAME_FORBIDDEN = set('/\\:*?"<>|')
NAME_MAX = 100


@dataclass(frozen=True)
class Spec:
    kind: str                      # int, float, bool, str, choice, warmup, lines, kv, name, token, gpu_ids
    help: str
    group: str = "training"
    optional: bool = False         # None allowed
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False    # minimum itself not allowed
    multiple_of: int | None = None
    choices: tuple[str, ...] | None = None

    @property
    def type_name(self) -> str:
        base = {"int": "int", "float": "float", "bool": "bool", "str": "str", "choice": "str",
                "warmup": "int | float", "lines": "list[str]", "kv": "dict", "name": "str",
                "token": "str", "gpu_ids": "str"}[self.kind]
        return f"{base} | None" if self.optional else base


def suggest(name: str, known: Iterable[str]) -> str:
    """' Did you mean X?' for the closest known name, or ''."""
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" Did you mean {match[0]!r}?" if match else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bounds_text(spec: Spec) -> str:
    lo, hi = spec.minimum, spec.maximum
    lo_op = ">" if spec.min_exclusive else ">="
    if lo is not None and hi is not None:
        return f"between {lo:g} ({'exclusive' if spec.min_exclusive else 'inclusive'}) and {hi:g}"
    if lo is not None:
        return f"{lo_op} {lo:g}"
    return f"<= {hi:g}"


def _check_bounds(field: str, value: float, spec: Spec) -> None:
    lo, hi = spec.minimum, spec.maximum
    low_bad = lo is not None and (value <= lo if spec.min_exclusive else value < lo)
    high_bad = hi is not None and value > hi
    if low_bad or high_bad or (isinstance(value, float) and not math.isfinite(value)):
        raise ConfigError(field, f"{field} = {value!r} is out of range: use a value {_bounds_text(spec)}.")
    if spec.multiple_of and value % spec.multiple_of:
        below = int(value) - int(value) % spec.multiple_of
        raise ConfigError(field, f"{field} = {value!r} must be a multiple of {spec.multiple_of}: "
                                 f"use {max(below, spec.multiple_of)} or {below + spec.multiple_of}.")


def _as_int(field: str, value: Any) -> int:
    if isinstance(value, bool) or not _is_number(value):
        raise ConfigError(field, f"{field} = {value!r} ({type(value).__name__}) must be an integer, "
                                 "e.g. 10 (not a string or true/false).")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(field, f"{field} = {value!r} must be a finite whole number, e.g. 10.")
        if not value.is_integer():
            raise ConfigError(field, f"{field} = {value!r} must be a whole number: use {round(value)}.")
        return int(value)
    return value


def _as_float(field: str, value: Any) -> float:
    if not _is_number(value):
        raise ConfigError(field, f"{field} = {value!r} ({type(value).__name__}) must be a number, "
                                 "e.g. 0.0001 (not a string or true/false).")
    return float(value)


def _as_warmup(field: str, value: Any) -> int | float:
    """sd-scripts' lr_warmup_steps: an int is steps, a float below 1 a ratio of the total."""
    if not _is_number(value):
        raise ConfigError(field, f"{field} = {value!r} must be a number: whole steps (e.g. 100) or a "
                                 "ratio of the total steps below 1 (e.g. 0.05).")
    if value < 0:
        raise ConfigError(field, f"{field} = {value!r} must be >= 0.")
    if isinstance(value, float):
        if value == 0:
            return 0
        if value < 1:
            return value
        if value.is_integer():
            return int(value)  # 100.0 from JSON means 100 steps
        raise ConfigError(field, f"{field} = {value!r} is neither whole steps nor a ratio below 1: use "
                                 f"{round(value)} (steps) or e.g. 0.05 (5% of the steps).")
    return value


def _as_choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    if isinstance(value, str):
        for c in choices:
            if value.strip().lower() == c.lower():
                return c
    raise ConfigError(field, f"{field} = {value!r} is not supported: choose one of "
                             f"{', '.join(repr(c) for c in choices)}.{suggest(str(value), choices)}")


def _as_lines(field: str, value: Any) -> tuple[str, ...]:
    """Prompt lines: a list of strings, or one text with a line per prompt (the UI's textbox).
    Blank lines and '#' comments are dropped, as sd-scripts does when it reads a prompt file."""
    if isinstance(value, str):
        items: list = value.splitlines()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(field, f"{field} must be a list of prompt lines, got {type(value).__name__}.")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise ConfigError(field, f"{field}[{i}] = {item!r} must be a string (one prompt line).")
        if "\n" in item or "\r" in item:
            raise ConfigError(field, f"{field}[{i}] spans several lines: give one prompt per list item.")
        line = item.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return tuple(out)


def _as_kv(field: str, value: Any) -> dict:
    """optimizer_args: {"weight_decay": 0.01, "betas": [0.9, 0.999]}, written as key=value
    strings that sd-scripts splits on '=' and reads with ast.literal_eval."""
    if not isinstance(value, dict):
        raise ConfigError(field, f"{field} must be an object of name: value, e.g. "
                                 f"{{\"weight_decay\": 0.01}}, got {type(value).__name__}.")
    out = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(field, f"{field}: {key!r} is not an argument name (letters, digits, _).")
        scalars = (bool, int, float, str)
        ok = isinstance(item, scalars) or (isinstance(item, (list, tuple)) and item
                                           and all(_is_number(x) for x in item))
        if not ok or (isinstance(item, float) and not math.isfinite(item)):
            raise ConfigError(field, f"{field}: {key} = {item!r} must be a number, true/false, a string "
                                     "or a list of numbers.")
        if isinstance(item, str) and ("=" in item or "\n" in item):
            raise ConfigError(field, f"{field}: {key} = {item!r} must not contain '=' or a line break.")
        out[key] = list(item) if isinstance(item, (list, tuple)) else item
    return out


def validate_name(field: str, value: Any) -> str:
    """The output name: becomes <name>.safetensors in A1111's Lora folder."""
    if not isinstance(value, str):
        raise ConfigError(field, f"{field} must be a string, got {type(value).__name__}.")
    name = value.strip()
    if not name:
        raise ConfigError(field, f"{field} is empty: give the LoRA a name such as 'vadym_v1'.")
    if len(name) > NAME_MAX:
        raise ConfigError(field, f"{field} is {len(name)} characters long: keep it to {NAME_MAX} or fewer.")
    bad = sorted({c for c in name if c in _NAME_FORBIDDEN or ord(c) < 32})
    if bad:
        shown = ", ".join("NUL" if c == "\x00" else repr(c) for c in bad)
        raise ConfigError(field, f"{field} {value!r} contains {shown}, not allowed in a file name: "
                                 "use letters, digits, '-', '_' or spaces.")
    if ".." in name:
        raise ConfigError(field, f"{field} {value!r} contains '..': remove it.")
    if name.startswith("."):
        raise ConfigError(field, f"{field} {value!r} must not start with '.' (a hidden file).")
    if name.endswith("."):
        raise ConfigError(field, f"{field} {value!r} must not end with '.' (Windows drops it).")
    return name


def _as_token(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(field, f"{field} must be a string, got {type(value).__name__}.")
    if not value.strip():
        return ""
    from lib_lora_trainer.dataset.layout import validate_token
    try:
        return validate_token(value, field)
    except ValueError as exc:
        raise ConfigError(field, str(exc)) from None


def _as_gpu_ids(field: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        raise ConfigError(field, f"{field} = {value!r} must be GPU numbers such as \"0\" or \"0,1\".")
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts) or len(set(parts)) != len(parts):
        raise ConfigError(field, f"{field} = {value!r} must be distinct GPU numbers separated by commas, "
                                 "e.g. \"0\" or \"0,1\".")
    return ",".join(parts)


def coerce(field: str, value: Any, spec: Spec) -> Any:
    """The field's value in its canonical type, or ConfigError naming field, value and fix."""
    if value is None:
        if spec.optional:
            return None
        raise ConfigError(field, f"{field} is required (it cannot be empty/null).")
    kind = spec.kind
    if kind == "int":
        out: Any = _as_int(field, value)
    elif kind == "float":
        out = _as_float(field, value)
    elif kind == "warmup":
        return _as_warmup(field, value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(field, f"{field} = {value!r} must be true or false.")
        return value
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(field, f"{field} = {value!r} must be a string.")
        if "\x00" in value:
            raise ConfigError(field, f"{field} contains a NUL character: remove it.")
        out = value.strip()
        if not out and not spec.optional:
            raise ConfigError(field, f"{field} is empty: it is required.")
        return out or None
    elif kind == "choice":
        return _as_choice(field, value, spec.choices or ())
    elif kind == "lines":
        return _as_lines(field, value)
    elif kind == "kv":
        return _as_kv(field, value)
    elif kind == "name":
        return validate_name(field, value)
    elif kind == "token":
        return _as_token(field, value)
    elif kind == "gpu_ids":
        return _as_gpu_ids(field, value)
    else:  # a programming error in the field table
        raise AssertionError(f"unknown spec kind {kind!r} for {field}")
    _check_bounds(field, out, spec)
    return out
