"""Checking a Python the user points to (Settings > Train LoRA > trainer environment): it must
really import torch, diffusers, transformers, peft and accelerate, in versions the builtin trainer
supports. Runs the imports in a child process (an argument list, no shell); cached per file."""

from __future__ import annotations

import json
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .requirements import MIN_VERSIONS, version_tuple

CHECK_TIMEOUT_S = 300.0  # importing diffusers + transformers + peft takes ~5 s warm, much more cold

_CODE = """\
import importlib, importlib.metadata as md, json, sys
out = {"python": "%d.%d.%d" % sys.version_info[:3], "packages": {}}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        out["packages"][name] = {"version": md.version(name)}
    except BaseException as exc:
        out["packages"][name] = {"error": "%s: %s" % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")}
print("USER_PYTHON_CHECK " + json.dumps(out))
"""


@dataclass(frozen=True)
class UserPythonCheck:
    python: str
    ok: bool
    versions: dict = field(default_factory=dict)     # name -> version of what imported
    problems: tuple[str, ...] = ()

    def message(self) -> str:
        if self.ok:
            return f"{self.python}: " + ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return (f"the trainer Python {self.python} cannot run the builtin trainer: " + "; ".join(self.problems) +
                ". Fix that environment, or clear the trainer Python setting so the extension makes its own.")


_cache: dict[tuple, UserPythonCheck] = {}
_cache_lock = threading.Lock()


def check_user_python(python: str, timeout: float = CHECK_TIMEOUT_S, refresh: bool = False) -> UserPythonCheck:
    path = Path(python)
    if not path.is_file():
        return UserPythonCheck(python, False, problems=(f"{python} does not exist (give the full path of the "
                                                        f"environment's python executable)",))
    key = (str(path), path.stat().st_mtime)
    with _cache_lock:
        if not refresh and key in _cache:
            return _cache[key]
    result = _check(python, timeout)
    with _cache_lock:
        _cache[key] = result
    return result


def _check(python: str, timeout: float) -> UserPythonCheck:
    names = list(MIN_VERSIONS)
    try:
        done = subprocess.run([python, "-c", _CODE, *names], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return UserPythonCheck(python, False, problems=(f"importing {', '.join(names)} took over {timeout:.0f} s",))
    except OSError as exc:
        return UserPythonCheck(python, False, problems=(f"it could not be started ({exc.strerror or exc})",))
    data = None
    for line in done.stdout.splitlines():
        if line.startswith("USER_PYTHON_CHECK "):
            data = json.loads(line[len("USER_PYTHON_CHECK "):])
    if data is None:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]) or "no output"
        return UserPythonCheck(python, False, problems=(f"it failed (exit code {done.returncode}): {tail}",))
    problems, versions = [], {}
    for name, result in data["packages"].items():
        if "error" in result:
            problems.append(f"cannot import {name} ({result['error']})")
            continue
        versions[name] = result["version"]
        minimum = MIN_VERSIONS.get(name)
        if minimum and version_tuple(result["version"]) < minimum:
            problems.append(f"{name} {result['version']} is older than the supported "
                            f"{'.'.join(map(str, minimum))} (see requirements/env.txt for the tested pins)")
    return UserPythonCheck(python, not problems, versions, tuple(problems))
