"""Starting, probing and signalling a job's process group (POSIX; Windows uses taskkill)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_supervised(job_dir: Path, argv: list[str], env: dict[str, str], cwd: str | None) -> int:
    """Start the supervisor in a new session (its own process group); return its pid."""
    cmd = [sys.executable, "-m", "lib_lora_trainer.jobs.supervise", "--job-dir", str(job_dir)]
    if cwd:
        cmd += ["--cwd", cwd]
    cmd += ["--", *argv]
    with open(job_dir / "supervisor.log", "ab") as log:
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, close_fds=True)
    return proc.pid


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
