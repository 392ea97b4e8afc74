"""An exclusive lock between processes on one machine (fcntl), for work two processes must not
do at once: finalising a job, creating the trainer venv. Standard library only."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # Windows: one service process per data dir is the rule there
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
