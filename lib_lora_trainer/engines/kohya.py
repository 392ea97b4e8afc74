"""The kohya engine: the user's own sd-scripts checkout (train_network.py / sdxl_train_network.py),
run with its own Python under `accelerate launch`. Standard library only at import time.

Finding the checkout, first match wins: the sd_scripts_path setting, $LORA_TRAINER_SD_SCRIPTS,
the install the extension made (sd_scripts_install.py; the sd_scripts_version setting picks the
release), then beside the web UI (<webui>/../kohya_ss/sd-scripts, <webui>/../sd-scripts) and in the
home folder (~/kohya_ss/sd-scripts, ~/sd-scripts). A path given explicitly that is not a checkout is
reported as such, never silently replaced by another one.

Before every launch the run.toml is checked against the checkout's own argument parser
(sd_scripts_args.py): a key that version would ignore stops the job, named, instead of a silent no-op.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .base import (EngineStatus, EngineUnavailable, JobLaunch, LaunchSpec, accelerate_launch_args,
                   config_args, interpreter_problem, path_list, probe_python, setting, trainer_python)

ENV_SD_SCRIPTS = "LORA_TRAINER_SD_SCRIPTS"
ENV_SD_SCRIPTS_PYTHON = "LORA_TRAINER_SD_SCRIPTS_PYTHON"
CHECKOUT_FILES = ("train_network.py", "sdxl_train_network.py", "library/train_util.py")
REQUIRED_MODULES = ("torch", "accelerate", "diffusers", "transformers", "safetensors", "toml", "voluptuous")
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
GIT_TIMEOUT_S = 10.0
_HOW_TO_SET = f"set the sd-scripts folder in the settings or the {ENV_SD_SCRIPTS} environment variable"


def checkout_problem(folder: Path) -> str | None:
    """None for a usable sd-scripts checkout, else what is missing."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    missing = [f for f in CHECKOUT_FILES if not (folder / f).is_file()]
    if missing:
        return f"{folder} is not an sd-scripts checkout (missing {', '.join(missing)})"
    return None


def venv_python(venv: Path, windows: bool | None = None) -> list[Path]:
    """Where a venv keeps its interpreter."""
    windows = os.name == "nt" if windows is None else windows
    return [venv / "Scripts" / "python.exe"] if windows else [venv / "bin" / "python", venv / "bin" / "python3"]


def script_for(model_type: str, v_prediction: bool = False) -> tuple[str, list[str]]:
    """(script, extra flags): sd-scripts does not detect the model version by itself."""
    if model_type == "sdxl":
        script, flags = "sdxl_train_network.py", []
    elif model_type == "sd2":
        script, flags = "train_network.py", ["--v2"]
    elif model_type == "sd1":
        script, flags = "train_network.py", []
    else:
        raise ValueError(f"unknown model type {model_type!r}; expected sd1, sd2 or sdxl")
    if v_prediction:
        flags.append("--v_parameterization")
    return script, flags


def checkout_version(folder: Path) -> str:
    """`git describe --tags` for a git checkout (also a submodule), else a version written in
    setup.py / pyproject.toml, else "unknown"."""
    if (folder / ".git").exists():
        try:
            proc = subprocess.run(["git", "describe", "--tags", "--always", "--dirty"], cwd=str(folder),
                                  capture_output=True, text=True, timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL)
            if proc.returncode == 0 and proc.stdout.strip():
                return proc.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass  # no git, or a hung one: fall back to the files
    for name in ("pyproject.toml", "setup.py"):
        try:
            text = (folder / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = re.search(r"""^\s*version\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
        if m:
            return m.group(1)
    return "unknown"


def _run_toml_value(run_toml: Path, key: str) -> str | None:
    from lib_lora_trainer import toml_read

    try:
        value = toml_read.loads(Path(run_toml).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Located:
    checkout: Path | None
    python: str | None
    reason: str | None     # why nothing usable was found, as what to do about it
    how: str = ""          # "setting" | "env" | "beside the web UI" | "home"


class KohyaEngine:
    name = "kohya"
    display_name = "kohya sd-scripts"

    def __init__(self, settings: Mapping[str, Any] | None = None):
        self.settings = dict(settings or {})

    # --- discovery -------------------------------------------------------------
    def candidate_paths(self) -> list[tuple[Path, str]]:
        out = []
        webui = setting(self.settings, "webui_root")
        if webui:
            parent = Path(webui).expanduser().absolute().parent
            out += [(parent / "kohya_ss" / "sd-scripts", "beside the web UI"),
                    (parent / "sd-scripts", "beside the web UI")]
        home = Path(os.path.expanduser("~"))
        out += [(home / "kohya_ss" / "sd-scripts", "home"), (home / "sd-scripts", "home")]
        return out

    def find_checkout(self) -> tuple[Path | None, str | None, str]:
        """(checkout, reason, how)."""
        explicit = ((setting(self.settings, "sd_scripts_path"), "setting"), (os.environ.get(ENV_SD_SCRIPTS), "env"))
        for given, how in explicit:
            if not given:
                continue
            folder = Path(given).expanduser().absolute()
            problem = checkout_problem(folder)
            if problem and checkout_problem(folder / "sd-scripts") is None:
                return folder / "sd-scripts", None, how  # a kohya_ss folder: its submodule
            if problem:
                where = "the sd-scripts folder setting" if how == "setting" else ENV_SD_SCRIPTS
                return None, f"{problem}; fix {where} (it must point to a kohya-ss/sd-scripts checkout).", how
            return folder, None, how
        version = self.managed_version()
        if version:
            return self.installer().checkout(version), None, "installed by the extension"
        for folder, how in self.candidate_paths():
            if checkout_problem(folder) is None:
                return folder, None, how
        looked = ", ".join(str(p) for p, _ in self.candidate_paths())
        return None, (f"no sd-scripts checkout found: install it (Settings > Train LoRA, or python -m "
                      f"lib_lora_trainer engines install) or {_HOW_TO_SET} (looked in {looked})."), ""

    # --- the install the extension manages ----------------------------------------------
    def installer(self):
        """The managed installs, when the settings say where the data dir keeps them."""
        from .sd_scripts_install import SdScriptsInstaller

        engines_dir = setting(self.settings, "engines_dir")
        return SdScriptsInstaller(engines_dir, self.settings) if engines_dir else None

    def managed_version(self) -> str | None:
        """The managed install in use: the sd_scripts_version setting's (only that one), else the
        default release, else any ready one; None when none is ready."""
        from .sd_scripts_install import DEFAULT_VERSION

        installer = self.installer()
        if installer is None:
            return None
        chosen = setting(self.settings, "sd_scripts_version")
        if chosen:
            return chosen if installer.ready(chosen) else None
        if installer.ready(DEFAULT_VERSION):
            return DEFAULT_VERSION
        return next((s.version for s in installer.states() if installer.ready(s.version)), None)

    def args_cache_dir(self) -> Path:
        engines_dir = setting(self.settings, "engines_dir")
        base = Path(engines_dir) if engines_dir else Path(os.path.expanduser("~")) / ".cache" / "lora-trainer"
        return base / "sd-scripts-args"

    def find_python(self, checkout: Path) -> tuple[str | None, str | None]:
        """(interpreter, reason): explicit setting, the checkout's venv, kohya_ss's venv, trainer Python."""
        explicit = setting(self.settings, "sd_scripts_python", ENV_SD_SCRIPTS_PYTHON)
        if explicit:
            problem = interpreter_problem(str(Path(explicit).expanduser()))
            if problem:
                return None, f"{problem}; fix the sd-scripts Python setting or {ENV_SD_SCRIPTS_PYTHON}."
            return str(Path(explicit).expanduser()), None
        broken = []
        for venv in (checkout / "venv", checkout / ".venv", checkout.parent / "venv"):
            if not venv.is_dir():
                continue
            for candidate in venv_python(venv):
                if interpreter_problem(str(candidate)) is None:
                    return str(candidate), None  # not resolved: a venv's python is often a symlink
            broken.append(venv_python(venv)[0])
        if broken:
            return None, (f"{broken[0]} not found: the venv at {broken[0].parent.parent} looks broken. Recreate it "
                          f"(python -m venv, then pip install -r requirements.txt inside {checkout}) or set "
                          f"the sd-scripts Python setting.")
        fallback = trainer_python(self.settings)
        problem = interpreter_problem(fallback)
        if problem:
            return None, (f"no venv in {checkout} and the trainer Python {problem}: create a venv there or "
                          f"set the sd-scripts Python setting.")
        return fallback, None

    def locate(self) -> Located:
        checkout, reason, how = self.find_checkout()
        if checkout is None:
            return Located(None, None, reason, how)
        python, reason = self.find_python(checkout)
        return Located(checkout, python, reason, how)

    # --- the Engine protocol --------------------------------------------------------
    def capabilities(self) -> set[str]:
        # No tiny_models: sd-scripts hard-codes the SD1/SD2/SDXL sizes.
        return {"sd1", "sd2", "sdxl", "resume", "samples", "torch_compile", "multi_gpu"}

    def env(self, checkout: Path) -> dict[str, str]:
        paths = [str(checkout), *path_list(self.settings.get("sd_scripts_pythonpath"))]
        # COLUMNS: rich wraps log lines at the console width when stderr is not a terminal.
        return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}

    def launch_env(self, checkout: Path) -> dict[str, str]:
        """The whole environment sd-scripts runs with (for the questions asked of it)."""
        return LaunchSpec([], self.env(checkout)).full_env()

    def check_run(self, launch: JobLaunch, found: Located | None = None) -> list[str]:
        """Adapt run.toml to the checkout's version and refuse keys it would ignore. Returns the
        notes of what was adapted; raises EngineUnavailable naming the ignored keys. Nothing to
        check while no checkout is found (the launch says so)."""
        from lib_lora_trainer import atomic, toml_read

        from .sd_scripts_args import (SdScriptsArgsError, accepted_args, adapt, ignored_keys, ignored_message,
                                      unchecked_values)

        found = found or self.locate()
        if found.checkout is None or found.python is None:
            return []
        script = script_for(launch.model_type, launch.v_prediction)[0].removesuffix(".py")
        try:
            accepted = accepted_args(found.checkout, found.python, script, self.launch_env(found.checkout),
                                     self.args_cache_dir())
        except SdScriptsArgsError as exc:
            raise EngineUnavailable(str(exc)) from None
        run_toml = Path(launch.run_toml)
        run = toml_read.loads(run_toml.read_text(encoding="utf-8"))
        adapted, notes = adapt(run, accepted)
        if adapted != run:
            import tomli_w  # the job service's dependency (host_deps), not the engine's

            atomic.write_text(run_toml, tomli_w.dumps(adapted))
        ignored = ignored_keys(adapted, accepted)
        if ignored:
            raise EngineUnavailable(ignored_message(ignored, accepted, checkout_version(found.checkout),
                                                    found.checkout, run_toml))
        wrong = unchecked_values(adapted, accepted)
        if wrong:
            raise EngineUnavailable(f"{run_toml}: {'; '.join(wrong)}. sd-scripts {checkout_version(found.checkout)} "
                                    f"takes TOML values unchecked and would misread these: fix them.")
        return notes

    def command(self, launch: JobLaunch) -> LaunchSpec:
        found = self.locate()
        if found.checkout is None or found.python is None:
            raise EngineUnavailable(found.reason)
        self.check_run(launch, found)
        script, flags = script_for(launch.model_type, launch.v_prediction)
        argv = [found.python, *accelerate_launch_args(launch), str(found.checkout / script), *config_args(launch),
                *flags]
        return LaunchSpec(argv=argv, env=self.env(found.checkout), cwd=str(found.checkout))

    def tokenizer_cache_dir(self, launch: JobLaunch) -> Path:
        """The setting, else the folder run.toml already names, else <job>/tokenizer_cache."""
        configured = setting(self.settings, "tokenizer_cache_dir") or _run_toml_value(launch.run_toml,
                                                                                       "tokenizer_cache_dir")
        return Path(configured).expanduser() if configured else Path(launch.job_dir) / "tokenizer_cache"

    def extra_run_keys(self, launch: JobLaunch) -> dict[str, Any]:
        """console_log_simple keeps log lines whole; the tokenizer cache lets sd-scripts run offline."""
        from lib_lora_trainer.tokenizer import HUB_IDS, write_tokenizer_cache_dir  # needs `regex`: load lazily

        cache = self.tokenizer_cache_dir(launch).absolute()
        sdxl = launch.model_type == "sdxl"
        wanted = [HUB_IDS["sd1"]] + ([HUB_IDS["sdxl_bigg"]] if sdxl else [])
        folders = [cache / hub_id.replace("/", "_") for hub_id in wanted]
        if not all((f / name).is_file() for f in folders for name in TOKENIZER_FILES):
            write_tokenizer_cache_dir(cache, include_sdxl=sdxl)
        return {"console_log_simple": True, "tokenizer_cache_dir": str(cache)}

    def status(self, refresh: bool = False) -> EngineStatus:
        found = self.locate()
        path = str(found.checkout) if found.checkout else None
        if found.checkout is None or found.python is None:
            return EngineStatus(False, path=path, python=found.python, reason=found.reason)
        version = checkout_version(found.checkout)
        spec = LaunchSpec([], self.env(found.checkout))
        probe = probe_python(found.python, REQUIRED_MODULES, spec.full_env(), refresh=refresh)
        common = dict(version=version, path=path, python=found.python)
        if not probe.ok:
            return EngineStatus(False, reason=f"the sd-scripts Python does not work: {probe.error}", **common)
        missing = probe.missing()
        if missing:
            return EngineStatus(False, reason=f"{found.python} lacks {', '.join(missing)}: install sd-scripts' "
                                              f"requirements into it (pip install -r requirements.txt inside "
                                              f"{found.checkout}, plus torch), or set the sd-scripts Python "
                                              f"setting to the kohya venv's interpreter.",
                                packages=dict(probe.modules), **common)
        return EngineStatus(True, packages=dict(probe.modules), **common)
