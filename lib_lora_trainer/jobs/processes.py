"""Starting, probing and signalling a job's process group (POSIX; Windows uses taskkill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lib_lora_trainer import atomic


SUPERVISOR_LOG, SUPERVISOR_PID = "supervisor.log", "supervisor.pid"
SUPERVISOR_START = b"[lora-trainer] supervisor start"
# The engine's own PYTHONPATH travels to the supervisor here; the supervisor itself needs ours.
ENGINE_PYTHONPATH = "LORA_TRAINER_ENGINE_PYTHONPATH"

_children: dict[int, subprocess.Popen] = {}


def supervisor_env(engine_env: dict[str, str]) -> dict[str, str]:
    """The supervisor runs in this (the host's) Python from any working folder: it gets our package
    on its path, and hands the engine exactly the environment the engine asked for."""
    from lib_lora_trainer.child_env import with_package

    env = with_package(engine_env)
    env[ENGINE_PYTHONPATH] = engine_env.get("PYTHONPATH", "")
    return env


def start_supervised(job_dir: Path, argv: list[str], env: dict[str, str], cwd: str | None) -> int:
    """Start the supervisor in a new session (its own process group); return its pid."""
    cmd = [sys.executable, "-m", "lib_lora_trainer.jobs.supervise", "--job-dir", str(job_dir)]
    if cwd:
        cmd += ["--cwd", cwd]
    cmd += ["--", *argv]
    with open(job_dir / SUPERVISOR_LOG, "ab") as log:
        log.write(SUPERVISOR_START + time.strftime(" %Y-%m-%d %H:%M:%S\n").encode())
        log.flush()
        proc = subprocess.Popen(cmd, env=supervisor_env(env), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    _children[proc.pid] = proc
    atomic.write_text(job_dir / SUPERVISOR_PID, str(proc.pid))
    return proc.pid


def reap_children() -> None:
    """Collect the exit status of finished supervisors we started, so none stays <defunct> in a
    long-lived host process (A1111 never waits for children it did not start itself)."""
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            _children.pop(pid, None)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def last_supervisor_output(job_dir: Path, limit: int = 4000) -> str:
    """What the newest supervisor start printed (empty when it printed nothing)."""
    try:
        data = (Path(job_dir) / SUPERVISOR_LOG).read_bytes()
    except OSError:
        return ""
    start = data.rfind(SUPERVISOR_START)
    if start >= 0:
        start = data.find(b"\n", start) + 1
    return data[max(start, 0):][-limit:].decode("utf-8", "replace").strip()


def process_identity(pid: int | None = None) -> str:
    """"pid:start time": unlike a bare pid, it never matches a later process that reused the pid."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_time(pid)}"


def identity_alive(identity: str | None) -> bool:
    if not identity:
        return False
    pid_text, _, started = identity.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    if not alive(pid):
        return False
    return not started or _start_time(pid) == started


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""  # not Linux: the pid alone


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours (we started it and nobody waited) is not alive.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return _not_zombie(pid)


def _not_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b") ", 1)[1][:1] != b"Z"
    except (OSError, IndexError):
        return True


def signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


def stop_group(pgid: int, grace_s: float = 60.0, poll_s: float = 0.2) -> str:
    """SIGTERM (the engine saves and exits), then SIGKILL after the grace period."""
    if not signal_group(pgid, signal.SIGTERM):
        return "gone"
    deadline = time.time() + grace_s
    while time.time() < deadline:
        if not alive(pgid):
            return "stopped"
        time.sleep(poll_s)
    signal_group(pgid, signal.SIGKILL)
    return "killed"
