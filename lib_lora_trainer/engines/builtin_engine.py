"""The builtin engine: our own trainer (lib_lora_trainer.engines.builtin.train) in the trainer
environment, under `accelerate launch`. Standard library only at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import lib_lora_trainer

from .base import (EngineStatus, JobLaunch, LaunchSpec, accelerate_launch_args, config_args,
                   interpreter_problem, probe_python)

TRAIN_MODULE = "lib_lora_trainer.engines.builtin.train"
# The repository root: the folder that holds the lib_lora_trainer package.
REPO_ROOT = Path(lib_lora_trainer.__file__).resolve().parent.parent
REQUIRED_MODULES = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors")
MIN_PYTHON = (3, 10)


class BuiltinEngine:
    name = "builtin"
    display_name = "Built-in trainer (diffusers + peft)"

    def __init__(self, settings: Mapping[str, Any] | None = None):
        self.settings = dict(settings or {})

    @property
    def python(self) -> str:
        return self.interpreter().python

    def interpreter(self):
        """The trainer's interpreter: the user's Python, the managed venv (or, on its first use, a
        launcher that creates it), else this one (trainer_env/choose.py)."""
        from lib_lora_trainer.trainer_env.choose import choose_interpreter
        return choose_interpreter(self.settings)

    def capabilities(self) -> set[str]:
        return {"sd1", "sd2", "sdxl", "tiny_models", "resume", "samples", "torch_compile", "multi_gpu"}

    def env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false"}

    def command(self, launch: JobLaunch) -> LaunchSpec:
        argv = [*self.interpreter().prefix, *accelerate_launch_args(launch), "-m", TRAIN_MODULE,
                *config_args(launch)]
        return LaunchSpec(argv=argv, env=self.env(), cwd=str(Path(launch.job_dir).absolute()))

    def extra_run_keys(self, launch: JobLaunch) -> dict[str, Any]:
        return {}  # the builtin trainer prints plain lines and ships its own tokenizer

    def status(self, refresh: bool = False) -> EngineStatus:
        from lib_lora_trainer.trainer_env.plan import TrainerEnvError
        common = dict(version=lib_lora_trainer.__version__, path=str(REPO_ROOT))
        try:
            chosen = self.interpreter()
        except TrainerEnvError as exc:
            return EngineStatus(False, reason=str(exc), **common)
        python = chosen.python
        common["python"] = python
        if chosen.source == "managed-on-first-use":  # made by the first job, its progress in the job's log
            return EngineStatus(True, **common)
        problem = interpreter_problem(python)
        if problem:
            return EngineStatus(False, reason=f"trainer Python {problem}. Set the trainer Python setting or "
                                              f"LORA_TRAINER_PYTHON to the interpreter of the trainer "
                                              f"environment.", **common)
        spec = LaunchSpec([], self.env())
        probe = probe_python(python, REQUIRED_MODULES + ("lib_lora_trainer",), spec.full_env(), refresh=refresh)
        if not probe.ok:
            return EngineStatus(False, reason=f"the trainer Python does not work: {probe.error}", **common)
        packages = {k: v for k, v in probe.modules.items() if k != "lib_lora_trainer"}
        version = tuple(int(p) for p in probe.python_version.split("."))
        if version < MIN_PYTHON:
            return EngineStatus(False, reason=f"{python} is Python {probe.python_version}; the trainer needs "
                                              f"Python {'.'.join(map(str, MIN_PYTHON))} or newer.",
                                packages=packages, **common)
        missing = probe.missing()
        if missing:
            return EngineStatus(False, reason=f"the trainer environment ({python}) lacks {', '.join(missing)}: "
                                              f"install the trainer requirements into it "
                                              f"({python} -m pip install -r {REPO_ROOT / 'requirements' / 'env.txt'})"
                                              f" or point the trainer Python setting at an environment that has "
                                              f"them.", packages=packages, **common)
        return EngineStatus(True, packages=packages, **common)
