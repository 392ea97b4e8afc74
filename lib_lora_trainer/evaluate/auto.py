"""Train then test, automatically: when a job succeeds (and its config keeps test_after_training on),
run `python -m lib_lora_trainer test <job id>` as a detached subprocess, so the job service never
blocks on generation and a crash of the test cannot touch the job. Its state is files:
`<job>/test/running.json` while it runs, `<job>/test/report.json` when done, `<job>/test.log`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .job_eval import REPORT_DIR


def test_state(job_dir: Path) -> str:
    """none | running | done | failed."""
    folder = Path(job_dir) / REPORT_DIR
    if (folder / "report.json").is_file():
        return "done"
    marker = folder / "running.json"
    if marker.is_file():
        try:
            pid = int(json.loads(marker.read_text())["pid"])
            os.kill(pid, 0)
            return "running"
        except (ValueError, KeyError, json.JSONDecodeError, ProcessLookupError, PermissionError, OSError):
            return "failed"
    return "none"


def start_test(job, data_dir: Path, sweep: str = "weights", python: str | None = None) -> subprocess.Popen | None:
    """Start the test of a succeeded job unless one runs already; returns the process (None if skipped)."""
    job_dir = Path(job.job_dir)
    if test_state(job_dir) == "running":
        return None
    folder = job_dir / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").unlink(missing_ok=True)
    log = open(job_dir / "test.log", "ab")
    try:
        proc = subprocess.Popen([python or sys.executable, "-m", "lib_lora_trainer", "test", job.id,
                                 "--data-dir", str(data_dir), "--sweep", sweep],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(Path(__file__).resolve().parents[2]))
    finally:
        log.close()
    (folder / "running.json").write_text(json.dumps({"pid": proc.pid, "started": time.time(), "sweep": sweep}))
    return proc


def wants_test(job) -> bool:
    """A succeeded, installed job whose config keeps test_after_training on (the default)."""
    return job.state == "succeeded" and bool(job.installed_path) and job.config.get("test_after_training", True)


class AutoTestHook:
    """A job hook: after a job ends as succeeded, test it (unless the job's config says not to)."""

    def __init__(self, data_dir: Path, python: str | None = None):
        self.data_dir, self.python = Path(data_dir), python

    def before_start(self, job) -> None:
        pass

    def after_end(self, job) -> None:
        if wants_test(job):
            start_test(job, self.data_dir, python=self.python)
