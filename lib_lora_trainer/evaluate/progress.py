"""The state of a LoRA test, kept in files of its folder (`<job>/test/`), so whichever process looks
(the web UI, the API, the CLI, after a restart) sees the same thing:

- `launch.json`  written by whoever started the test: {"pid", "identity", "started", "sweep", "how"}
                 (how: "subprocess", or "thread" inside A1111's own process);
- `running.json` written by the evaluation itself after every rendered cell:
                 {"identity", "done", "total", "cell", "updated"}, plus "error" when it failed;
- `report.json`  written when it finished (evaluate/report.py).

Standard library only: it is read inside the host's process.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lib_lora_trainer import atomic

LAUNCH, RUNNING, REPORT, REPORT_MD = "launch.json", "running.json", "report.json", "report.md"
LOG = "test.log"   # in the job folder, beside test/


def _identity(pid: int | None = None) -> str:
    from lib_lora_trainer.jobs.processes import process_identity

    return process_identity(pid)


def _alive(identity: str | None, pid: int | None) -> bool:
    from lib_lora_trainer.jobs.processes import alive, identity_alive

    if identity:
        return identity_alive(identity)
    return alive(pid)


def _read(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class TestStatus:
    __test__ = False   # not a pytest class

    state: str                      # none | running | done | failed
    done: int = 0                   # pictures rendered so far
    total: int = 0                  # pictures the test renders in all (0: not known yet)
    cell: str = ""                  # what is being rendered
    error: str | None = None
    started: float | None = None

    @property
    def text(self) -> str:
        """One line for people: "testing: 12/145 pictures", "test failed: ...", ..."""
        if self.state == "running":
            return f"testing: {self.done}/{self.total} pictures" if self.total else "testing: starting (loading the model)"
        if self.state == "failed":
            return f"test failed: {self.error or 'it stopped without a report'}"
        if self.state == "done":
            return f"tested: {self.total} pictures" if self.total else "tested"
        return ""

    def as_dict(self) -> dict:
        return {**asdict(self), "text": self.text}


def reset(folder: Path) -> None:
    """Forget the previous test's state and report (its grids are overwritten by the next)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (REPORT, REPORT_MD, RUNNING, LAUNCH):
        (folder / name).unlink(missing_ok=True)


def mark_launch(folder: Path, pid: int, sweep: str, how: str) -> None:
    atomic.write_text(Path(folder) / LAUNCH, json.dumps({
        "pid": pid, "identity": _identity(pid), "started": time.time(), "sweep": sweep, "how": how}))


def mark_failed(folder: Path, error: str) -> None:
    """A test that could not even start: its state is failed, with the reason."""
    reset(folder)
    atomic.write_text(Path(folder) / RUNNING, json.dumps({"error": error, "updated": time.time()}))


class ProgressFile:
    """`running.json`, written by the evaluation (any process): pictures done / in all, the cell."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / RUNNING
        self.identity = _identity()
        self.started = time.time()
        self.done = self.total = 0
        self.cell = ""

    def _write(self, **extra) -> None:
        data = {"pid": os.getpid(), "identity": self.identity, "started": self.started, "done": self.done,
                "total": self.total, "cell": self.cell, "updated": time.time(), **extra}
        try:
            atomic.write_text(self.path, json.dumps(data))
        except OSError:
            pass  # progress is a courtesy: never fail a test because it could not be written

    def __call__(self, done: int, total: int, cell: str = "") -> None:
        self.done, self.total, self.cell = done, total, cell
        self._write()

    def fail(self, error: str) -> None:
        self._write(error=error)


def log_tail_error(log_path: Path, limit: int = 64_000) -> str | None:
    """The last meaningful line of a test log (a traceback's last line, `error: ...`)."""
    try:
        with open(log_path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:500] if lines else None


def read_status(folder: Path, log_path: Path | None = None) -> TestStatus:
    """The test's state from its files (see the module docstring)."""
    folder = Path(folder)
    launch, running = _read(folder / LAUNCH), _read(folder / RUNNING)
    progress = {k: running[k] for k in ("done", "total", "cell") if running and k in running}
    started = (launch or {}).get("started") or (running or {}).get("started")
    if (folder / REPORT).is_file():
        return TestStatus("done", **progress, started=started)
    if running and running.get("error"):
        return TestStatus("failed", **progress, error=str(running["error"]), started=started)
    if launch is None and running is None:
        return TestStatus("none")
    for info in (launch, running):
        if info and _alive(info.get("identity"), info.get("pid")):
            return TestStatus("running", **progress, started=started)
    error = log_tail_error(log_path) if log_path else None
    return TestStatus("failed", **progress, started=started,
                      error=error or "the test process ended without writing a report")
