"""Processes a test left running. Every process this pytest session starts inherits
LORA_TRAINER_TEST_SESSION (set in conftest.py); one whose parent is outside the session's tree was
detached (its own session, a parent that exited: a job supervisor, an automatic test...) and
outlived the test that started it. On 2 cores such a process makes every later timed test several
times slower, so tests/conftest.py names the test that left it and tests/ui stops it first."""

import os
import signal
import time
from pathlib import Path

TAG = "LORA_TRAINER_TEST_SESSION"


def _tagged(pid: int, session: str) -> bool:
    try:
        return f"{TAG}={session}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name: [state, parent pid, ...]; [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else 0


def _alive(pid: int) -> bool:
    """Running, not a zombie (a container's PID 1 may never reap a killed orphan)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def strays() -> dict[int, str]:
    """pid -> command line of this session's detached processes still alive (none off Linux)."""
    session = os.environ.get(TAG)
    if not session or not Path("/proc/self/environ").exists():
        return {}
    me = os.getpid()
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    tagged = {pid for pid in pids if pid != me and _tagged(pid, session)}
    out = {}
    for pid in tagged:
        parent = _parent(pid)
        if parent != me and parent not in tagged:
            out[pid] = _cmdline(pid)[:200]
    return out


def stop_strays(grace_s: float = 10.0) -> dict[int, str]:
    """Stop every stray (its whole process group: SIGTERM, then SIGKILL); returns what was found."""
    found = strays()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in found:
            try:
                os.killpg(os.getpgid(pid), sig)
            except (OSError, ProcessLookupError):
                pass
        deadline = time.time() + grace_s
        while time.time() < deadline and any(_alive(pid) for pid in found):
            time.sleep(0.2)
    return found
