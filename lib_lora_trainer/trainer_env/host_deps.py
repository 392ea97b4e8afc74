"""The few small pure-Python packages the extension needs inside A1111's own process, kept in a
private folder (`<extension>/.deps`) instead of A1111's venv, so A1111's `pip freeze` never
changes (install.py fills the folder; `activate()` puts it on sys.path, after everything else, so
a package A1111 already has always wins). Standard library only: install.py imports this.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEPS_DIR = REPO_ROOT / ".deps"


def small_deps(version_info=sys.version_info) -> dict[str, str]:
    """import name -> exact pip requirement; each pure Python, without dependencies of its own."""
    deps = {"tomli_w": "tomli-w==1.0.0"}
    if version_info < (3, 11):  # A1111 1.10 runs on Python 3.10, which has no tomllib
        deps["tomli"] = "tomli==2.0.1"
    return deps


def in_private_dir(module: str, deps_dir: Path = DEPS_DIR) -> bool:
    return importlib.machinery.PathFinder.find_spec(module, [str(deps_dir)]) is not None


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(deps: dict[str, str] | None = None, deps_dir: Path = DEPS_DIR) -> dict[str, str]:
    """The deps neither the host Python nor the private folder has."""
    deps = small_deps() if deps is None else deps
    return {m: r for m, r in deps.items() if not importable(m) and not in_private_dir(m, deps_dir)}


def pip_args(requirements: list[str], deps_dir: Path = DEPS_DIR) -> list[str]:
    """pip arguments that install into the private folder only (never into the running venv)."""
    return ["install", "--no-deps", "--no-warn-script-location", "--upgrade", "--target", str(deps_dir),
            *requirements]


def activate(deps_dir: Path | None = None) -> None:
    """Make the private folder importable (appended: the host's own packages come first)."""
    deps_dir = DEPS_DIR if deps_dir is None else deps_dir
    folder = str(deps_dir)
    if deps_dir.is_dir() and folder not in sys.path:
        sys.path.append(folder)
