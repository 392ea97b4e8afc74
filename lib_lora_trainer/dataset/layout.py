"""kohya's dataset folder convention: `<repeats>_<class tokens>`, e.g. `100_VadymPanchenko`.

sd-scripts splits the folder name on "_": the first part must be an integer >= 1 (the repeats),
the rest joined back with "_" is the class tokens (`5_a_b` -> "a_b"). Anything else is ignored
with a warning and, if nothing is left, the run ends with "No data found" and exit code 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FORBIDDEN = re.compile(r"[/\\\x00:*?\"<>|]")


@dataclass(frozen=True)
class KohyaFolder:
    repeats: int
    class_tokens: str

    @property
    def name(self) -> str:
        return f"{self.repeats}_{self.class_tokens}"


def parse_folder_name(name: str) -> KohyaFolder | None:
    """Parse like sd-scripts does; None where sd-scripts would skip the folder."""
    head, sep, rest = name.partition("_")
    if not sep or not head.isdigit():
        return None
    repeats = int(head)
    if repeats < 1:
        return None
    return KohyaFolder(repeats, rest)


def validate_token(value: str, field: str) -> str:
    """A trigger word or class token must be usable inside one folder name."""
    value = value.strip()
    if not value:
        raise ValueError(f"{field} is empty: give a word such as 'VadymPanchenko'.")
    if _FORBIDDEN.search(value):
        raise ValueError(f"{field} {value!r} contains a character not allowed in a folder name "
                         "(/ \\ : * ? \" < > | or NUL): remove it.")
    if value in (".", "..") or value.startswith("."):
        raise ValueError(f"{field} {value!r} must not start with '.'.")
    if len(value) > 100:
        raise ValueError(f"{field} is {len(value)} characters long: keep it under 100.")
    return value


def folder_for(repeats: int, trigger: str, class_token: str | None = None) -> KohyaFolder:
    """The image folder `dataset prepare` writes: `<repeats>_<trigger>[ <class>]`."""
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}.")
    tokens = validate_token(trigger, "trigger")
    if class_token:
        tokens = f"{tokens} {validate_token(class_token, 'class token')}"
    return KohyaFolder(repeats, tokens)
