"""Asking an interpreter (in a child process, argument list, no shell) what it is and where its
torch lives, without importing torch. Standard library only."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROBE_TIMEOUT_S = 60.0

_CODE = """\
import importlib.metadata as md, importlib.util as u, json, sys, sysconfig
out = {"version": list(sys.version_info[:3]), "prefix": sys.prefix, "base_prefix": sys.base_prefix,
       "purelib": sysconfig.get_paths()["purelib"], "torch": None, "torch_dir": None}
try:
    spec = u.find_spec("torch")
except Exception:
    spec = None
if spec is not None and spec.submodule_search_locations:
    out["torch_dir"] = str(__import__("pathlib").Path(list(spec.submodule_search_locations)[0]).parent)
    try:
        out["torch"] = md.version("torch")
    except Exception:
        out["torch"] = ""
print("TRAINER_ENV_PROBE " + json.dumps(out))
"""


@dataclass(frozen=True)
class PythonInfo:
    python: str
    version: tuple[int, int, int]
    prefix: str
    base_prefix: str
    purelib: str                 # this interpreter's site-packages
    torch: str | None            # torch's version, None when it has none
    torch_dir: str | None        # the folder that holds the torch package

    @property
    def is_venv(self) -> bool:
        return self.prefix != self.base_prefix


class ProbeError(RuntimeError):
    pass


def probe(python: str | Path, timeout: float = PROBE_TIMEOUT_S) -> PythonInfo:
    try:
        done = subprocess.run([str(python), "-c", _CODE], capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ProbeError(f"{python} does not exist: give the full path of a python executable") from None
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{python} did not answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise ProbeError(f"{python} could not be started ({exc.strerror or exc})") from None
    for line in done.stdout.splitlines():
        if line.startswith("TRAINER_ENV_PROBE "):
            d = json.loads(line[len("TRAINER_ENV_PROBE "):])
            return PythonInfo(str(python), tuple(d["version"]), d["prefix"], d["base_prefix"], d["purelib"],
                              d["torch"], d["torch_dir"])
    tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:]) or "no output"
    raise ProbeError(f"{python} failed (exit code {done.returncode}): {tail}")
