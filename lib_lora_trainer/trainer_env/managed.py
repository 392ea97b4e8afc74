"""The trainer venv the extension creates on first use (under the data dir), with progress lines
a UI can show (they go to the job's log when a job triggers the creation). A stamp file, written
last, marks it complete; a half-made venv (cancelled, crashed) is removed and made again."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

from lib_lora_trainer.file_lock import file_lock

from .plan import BRIDGE_PTH, EnvPlan, TrainerEnvError, make_plan, venv_python
from .requirements import ENV_TXT

STAMP = "lora-trainer-env.json"
Progress = Callable[[str], None]


def _say(line: str) -> None:
    print(line, flush=True)


class ManagedEnv:
    def __init__(self, env_dir: str | Path, host_python: str = sys.executable, *, base_python: str | None = None,
                 requirements: Sequence[str] | None = None, env_txt: Path = ENV_TXT):
        self.env_dir = Path(env_dir).absolute()
        self.host_python = host_python
        self.base_python = base_python or None
        self.requirements = list(requirements) if requirements is not None else None
        self.env_txt = Path(env_txt)

    @property
    def python(self) -> Path:
        return venv_python(self.env_dir)

    @property
    def stamp_file(self) -> Path:
        return self.env_dir / STAMP

    def key(self) -> str:
        """Changes when what the venv should contain changes (the pins, the chosen Pythons)."""
        pins = self.requirements if self.requirements is not None else self.env_txt.read_text(encoding="utf-8")
        text = json.dumps([pins, self.host_python, self.base_python])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def stamp(self) -> dict | None:
        try:
            return json.loads(self.stamp_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def ready(self) -> bool:
        stamp = self.stamp()
        return bool(stamp) and stamp.get("key") == self.key() and self.python.is_file()

    def plan(self) -> EnvPlan:
        return make_plan(self.env_dir, self.host_python, base_python=self.base_python,
                         requirements=self.requirements, env_txt=self.env_txt)

    def ensure(self, progress: Progress = _say, detail_log: Path | None = None) -> Path:
        """The venv's python, creating the venv first if needed (one creator at a time).
        `progress` gets the step lines; the tools' own output (pip's) goes to `detail_log` when
        given (a job's log shows the steps, not pip's resolver chatter), else to `progress`."""
        if self.ready():
            return self.python
        with file_lock(self.env_dir.with_name(self.env_dir.name + ".lock")):
            if self.ready():  # another process made it while we waited
                return self.python
            if detail_log is None:
                self._create(progress, progress)
            else:
                progress(f"[trainer-env] the tools' output goes to {detail_log}")
                with open(detail_log, "a", encoding="utf-8") as log:
                    self._create(progress, lambda line: (log.write(line + "\n"), log.flush()))
        return self.python

    def _create(self, progress: Progress, detail: Progress) -> None:
        started = time.time()
        plan = self.plan()
        progress(f"[trainer-env] creating the trainer environment in {self.env_dir} (first use only)")
        for note in plan.notes:
            progress(f"[trainer-env] {note}")
        if self.env_dir.exists():
            progress("[trainer-env] removing an incomplete earlier attempt")
            shutil.rmtree(self.env_dir)
        self.env_dir.parent.mkdir(parents=True, exist_ok=True)
        progress(f"[trainer-env] step 1/3: python -m venv (Python {'.'.join(map(str, plan.base.version))})")
        run_logged(plan.venv_argv(), detail, "creating the venv")
        progress("[trainer-env] step 2/3: " + ("linking the host's torch" if plan.torch_from else "no torch to link"))
        if plan.torch_from:
            site = site_packages(plan.python)
            (site / BRIDGE_PTH).write_text(plan.bridge_line() + "\n", encoding="utf-8")
        progress(f"[trainer-env] step 3/3: pip install {' '.join(plan.requirements)} (several minutes on first use)")
        run_logged(plan.pip_argv(), detail, "installing the trainer's packages")
        stamp = {"key": self.key(), "created_at": time.time(), "base_python": plan.base.python,
                 "torch_from": plan.torch_from, "requirements": list(plan.requirements)}
        tmp = self.stamp_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(stamp, indent=2), encoding="utf-8")
        os.replace(tmp, self.stamp_file)
        progress(f"[trainer-env] ready in {time.time() - started:.0f} s: {plan.python}")


def run_logged(argv: list[str], progress: Progress, what: str, cwd: Path | None = None,
               prefix: str = "[trainer-env]   ") -> None:
    """Run a tool, every output line to `progress`; a failure raises with the last lines."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True, errors="replace", cwd=None if cwd is None else str(cwd))
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            progress(f"{prefix}{line}")
            tail = (tail + [line])[-5:]
    if proc.wait() != 0:
        raise TrainerEnvError(f"{what} failed (exit code {proc.returncode}): {' | '.join(tail) or 'no output'}. "
                              f"Command: {' '.join(argv)}")


def site_packages(python: Path) -> Path:
    done = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise TrainerEnvError(f"the new venv's Python {python} does not run: {done.stderr.strip()[-300:]}")
    return Path(done.stdout.strip())
