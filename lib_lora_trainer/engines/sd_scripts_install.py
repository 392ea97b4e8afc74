"""sd-scripts installed and kept by the extension: `git clone --branch TAG` of a pinned release into
the data dir, its own venv with its own requirements, and a state a UI can show
(not installed -> installing -> ready | broken, with the reason). A user's own checkout (the
sd-scripts folder setting) is never touched: it wins over a managed one (engines/kohya.py).

<engines_dir>/sd-scripts/<tag>/   checkout/  venv/  state.json  install.log
Standard library only (runs inside the web UI's process); one installer per tag at a time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from lib_lora_trainer import atomic
from lib_lora_trainer.file_lock import file_lock

DEFAULT_URL = "https://github.com/kohya-ss/sd-scripts.git"


@dataclass(frozen=True)
class Release:
    tag: str
    commit: str | None      # what the tag pointed to when we ran it; None: not run here
    verified: bool          # a real training run through the job service passed on it here
    note: str = ""


# The newest release verified by a real run here is the default; newer ones can be chosen.
RELEASES = (
    Release("v0.10.1", "ae72efb", True, "verified here: a real SD1.5 run through the job service"),
    Release("v0.11.1", "6721028", False, "newest release (2026-06-16); not run here: its arguments are read "
                                         "from the checkout's own parser at launch"),
)
DEFAULT_VERSION = next(r.tag for r in RELEASES if r.verified)
STATES = ("not installed", "installing", "ready", "broken")
SD_SCRIPTS_PYTHONS = ((3, 10), (3, 11), (3, 12))   # what its pinned requirements install on
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
Progress = Callable[[str], None]


class InstallError(RuntimeError):
    """The install cannot start or failed; the message says what to do."""


@dataclass
class InstallState:
    version: str
    state: str = "not installed"
    url: str | None = None
    commit: str | None = None
    step: str | None = None         # what it is doing now ("step 3/5: pip install ...")
    reason: str | None = None       # why it is broken, as what to do about it
    pid: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    checkout: str | None = None
    python: str | None = None
    log: str | None = None
    warning: str | None = None      # e.g. the tag points elsewhere than the released commit

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_ref(version: str) -> str:
    """A tag or branch name that cannot be read as a git option or a path out of the folder."""
    version = str(version or "").strip()
    if not _REF.match(version) or ".." in version:
        raise InstallError(f"sd-scripts version {version!r} is not a tag name like {DEFAULT_VERSION}")
    return version


def check_url(url: str) -> str:
    url = str(url or "").strip()
    if not url or url.startswith("-"):
        raise InstallError(f"sd-scripts URL {url!r}: give a git URL (e.g. {DEFAULT_URL}) or a local git folder")
    return url


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SdScriptsInstaller:
    def __init__(self, engines_dir: str | Path, settings: Mapping[str, Any] | None = None):
        self.root = Path(engines_dir).absolute() / "sd-scripts"
        self.settings = dict(settings or {})

    def folder(self, version: str) -> Path:
        return self.root / check_ref(version).replace("/", "_")

    def checkout(self, version: str) -> Path:
        return self.folder(version) / "checkout"

    def python(self, version: str) -> Path:
        from lib_lora_trainer.trainer_env.plan import venv_python
        return venv_python(self.folder(version) / "venv")

    # --- state ------------------------------------------------------------------------
    def state(self, version: str) -> InstallState:
        path = self.folder(version) / "state.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state = InstallState(**{k: v for k, v in data.items() if k in InstallState.__dataclass_fields__})
        except (OSError, ValueError, TypeError):
            return InstallState(check_ref(version))
        if state.state == "installing" and not _pid_alive(state.pid):
            state.state, state.reason = "broken", (f"the install stopped at '{state.step}' (its process ended); "
                                                   f"install again")
        return state

    def states(self) -> list[InstallState]:
        """Every known release and every version found on disk, newest listed first."""
        names = [r.tag for r in RELEASES]
        if self.root.is_dir():
            names += sorted(p.name for p in self.root.iterdir() if (p / "state.json").is_file() and p.name not in names)
        return [self.state(name) for name in names]

    def ready(self, version: str) -> InstallState | None:
        state = self.state(version)
        return state if state.state == "ready" and self.python(version).is_file() else None

    def _save(self, state: InstallState) -> None:
        folder = self.folder(state.version)
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(folder / "state.json", json.dumps(state.to_dict(), indent=2))

    # --- install ------------------------------------------------------------------------
    def install(self, version: str = DEFAULT_VERSION, url: str | None = None, progress: Progress | None = None,
                force: bool = False) -> InstallState:
        """Clone, make the venv, install, verify; blocking. Returns the final state (ready or broken)."""
        version = check_ref(version)
        url = check_url(url or self.settings.get("sd_scripts_url") or DEFAULT_URL)
        folder = self.folder(version)
        folder.mkdir(parents=True, exist_ok=True)
        with file_lock(folder.with_name(folder.name + ".lock")):
            current = self.state(version)
            if current.state == "ready" and not force:
                return current
            state = InstallState(version, "installing", url=url, pid=os.getpid(), started_at=time.time(),
                                 checkout=str(self.checkout(version)), log=str(folder / "install.log"))
            with open(folder / "install.log", "a", encoding="utf-8") as log:
                def say(line: str) -> None:
                    log.write(line + "\n")
                    log.flush()
                    if progress:
                        progress(line)

                def step(text: str) -> None:
                    state.step = text
                    self._save(state)
                    say(f"[sd-scripts] {text}")

                try:
                    self._install(state, step, say)
                    state.state, state.step = "ready", None
                    say(f"[sd-scripts] {version} ({state.commit}) ready in {time.time() - state.started_at:.0f} s")
                except Exception as exc:  # noqa: BLE001 - every failure becomes a state the UI shows
                    state.state, state.reason = "broken", f"{exc}"
                    say(f"[sd-scripts] failed: {exc}")
                state.pid, state.finished_at = None, time.time()
                self._save(state)
            return state

    def _install(self, state: InstallState, step: Progress, say: Progress) -> None:
        from lib_lora_trainer.trainer_env.managed import TrainerEnvError, run_logged

        version, folder, checkout = state.version, self.folder(state.version), self.checkout(state.version)
        tool = lambda line: say(f"[sd-scripts]   {line}")  # noqa: E731
        for old in (checkout, folder / "venv"):
            if old.exists():
                shutil.rmtree(old)
        try:
            step(f"step 1/5: git clone --branch {version} {state.url}")
            run_logged(["git", "-c", "advice.detachedHead=false", "clone", "--depth", "1", "--branch", version,
                        "--", state.url, str(checkout)], tool, "git clone", prefix="")
            state.commit = _git(checkout, "rev-parse", "--short=7", "HEAD")
            released = next((r.commit for r in RELEASES if r.tag == version), None)
            if released and state.commit and not state.commit.startswith(released[:7]):
                state.warning = (f"{state.url} has {version} at {state.commit}, not at the released {released}: "
                                 f"a fork or a rebuilt repository")
                say(f"[sd-scripts] note: {state.warning}")
            from .kohya import checkout_problem
            problem = checkout_problem(checkout)
            if problem:
                raise InstallError(f"{state.url} at {version} is not sd-scripts: {problem}")
            base = self.base_python()
            step(f"step 2/5: python -m venv (Python {'.'.join(map(str, base.version))}: {base.python})")
            run_logged([base.python, "-m", "venv", str(folder / "venv")], tool, "creating the venv", prefix="")
            torch_args, pins, note = self.torch_plan(base, version)
            step(f"step 3/5: torch ({note})")
            if torch_args:
                run_logged(self._pip(version, *torch_args), tool, "installing torch", prefix="")
            step("step 4/5: pip install -r requirements.txt (several minutes on first use)")
            # requirements.txt ends with `-e .` (sd-scripts' own `library`): pip runs in the checkout
            run_logged(self._pip(version, *pins, "-r", "requirements.txt"), tool,
                       "installing sd-scripts' requirements", cwd=checkout, prefix="")
        except TrainerEnvError as exc:
            raise InstallError(str(exc)) from None
        step("step 5/5: checking that it runs (imports, and its own argument parser)")
        self.verify(version)
        state.python = str(self.python(version))

    def _pip(self, version: str, *args: str) -> list[str]:
        return [str(self.python(version)), "-m", "pip", "install", "--prefer-binary", "--progress-bar", "off",
                "--disable-pip-version-check", "--no-input", *args]

    def base_python(self):
        """The interpreter the venv is made from: the setting, the web UI's own if sd-scripts'
        pins install on it, else python3.10-3.12 on PATH."""
        from lib_lora_trainer.trainer_env.probe import ProbeError, probe

        explicit = self.settings.get("sd_scripts_base_python")
        candidates = [explicit] if explicit else [sys.executable] + [
            shutil.which(f"python{a}.{b}") for a, b in SD_SCRIPTS_PYTHONS]
        seen = []
        for python in filter(None, candidates):
            try:
                info = probe(python)
            except ProbeError as exc:
                seen.append(str(exc))
                continue
            if info.version[:2] in SD_SCRIPTS_PYTHONS or explicit:
                return info
            seen.append(f"{python} is Python {info.version[0]}.{info.version[1]}")
        raise InstallError("sd-scripts needs Python 3.10-3.12 for its pinned requirements, and none was found ("
                           + "; ".join(seen) + "): install one, or set the sd-scripts base Python setting")

    def torch_plan(self, base, version: str) -> tuple[list[str], list[str], str]:
        """(pip arguments of the torch step, pins kept while the requirements install, what that
        means): the torch setting; else the base Python's own torch made visible in the venv
        (nothing to download: A1111's CUDA build); else PyPI's (a large download)."""
        from .base import probe_python

        explicit = str(self.settings.get("sd_scripts_torch") or "").strip()
        if explicit:
            return shlex.split(explicit), [], f"pip install {explicit} (the sd-scripts torch setting)"
        found = probe_python(base.python, ("torch", "torchvision"))
        have = dict(found.modules) if found.ok else {}
        if not have.get("torch"):
            return ["torch", "torchvision"], [], ("pip install torch torchvision (a large download; the sd-scripts "
                                                  "torch setting chooses a build, e.g. with --index-url)")
        from lib_lora_trainer.trainer_env.managed import site_packages
        from lib_lora_trainer.trainer_env.plan import BRIDGE_PTH

        # One line after the venv's own site-packages: whatever the venv installs wins.
        (site_packages(self.python(version)) / BRIDGE_PTH).write_text(base.purelib + "\n", encoding="utf-8")
        pins = [f"{name}=={have[name]}" for name in ("torch", "torchvision") if have.get(name)]
        return [], pins, f"reusing {', '.join(pins)} of {base.python} (nothing to download)"

    def verify(self, version: str) -> None:
        from .base import probe_python
        from .kohya import REQUIRED_MODULES, KohyaEngine
        from .sd_scripts_args import accepted_args

        python, checkout = str(self.python(version)), self.checkout(version)
        engine = KohyaEngine(self.settings)
        env = engine.launch_env(checkout)
        probe = probe_python(python, REQUIRED_MODULES, env, refresh=True)
        if not probe.ok or probe.missing():
            raise InstallError(f"the new venv {python} cannot import {', '.join(probe.missing()) or probe.error}: "
                               f"see the install log, then install again")
        for script in ("train_network", "sdxl_train_network"):
            accepted_args(checkout, python, script, env, engine.args_cache_dir())


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=str(folder), capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)
    return done.stdout.strip() if done.returncode == 0 else ""


def start_install(engines_dir: str | Path, version: str = DEFAULT_VERSION,
                  settings: Mapping[str, Any] | None = None) -> InstallState:
    """The install in a background process (the UI and the API return at once; a page reload or a
    closed browser does not stop it). Its state file says how far it got."""
    import threading

    from lib_lora_trainer.child_env import with_package

    settings = dict(settings or {})
    installer = SdScriptsInstaller(engines_dir, settings)
    current = installer.state(version)
    if current.state == "installing":
        return current  # one at a time: the running one answers
    options = []
    for key, flag in (("sd_scripts_url", "--url"), ("sd_scripts_torch", "--torch"),
                      ("sd_scripts_base_python", "--base-python")):
        if str(settings.get(key) or "").strip():
            options += [f"{flag}={settings[key]}"]  # one token: a value starting with "-" stays a value
    folder = installer.folder(version)
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "lib_lora_trainer", "engines", "install", "--engines-dir",
                             str(Path(engines_dir).absolute()), "--version", check_ref(version), "--quiet", *options],
                            env=with_package(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "install.stderr.log", "ab"), start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True, name=f"lora-trainer-sd-scripts-install-{version}").start()
    started = InstallState(version, "installing", url=settings.get("sd_scripts_url") or DEFAULT_URL, pid=proc.pid,
                           step="starting", started_at=time.time(), log=str(folder / "install.log"))
    return started
