"""Which interpreter the builtin engine trains with, in this order:
1. the `trainer_python` setting, else $LORA_TRAINER_PYTHON: a Python the user points to (really
   imported and version-checked first when the setting `validate_trainer_python` is on);
2. the managed venv (setting `trainer_env_dir`, given by the A1111 host): its python when ready,
   else a launcher that creates it first (inside the job, so the progress is in the job's log);
3. this interpreter (standalone and headless: our own environment already has everything)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping

from .managed import ManagedEnv
from .plan import TrainerEnvError

ENV_TRAINER_PYTHON = "LORA_TRAINER_PYTHON"
ENV_BASE_PYTHON = "LORA_TRAINER_BASE_PYTHON"


@dataclass(frozen=True)
class Interpreter:
    python: str                 # the interpreter that runs the trainer
    prefix: tuple[str, ...]     # argv that comes before the trainer's own arguments
    source: str                 # "setting" | "managed" | "managed-on-first-use" | "this"


def _value(settings: Mapping[str, Any], key: str, env_var: str | None = None) -> str | None:
    value = settings.get(key)
    if value not in (None, ""):
        return str(value)
    return (os.environ.get(env_var) or None) if env_var else None


def _flag(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key, default)
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


def managed_env(settings: Mapping[str, Any]) -> ManagedEnv | None:
    env_dir = _value(settings or {}, "trainer_env_dir")
    if not env_dir:
        return None
    return ManagedEnv(env_dir, base_python=_value(settings or {}, "trainer_base_python", ENV_BASE_PYTHON))


def choose_interpreter(settings: Mapping[str, Any] | None) -> Interpreter:
    settings = settings or {}
    explicit = _value(settings, "trainer_python", ENV_TRAINER_PYTHON)
    if explicit:
        if _flag(settings, "validate_trainer_python", False):  # the A1111 host asks for it
            from .user_python import check_user_python
            result = check_user_python(explicit)
            if not result.ok:
                raise TrainerEnvError(result.message())
        return Interpreter(explicit, (explicit,), "setting")
    env = managed_env(settings)
    if env is None:
        return Interpreter(sys.executable, (sys.executable,), "this")
    if env.ready():
        return Interpreter(str(env.python), (str(env.python),), "managed")
    if not _flag(settings, "trainer_env_install", True):
        raise TrainerEnvError(
            f"A1111 was started with --skip-install, so the trainer environment ({env.env_dir}) is not created. "
            f"Start A1111 once without --skip-install, or set 'Trainer environment (Python executable)' in "
            f"Settings > Train LoRA to a Python that has torch, diffusers, peft and accelerate.")
    launcher = [sys.executable, "-m", "lib_lora_trainer.trainer_env", "exec", "--env-dir", str(env.env_dir)]
    if env.base_python:
        launcher += ["--base-python", env.base_python]
    return Interpreter(str(env.python), (*launcher, "--"), "managed-on-first-use")
