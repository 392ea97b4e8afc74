"""Start and stop a real AUTOMATIC1111 web UI (v1.10.1, on CPU) for the host test tier.

Standard library only: imported by the pytest host tier and by setup_a1111.py (which builds the
host and prints the same command). The host itself (checkout, venv, repositories/, models) is
made by `tests/host/setup_a1111.py`; nothing of it lives in this repository.

A1111 1.10.1 dies ("RuntimeError: Cannot add middleware after an application has started")
when an HTTP request arrives between its middleware setup and its API setup, so `A1111Process`
waits for the "Startup time" line before anything may talk to it.

    from host.a1111_host import A1111Process, start_command
    argv, env = start_command("/work/hosts/a1111", port=7871, ckpt_dir=..., lora_dir=..., data_dir=tmp)
    with A1111Process(argv, env, cwd="/work/hosts/a1111", log_path=tmp / "a1111.log") as host:
        host.wait_ready(timeout_s=300)
        get_json(host.url + "/lora-trainer/v1/presets")
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Iterable, Mapping

# At a line's start, or after another thread's unfinished line (the model loads while the UI starts:
# "Applying attention optimization: InvokeAI... Startup time: 8.6s (...)" was seen).
STARTUP_LINE = re.compile(r"(?:^|\.\.\. )Startup time: \d")
# Variables that would change what this A1111 does behind the test's back: A1111 appends
# COMMANDLINE_ARGS to its argv, and a PYTHONPATH/venv of the calling process is not A1111's.
DROPPED_ENV = ("COMMANDLINE_ARGS", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "IGNORE_CMD_ARGS_ERRORS",
               "INDEX_URL", "TORCH_COMMAND", "REQS_FILE")
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "GRADIO_ANALYTICS_ENABLED": "False", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1",
               "PYTHONIOENCODING": "utf-8"}
CPU_ARGS = ("--skip-prepare-environment", "--skip-install", "--skip-torch-cuda-test", "--use-cpu", "all",
            "--no-half", "--no-download-sd-model", "--api")


def venv_python(a1111) -> Path:
    return Path(a1111) / "venv" / "bin" / "python"


def start_command(a1111, *, port: int, ckpt_dir, lora_dir, python=None, ckpt=None, data_dir=None,
                  trainer_python=None, sd_scripts=None, settings_dir=None, nowebui: bool = False,
                  extra_args: Iterable[str] = (), base_env: Mapping[str, str] | None = None,
                  ) -> tuple[list[str], dict[str, str]]:
    """(argv, env) that start A1111 headless on CPU, bound to 127.0.0.1:port, run with cwd=a1111.

    data_dir       LORA_TRAINER_DATA_DIR: the extension's job database and folders (a clean one per test)
    trainer_python LORA_TRAINER_PYTHON: the Python of the builtin engine (e.g. <repo>/.venv/bin/python)
    sd_scripts     LORA_TRAINER_SD_SCRIPTS: an sd-scripts checkout (its venv is found at <checkout>/venv)
    settings_dir   A1111's config.json / ui-config.json go there instead of the webui folder
    ckpt           the checkpoint loaded at start (default: A1111's choice, the first in ckpt_dir)
    Inherited LORA_TRAINER_* variables are dropped, so only what is given here reaches the extension.
    """
    a1111 = Path(a1111)
    argv = [str(python or venv_python(a1111)), "launch.py", *CPU_ARGS,
            "--port", str(int(port)),
            "--ckpt-dir", str(ckpt_dir), "--lora-dir", str(lora_dir)]
    if nowebui:
        argv.append("--nowebui")
    if ckpt:
        argv += ["--ckpt", str(ckpt)]
    if settings_dir:
        argv += ["--ui-settings-file", str(Path(settings_dir) / "config.json"),
                 "--ui-config-file", str(Path(settings_dir) / "ui-config.json")]
    argv += [str(a) for a in extra_args]
    env = {k: v for k, v in (os.environ if base_env is None else base_env).items()
           if k not in DROPPED_ENV and not k.startswith("LORA_TRAINER_")}
    env.update(OFFLINE_ENV)
    for key, value in (("LORA_TRAINER_DATA_DIR", data_dir), ("LORA_TRAINER_PYTHON", trainer_python),
                       ("LORA_TRAINER_SD_SCRIPTS", sd_scripts)):
        if value:
            env[key] = str(value)
    return argv, env


def shell_line(argv: list[str], env: Mapping[str, str], cwd, base_env: Mapping[str, str] | None = None) -> str:
    """The same command as one line for a terminal: `cd DIR && env K=V ... python launch.py ...`
    (the offline and LORA_TRAINER_* variables, and any other that differs from base_env,
    default os.environ, are written; `-u` for those start_command drops)."""
    base = os.environ if base_env is None else base_env
    changed = [f"{k}={v}" for k, v in sorted(env.items())
               if base.get(k) != v or k in OFFLINE_ENV or k.startswith("LORA_TRAINER_")]
    dropped = [f"-u {k}" for k in sorted(base) if k not in env]
    return f"cd {shlex.quote(str(cwd))} && env {' '.join(dropped + [shlex.quote(c) for c in changed])} {shlex.join(argv)}"


class HostFailed(RuntimeError):
    pass


class A1111Process:
    """A1111 as a subprocess in its own process group; its output goes to log_path and a ring
    buffer. `wait_ready()` returns the "Startup time" line; `stop()` ends the whole group."""

    def __init__(self, argv: list[str], env: Mapping[str, str], cwd, log_path, port: int | None = None):
        self.argv, self.env, self.cwd, self.log_path = list(argv), dict(env), Path(cwd), Path(log_path)
        self.port = port if port is not None else int(argv[argv.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.startup_line: str | None = None
        self.started_at = 0.0
        self.ready_after_s: float | None = None
        self._tail: deque[str] = deque(maxlen=400)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    def start(self) -> "A1111Process":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.argv, cwd=str(self.cwd), env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, name="a1111-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self._tail.append(line)
                if self.startup_line is None and STARTUP_LINE.search(line):
                    self.startup_line = line[line.index("Startup time: "):]
                    self.ready_after_s = round(time.monotonic() - self.started_at, 1)
                    self._ready.set()
        self._ready.set()  # the process ended: wake a waiter

    def tail(self, n: int = 60) -> str:
        return "\n".join(list(self._tail)[-n:])

    def wait_ready(self, timeout_s: float = 300.0) -> str:
        """Block until A1111 printed "Startup time"; raise HostFailed (with its output) if it
        exits first or takes longer than timeout_s."""
        if self.proc is None:
            raise HostFailed("not started")
        if not self._ready.wait(timeout_s) or self.startup_line is None:
            code = self.proc.poll()
            why = f"exited with {code}" if code is not None else f"no 'Startup time' line in {timeout_s:.0f} s"
            raise HostFailed(f"A1111 {why}; log {self.log_path}:\n{self.tail()}")
        return self.startup_line

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGINT to the group (A1111's handler exits at once), then SIGKILL after timeout_s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout_s), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # children left in the group (e.g. a trainer) go too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._reader is not None:
            self._reader.join(5.0)
        return self.proc.poll()

    def __enter__(self) -> "A1111Process":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


def request_json(url: str, payload=None, timeout_s: float = 600.0, method: str | None = None):
    """(status, parsed JSON or text) of a GET, or of a POST when payload is given."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers={"Content-Type": "application/json"} if data is not None else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    text = body.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
