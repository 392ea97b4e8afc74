"""What creating the managed trainer venv will do: from which Python, whether the host's torch is
reused (no download) and which pins pip installs. Pure decisions plus a probe; nothing is run here."""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from .probe import ProbeError, PythonInfo, probe
from .requirements import ENV_TXT, MIN_PYTHON, MIN_TORCH, trainer_requirements, version_tuple

BRIDGE_PTH = "_lora_trainer_host_torch.pth"
CANDIDATE_PYTHONS = ("python3.13", "python3.12", "python3.11")


class TrainerEnvError(RuntimeError):
    """The trainer environment cannot be made or used; the message says what to do."""


def venv_python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


@dataclass(frozen=True)
class EnvPlan:
    env_dir: Path
    base: PythonInfo                   # the interpreter the venv is made from
    torch_from: str | None             # the host folder whose torch is reused, None: pip installs torch
    requirements: tuple[str, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def python(self) -> Path:
        return venv_python(self.env_dir)

    def venv_argv(self) -> list[str]:
        # Not --system-site-packages: for a host Python that is itself a venv (A1111's), that exposes
        # the *base* interpreter's packages, not the venv's torch. The bridge .pth below does it.
        return [self.base.python, "-m", "venv", str(self.env_dir)]

    def pip_argv(self) -> list[str]:
        return [str(self.python), "-m", "pip", "install", "--prefer-binary", "--progress-bar", "off",
                "--disable-pip-version-check", "--no-input", *self.requirements]

    def bridge_line(self) -> str | None:
        """The one line of the .pth file that makes the host's torch importable (after the venv's
        own site-packages, so whatever the venv installs wins)."""
        return self.torch_from


def find_base_python(host: PythonInfo, explicit: str | None = None) -> PythonInfo:
    """The interpreter for the venv: the explicit one, the host if new enough, else python3.1x on PATH."""
    if explicit:
        info = probe(explicit)
        if info.version[:2] < MIN_PYTHON:
            raise TrainerEnvError(_too_old(explicit, info))
        return info
    if host.version[:2] >= MIN_PYTHON:
        return host
    for name in CANDIDATE_PYTHONS:
        path = shutil.which(name)
        if path:
            try:
                info = probe(path)
            except ProbeError:
                continue
            if info.version[:2] >= MIN_PYTHON:
                return info
    raise TrainerEnvError(
        f"the trainer needs Python {'.'.join(map(str, MIN_PYTHON))} or newer (diffusers 0.42 and transformers 5.23 "
        f"require it), but A1111 runs on Python {'.'.join(map(str, host.version))} and no python3.11-3.13 is on "
        f"PATH. Install Python 3.11+, or set 'Trainer environment (Python executable)' in Settings > Train LoRA "
        f"to an environment that has torch, diffusers, peft and accelerate.")


def _too_old(python: str, info: PythonInfo) -> str:
    return (f"{python} is Python {'.'.join(map(str, info.version))}; the trainer environment needs "
            f"{'.'.join(map(str, MIN_PYTHON))} or newer")


def make_plan(env_dir: Path, host_python: str, *, base_python: str | None = None,
              requirements: Sequence[str] | None = None, env_txt: Path = ENV_TXT) -> EnvPlan:
    host = probe(host_python)
    base = find_base_python(host, base_python)
    notes = []
    torch_from = None
    if host.torch is None:
        notes.append(f"the host Python ({host.python}) has no torch: pip installs the pinned torch (a large download)")
    elif version_tuple(host.torch) < MIN_TORCH:
        notes.append(f"the host's torch {host.torch} is older than {'.'.join(map(str, MIN_TORCH))}, which the "
                     f"trainer's pins need: pip installs the pinned torch (a large download)")
    elif base.version[:2] != host.version[:2]:
        notes.append(f"the host's torch is built for Python {host.version[0]}.{host.version[1]}, the venv uses "
                     f"{base.version[0]}.{base.version[1]}: pip installs the pinned torch (a large download)")
    else:
        torch_from = host.torch_dir
        notes.append(f"reusing the host's torch {host.torch} from {host.torch_dir} (nothing to download for torch)")
    if requirements is None:
        pins = trainer_requirements(env_txt, reuse_torch=torch_from is not None)
        if torch_from is not None:
            pins.append(f"torch=={host.torch}")  # pip must keep the host's torch, never fetch another
        requirements = pins
    return EnvPlan(Path(env_dir), base, torch_from, tuple(requirements), tuple(notes))
