"""Hooks around a job's run: something the host does right before a job's training process starts
and once after the job has ended (A1111's VRAM hand-off, the "train then test" evaluation...).

The contract, kept by jobs/lifecycle.py:
- `before_start(job)` is called in the process that launches the job, right before the
  supervised training process is started (the job row is already RUNNING).
- `after_end(job)` is called once for every job whose `before_start` was called, when it reaches a
  terminal state (succeeded - after the LoRA was installed -, failed, cancelled or interrupted),
  with the final row; also when the launch itself failed, and when a resume finds the run had
  already trained every step and only installs it (after_end alone: hooks must accept an
  after_end without a before_start). A job that never launched (cancelled while queued, failed
  while preparing) gets neither call.
- If another process (e.g. the `jobs` CLI) finalises a job first, the hooks run there, not here.

Standard library only: this runs inside A1111's web process.
"""

from __future__ import annotations

import logging
import threading
from typing import Iterable, Protocol, runtime_checkable

log = logging.getLogger("lora_trainer.jobs.hooks")


@runtime_checkable
class JobHooks(Protocol):
    def before_start(self, job) -> None: ...

    def after_end(self, job) -> None: ...


class CompositeHooks:
    """Runs several hooks in registration order (for both calls: register the VRAM hand-off first,
    so A1111's model is back before later hooks such as an evaluation run). A hook that raises is
    logged and skipped; the job and the other hooks go on."""

    def __init__(self, hooks: Iterable[JobHooks] = ()):
        self._hooks: list[JobHooks] = []
        self._lock = threading.Lock()
        for hook in hooks:
            self.add(hook)

    def add(self, hook: JobHooks) -> None:
        if not callable(getattr(hook, "before_start", None)) or not callable(getattr(hook, "after_end", None)):
            raise TypeError(f"{hook!r} is not a job hook: it needs before_start(job) and after_end(job) methods")
        with self._lock:
            self._hooks.append(hook)

    def remove(self, hook: JobHooks) -> None:
        with self._lock:
            self._hooks = [h for h in self._hooks if h is not hook]

    @property
    def hooks(self) -> list[JobHooks]:
        with self._lock:
            return list(self._hooks)

    def before_start(self, job) -> None:
        self._call("before_start", job)

    def after_end(self, job) -> None:
        self._call("after_end", job)

    def _call(self, method: str, job) -> None:
        for hook in self.hooks:
            try:
                getattr(hook, method)(job)
            except Exception:  # a hook must never break the job loop or the job itself
                log.exception("job hook %s.%s failed for job %s", type(hook).__name__, method,
                              getattr(job, "id", job))


def as_composite(hooks: CompositeHooks | JobHooks | Iterable[JobHooks] | None) -> CompositeHooks:
    """None, one hook, a list of hooks or a CompositeHooks -> a CompositeHooks."""
    if hooks is None:
        return CompositeHooks()
    if isinstance(hooks, CompositeHooks):
        return hooks
    if callable(getattr(hooks, "before_start", None)):
        return CompositeHooks([hooks])
    return CompositeHooks(hooks)
