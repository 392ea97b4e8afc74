"""`python -m lib_lora_trainer.jobs.supervise --job-dir D -- ARGV...`: run one engine command.

The supervisor leads the job's own process group (the service starts it in a new session),
so closing the browser, reloading the UI or restarting the service never stops training.
It appends the engine's stdout/stderr to files in the job folder and, when the engine ends,
writes `exitcode.json` there, so any later service process learns how the run ended.
Standard library only (and our stdlib-only atomic writes): it runs in the web UI's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lib_lora_trainer import atomic

STDOUT, STDERR, EXITCODE, ENGINE_PID = "stdout.log", "stderr.log", "exitcode.json", "engine.pid"
SUPERVISOR_PID = "supervisor.pid"  # also written by the launcher (jobs/processes.py): whoever is first
ENGINE_PYTHONPATH = "LORA_TRAINER_ENGINE_PYTHONPATH"  # see jobs/processes.supervisor_env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--job-dir", required=True, type=Path)
    p.add_argument("--cwd")
    p.add_argument("command", nargs=argparse.REMAINDER)
    ns = p.parse_args(argv)
    command = ns.command[1:] if ns.command[:1] == ["--"] else ns.command
    if not command:
        p.error("no command given after --")
    job_dir: Path = ns.job_dir
    # The service signals the whole group; the engine handles it (saves, then exits), and the
    # supervisor must outlive it to record the exit code.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    (job_dir / EXITCODE).unlink(missing_ok=True)
    atomic.write_text(job_dir / SUPERVISOR_PID, str(os.getpid()))
    with open(job_dir / STDOUT, "ab") as out, open(job_dir / STDERR, "ab") as err:
        # A resumed job appends to the same logs; the parser starts a new attempt at this line.
        out.write(f"[lora-trainer] run start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=ns.cwd,
                                    env=engine_env(os.environ), preexec_fn=_default_signals)
        except OSError as exc:
            err.write(f"error: cannot start the engine: {exc}\n".encode())
            _write_exit(job_dir, 127)
            return 127
        (job_dir / ENGINE_PID).write_text(str(proc.pid), encoding="utf-8")
        returncode = proc.wait()
        # A launcher (accelerate) can die before the trainer it started: the job is over only
        # when nothing else is left in our process group.
        _wait_for_group(os.getpgrp())
    _write_exit(job_dir, returncode)
    return 0


def engine_env(env) -> dict[str, str]:
    """Our environment less what the launcher added for the supervisor alone (our package path)."""
    env = dict(env)
    wanted = env.pop(ENGINE_PYTHONPATH, None)
    if wanted is not None:
        if wanted:
            env["PYTHONPATH"] = wanted
        else:
            env.pop("PYTHONPATH", None)
    return env


def _group_members(pgid: int) -> list[int]:
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return members  # not Linux: nothing to wait for beyond the direct child
    me = os.getpid()
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != b"Z":
            members.append(int(entry))
    return members


def _wait_for_group(pgid: int, timeout_s: float = 900.0) -> None:
    deadline = time.time() + timeout_s
    while _group_members(pgid) and time.time() < deadline:
        time.sleep(0.5)


def _default_signals() -> None:
    # Ignored signals are inherited through exec: give the engine the normal handlers back.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _write_exit(job_dir: Path, returncode: int) -> None:
    atomic.write_text(job_dir / EXITCODE, json.dumps({"returncode": returncode, "finished_at": time.time()}))


def read_exit(job_dir: Path) -> dict | None:
    try:
        return json.loads((Path(job_dir) / EXITCODE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


if __name__ == "__main__":
    sys.exit(main())
