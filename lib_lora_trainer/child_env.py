"""The environment of a Python subprocess that runs our own code (`-m lib_lora_trainer...`).

A host starts it from its own working folder, with its own PYTHONPATH: inside A1111 the
extension folder is on sys.path only while A1111 imports our scripts, and `<ext>/.deps` only
because we put it there. A child inherits neither, so it must be given both explicitly.
Standard library only: the job supervisor's parent imports it inside the host's Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping

PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder that holds lib_lora_trainer/
DEPS_DIR = PACKAGE_ROOT / ".deps"  # install.py's private folder (trainer_env/host_deps.py)


def join_path(entries: Iterable[str]) -> str:
    """os.pathsep-joined, empty entries and repeats dropped, order kept."""
    seen: list[str] = []
    for entry in entries:
        if entry and entry not in seen:
            seen.append(entry)
    return os.pathsep.join(seen)


def python_path(existing: str | None = None) -> str:
    """Our package first (whatever the child's cwd), then what was there, then the private deps
    (last, so a package the interpreter already has wins, as in the host process)."""
    parts = [str(PACKAGE_ROOT), *(existing or "").split(os.pathsep)]
    if DEPS_DIR.is_dir():
        parts.append(str(DEPS_DIR))
    return join_path(parts)


def with_package(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of env (default: this process's) in which `import lib_lora_trainer` works."""
    merged = dict(os.environ if env is None else env)
    merged.pop("PYTHONHOME", None)  # a host's PYTHONHOME would send another interpreter astray
    merged["PYTHONPATH"] = python_path(merged.get("PYTHONPATH"))
    return merged
