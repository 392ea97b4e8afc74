"""Server-sent events for one job: progress, log lines, sample images, end.

    event: progress   data: the job JSON (as in GET /jobs), whenever it changes
    event: log        data: {"stream": "stdout"|"stderr", "lines": [...]}: new lines of the job's
                      stdout.log / stderr.log, split on \\r and \\n (tqdm redraws are lines too)
    event: sample     data: {"name", "path", "url"}: a new sample image in output/sample/
    event: end        data: {"state", "error", "error_kind"}: the job is finished; the stream ends
    : heartbeat       a comment every `heartbeat_s`, so proxies keep the connection open

The generator reads the store and the job folder every `poll_s` seconds (in a worker thread: it
never blocks the event loop), reads at most `MAX_READ` bytes per file per poll, and stops when the
client disconnects, or after `max_s` (one hour by default; an EventSource then reconnects). It
only observes: jobs advance through JobService.tick (the background loop). A client should close
its EventSource on `end` (otherwise the browser reconnects and gets the final progress and `end`
again).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool

from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.supervise import STDERR, STDOUT

from .responses import dumps

MAX_READ = 1024**2          # bytes per log file per poll
TAIL_BYTES = 64 * 1024      # of an existing log sent when a stream starts
MAX_PARTIAL = 64 * 1024     # an unterminated line longer than this is sent as it is
SAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def sse(event: str, data) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


class LogFollower:
    """New complete lines of one growing log file, split on \\r and \\n."""

    def __init__(self, path: Path, tail_bytes: int = TAIL_BYTES):
        self.path = path
        self.offset: int | None = None  # decided on the first poll: the tail of what exists
        self.tail_bytes = tail_bytes
        self.partial = b""

    def poll(self, final: bool = False) -> list[str]:
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                if self.offset is None:
                    self.offset = max(0, size - self.tail_bytes)
                    skip_first = self.offset > 0  # starts mid-line
                else:
                    skip_first = False
                if size < self.offset:  # truncated or replaced: start again
                    self.offset, self.partial = 0, b""
                f.seek(self.offset)
                data = f.read(MAX_READ)
        except OSError:
            return []
        self.offset += len(data)
        data = self.partial + data
        pieces = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self.partial = pieces.pop()
        if skip_first and pieces:
            pieces.pop(0)
        if final or len(self.partial) > MAX_PARTIAL:
            pieces.append(self.partial)
            self.partial = b""
        return [p.decode("utf-8", errors="replace") for p in pieces if p.strip()]


class _Watch:
    """Everything one stream remembers between polls (all file work happens in a thread)."""

    def __init__(self, job_dir: Path):
        self.job_dir = job_dir
        self.logs = {"stdout": LogFollower(job_dir / STDOUT), "stderr": LogFollower(job_dir / STDERR)}
        self.samples_seen: set[str] = set()

    def new_logs(self, final: bool) -> list[tuple[str, list[str]]]:
        out = []
        for stream, follower in self.logs.items():
            lines = follower.poll(final)
            if lines:
                out.append((stream, lines))
        return out

    def new_samples(self) -> list[Path]:
        folder = self.job_dir / "output" / "sample"
        try:
            found = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file() and not p.is_symlink())
        except OSError:
            return []
        new = [p for p in found if p.name not in self.samples_seen]
        self.samples_seen.update(p.name for p in new)
        return new


async def job_events(*, request, get_job: Callable, job_payload: Callable, sample_url: Callable[[str], str],
                     poll_s: float = 0.5, heartbeat_s: float = 15.0, max_s: float | None = 3600.0,
                     sleep=None) -> AsyncIterator[bytes]:
    """The event stream of one job. `get_job()` returns the job (KeyError once it is gone).
    After `max_s` seconds the stream closes without `end` (an EventSource reconnects)."""
    import anyio

    sleep = sleep or anyio.sleep
    job = await run_in_threadpool(get_job)
    watch = _Watch(Path(job.job_dir))
    last_payload = None
    started = last_beat = time.monotonic()
    yield b"retry: 5000\n\n"
    while True:
        try:
            job = await run_in_threadpool(get_job)
        except KeyError:
            yield sse("end", {"state": None, "error": "the job no longer exists", "error_kind": None})
            return
        finished = job.state in S.FINISHED
        chunks: list[bytes] = []
        for stream, lines in await run_in_threadpool(watch.new_logs, finished):
            chunks.append(sse("log", {"stream": stream, "lines": lines}))
        for path in await run_in_threadpool(watch.new_samples):
            chunks.append(sse("sample", {"name": path.name, "path": str(path), "url": sample_url(path.name)}))
        payload = job_payload(job)
        if payload != last_payload:
            chunks.append(sse("progress", payload))
            last_payload = payload
        if finished:
            chunks.append(sse("end", {"state": job.state, "error": job.error, "error_kind": job.error_kind}))
        now = time.monotonic()
        if not chunks and now - last_beat >= heartbeat_s:
            chunks.append(b": heartbeat\n\n")
        for chunk in chunks:
            yield chunk
        if chunks:
            last_beat = now
        if finished:
            return
        if await request.is_disconnected() or (max_s is not None and now - started > max_s):
            return
        await sleep(poll_s)
