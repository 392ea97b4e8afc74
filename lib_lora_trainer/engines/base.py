"""What every training engine offers the job service, and the pieces the engines share.

Runs inside A1111's web process: standard library only. Nothing here imports torch,
diffusers or the trainer; the trainer environment is only ever asked questions through a
short subprocess (an argument list, never a shell string).

Settings (a plain mapping; empty strings count as unset), shared by the engines:
  trainer_python         interpreter of the trainer environment (else $LORA_TRAINER_PYTHON, else sys.executable)
  sd_scripts_path        a kohya sd-scripts checkout, or a kohya_ss folder holding sd-scripts/
  sd_scripts_python      interpreter for sd-scripts (else its venv, else trainer_python)
  sd_scripts_pythonpath  extra import paths for sd-scripts (a list, or os.pathsep-joined)
  webui_root             the A1111 folder: sd-scripts is looked for beside it
  tokenizer_cache_dir    where the offline CLIP tokenizers for sd-scripts are written
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

ENV_TRAINER_PYTHON = "LORA_TRAINER_PYTHON"
MODEL_TYPES = ("sd1", "sd2", "sdxl")
MIXED_PRECISIONS = ("no", "fp16", "bf16", "fp8")
PROBE_TIMEOUT_S = 30.0
_GPU_IDS = re.compile(r"^(all|\d+(,\d+)*)$")


class EngineUnavailable(RuntimeError):
    """The engine cannot build a command; the message says what the user should do."""


@dataclass(frozen=True)
class LaunchSpec:
    """A command for subprocess.Popen: argv (a list, never a shell string), the variables to set
    on top of the parent's environment, the working folder, and variables to remove."""

    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    unset: tuple[str, ...] = ("PYTHONHOME",)

    def full_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The complete environment for the child: base (default os.environ) + env - unset."""
        merged = dict(os.environ if base is None else base)
        for key in self.unset:
            merged.pop(key, None)
        merged.update(self.env)
        return merged


@dataclass(frozen=True)
class EngineStatus:
    available: bool
    version: str | None = None
    path: str | None = None       # the engine's code: our repo root, or the sd-scripts checkout
    python: str | None = None     # the interpreter that will run it
    reason: str | None = None     # why it is unavailable, written as what to do about it
    packages: Mapping[str, str | None] = field(default_factory=dict)  # name -> version found


@dataclass(frozen=True, kw_only=True)
class JobLaunch:
    """Everything an engine needs to build the training command of one job."""

    run_toml: Path
    model_type: str                       # "sd1" | "sd2" | "sdxl" (models.detect.ModelInfo.model_type)
    job_dir: Path
    dataset_toml: Path | None = None
    v_prediction: bool = False
    num_processes: int = 1
    mixed_precision: str = "no"
    gpu_ids: str | None = None            # accelerate's --gpu_ids, e.g. "0" or "0,1"
    num_cpu_threads_per_process: int = 1

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {', '.join(MODEL_TYPES)}, not {self.model_type!r}")
        if self.mixed_precision not in MIXED_PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, "
                             f"not {self.mixed_precision!r}")
        if not isinstance(self.num_processes, int) or self.num_processes < 1:
            raise ValueError(f"num_processes must be a whole number >= 1, not {self.num_processes!r}")
        if not isinstance(self.num_cpu_threads_per_process, int) or self.num_cpu_threads_per_process < 1:
            raise ValueError(f"num_cpu_threads_per_process must be a whole number >= 1, "
                             f"not {self.num_cpu_threads_per_process!r}")
        if self.gpu_ids is not None and not _GPU_IDS.match(self.gpu_ids.replace(" ", "")):
            raise ValueError(f"gpu_ids must look like '0' or '0,1' (or 'all'), not {self.gpu_ids!r}")


@runtime_checkable
class Engine(Protocol):
    name: str
    display_name: str

    def status(self, refresh: bool = False) -> EngineStatus: ...

    def capabilities(self) -> set[str]: ...

    def command(self, launch: JobLaunch) -> LaunchSpec: ...

    def extra_run_keys(self, launch: JobLaunch) -> dict[str, Any]: ...


# --- shared helpers ----------------------------------------------------------------

def setting(settings: Mapping[str, Any] | None, key: str, env_var: str | None = None) -> str | None:
    """A string setting, else the environment variable, else None (empty strings count as unset)."""
    value = (settings or {}).get(key)
    if value not in (None, ""):
        return str(value)
    if env_var:
        value = os.environ.get(env_var, "")
        if value:
            return value
    return None


def trainer_python(settings: Mapping[str, Any] | None = None) -> str:
    """The trainer environment's interpreter: setting, $LORA_TRAINER_PYTHON, else this interpreter."""
    return setting(settings, "trainer_python", ENV_TRAINER_PYTHON) or sys.executable


def path_list(value: Any) -> list[str]:
    """A list of paths from a list/tuple or an os.pathsep-joined string."""
    if value in (None, ""):
        return []
    items = value.split(os.pathsep) if isinstance(value, str) else [str(v) for v in value]
    return [p for p in items if p]


def interpreter_problem(python: str) -> str | None:
    """None when `python` is an executable file, else what is wrong with it."""
    path = Path(python)
    if not path.is_file():
        return f"{python} not found"
    if not os.access(path, os.X_OK):
        return f"{python} is not executable"
    return None


def accelerate_launch_args(launch: JobLaunch) -> list[str]:
    """`-m accelerate.commands.launch` and its flags: everything is explicit, so the user's own
    accelerate default config matters as little as possible."""
    argv = ["-m", "accelerate.commands.launch",
            "--num_processes", str(launch.num_processes),
            "--num_machines", "1",
            "--mixed_precision", launch.mixed_precision,
            "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", str(launch.num_cpu_threads_per_process)]
    if launch.num_processes > 1:
        argv.append("--multi_gpu")
    if launch.gpu_ids:
        argv += ["--gpu_ids", launch.gpu_ids.replace(" ", "")]
    return argv


def config_args(launch: JobLaunch) -> list[str]:
    argv = ["--config_file", str(Path(launch.run_toml).absolute())]
    if launch.dataset_toml is not None:
        argv += ["--dataset_config", str(Path(launch.dataset_toml).absolute())]
    return argv


# --- asking another interpreter what it has ------------------------------------------

_PROBE_CODE = """\
import importlib.metadata as md, importlib.util as u, json, sys
found = {}
for name in sys.argv[1:]:
    try:
        ok = u.find_spec(name) is not None
    except Exception:
        ok = False
    version = None
    if ok:
        try:
            version = md.version(name)
        except Exception:
            version = ""
    found[name] = version
print("PROBE_JSON " + json.dumps({"python": "%d.%d.%d" % sys.version_info[:3], "modules": found}))
"""


@dataclass(frozen=True)
class Probe:
    ok: bool                                   # the interpreter ran and answered
    python_version: str | None = None
    modules: Mapping[str, str | None] = field(default_factory=dict)  # None: not importable
    error: str | None = None

    def missing(self) -> list[str]:
        return [name for name, version in self.modules.items() if version is None]


_probe_cache: dict[tuple, Probe] = {}
_probe_lock = threading.Lock()


def clear_probe_cache() -> None:
    with _probe_lock:
        _probe_cache.clear()


def probe_python(python: str, modules: tuple[str, ...], env: Mapping[str, str] | None = None,
                 timeout: float = PROBE_TIMEOUT_S, refresh: bool = False) -> Probe:
    """Which of `modules` the interpreter can find (importlib.util.find_spec, in a child process,
    so nothing is imported here), with their installed versions. Cached per interpreter,
    module list and PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    try:
        mtime = Path(python).stat().st_mtime
    except OSError:
        mtime = None
    key = (python, mtime, tuple(modules), env.get("PYTHONPATH", ""))
    with _probe_lock:
        if not refresh and key in _probe_cache:
            return _probe_cache[key]
    result = _run_probe(python, modules, env, timeout)
    with _probe_lock:
        _probe_cache[key] = result
    return result


def _run_probe(python: str, modules: tuple[str, ...], env: dict[str, str], timeout: float) -> Probe:
    try:
        proc = subprocess.run([python, "-c", _PROBE_CODE, *modules], env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Probe(False, error=f"{python} did not answer within {timeout:.0f} s")
    except OSError as exc:
        return Probe(False, error=f"{python} could not be started ({exc.strerror or exc})")
    for line in proc.stdout.splitlines():
        if line.startswith("PROBE_JSON "):
            try:
                data = json.loads(line[len("PROBE_JSON "):])
                return Probe(True, data["python"], data["modules"])
            except (ValueError, KeyError, TypeError):
                break
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return Probe(False, error=f"{python} failed (exit code {proc.returncode}): {' | '.join(tail) or 'no output'}")
