"""Reading a job's log files incrementally into progress (one parser per job per process)."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path

from .progress import ProgressParser
from .supervise import STDERR, STDOUT

LOSS_POINTS = 2000  # kept in the database; the chart needs no more


class LogTracker:
    def __init__(self, job_dir: Path):
        self.job_dir = Path(job_dir)
        self.parser = ProgressParser()
        self.offsets = {STDOUT: 0, STDERR: 0}

    def poll(self) -> None:
        for name, stream in ((STDOUT, "stdout"), (STDERR, "stderr")):
            path = self.job_dir / name
            try:
                with open(path, "rb") as f:
                    f.seek(self.offsets[name])
                    data = f.read()
            except FileNotFoundError:
                continue
            if data:
                self.offsets[name] += len(data)
                # Decoding per chunk may split a UTF-8 sequence; replace is harmless for parsing.
                self.parser.feed(data.decode("utf-8", errors="replace"), stream)

    def finish(self) -> None:
        self.poll()
        self.parser.finish()

    @property
    def state(self):
        return self.parser.state

    def progress_dict(self) -> dict:
        s = self.parser.state
        data = asdict(s) if is_dataclass(s) else dict(vars(s))
        history = data.get("loss_history") or []
        if len(history) > LOSS_POINTS:  # keep the shape: every k-th point plus the last
            k = len(history) // LOSS_POINTS + 1
            data["loss_history"] = history[::k] + [history[-1]]
        return _jsonable(data)


def _jsonable(value):
    if isinstance(value, float) and value != value:  # NaN is not valid JSON
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value):
        return _jsonable(asdict(value))
    return value
