"""VRAM hand-off: A1111's Stable Diffusion model leaves the GPU while a training job uses that GPU,
and comes back when the last such job has ended (succeeded, failed, cancelled or interrupted).

Pure logic, no A1111 import: the host passes callables (hosts/a1111.py does it with what the host
has: A1111's `sd_models.unload_model_weights` / `sd_models.send_model_to_device`, or Forge Neo's
`backend.memory_management.unload_all_models` / `soft_empty_cache`, Neo moving the model back
itself at the next generation; both hosts' `modules.call_queue.queue_lock`).

What A1111 does meanwhile (the documented behaviour): the hand-off holds A1111's generation queue
lock (`modules.call_queue.queue_lock`, a FIFO lock) from the moment the model is moved to RAM
until it is back on the GPU. A txt2img / img2img / extras request from the UI or /sdapi/v1 made
during training therefore WAITS in A1111's queue (the UI shows it as queued) and runs, in order,
right after the training job ends and the model is back. That is also what A1111's own
embedding/hypernetwork training does. Without the lock such a request would run with the model's
weights in RAM and its inputs on the GPU (A1111 does not move an unloaded model back by itself:
`reload_model_weights` returns early when the same checkpoint is "loaded") and fail.
With the "keep the model loaded" setting nothing is moved and nothing waits: generations and
training share the GPU's memory (for GPUs with room for both).
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

log = logging.getLogger("lora_trainer.vram")


class Lock(Protocol):
    def acquire(self) -> bool: ...

    def release(self) -> None: ...


def job_gpus(job) -> list[str]:
    """The GPU indices a job trains on: its gpu_ids setting ("0,1", "all"), else its queue GPU."""
    config = getattr(job, "config", None) or {}
    ids = str(config.get("gpu_ids") or getattr(job, "gpu", None) or "0").replace(" ", "")
    return [g for g in ids.split(",") if g]


@dataclass(frozen=True)
class HandoffState:
    holders: tuple[str, ...]     # job ids for which the model is out of VRAM
    model_out: bool              # True while A1111's model is in RAM because of us

    def message(self) -> str:
        if not self.holders:
            return "A1111's model is where A1111 put it."
        jobs = ", ".join(self.holders)
        return (f"A1111's model is in RAM while job {jobs} trains on its GPU; txt2img and other generations "
                "wait in A1111's queue until the job ends.")


class VramHandoff:
    """Refcounted: the first job on A1111's GPU unloads, the last one to end reloads.

    unload()  -> bool: move the model out of VRAM; True when a model was moved (False: none loaded)
    reload()  -> None: move it back
    host_gpu() -> str | None: the CUDA index A1111 generates on, None when not on a CUDA GPU
    keep_loaded() -> bool: the user's "keep the model loaded" setting, read at each job start
    lock: held while the model is out (A1111's queue lock), so generations wait instead of failing
    """

    def __init__(self, unload: Callable[[], bool], reload: Callable[[], None], *,
                 host_gpu: Callable[[], str | None] = lambda: "0",
                 keep_loaded: Callable[[], bool] = lambda: False,
                 lock: Lock | None = None):
        self._unload, self._reload = unload, reload
        self._host_gpu, self._keep_loaded, self._lock = host_gpu, keep_loaded, lock
        self._mutex = threading.RLock()
        self._holders: list[str] = []
        self._model_out = False

    # ---- queries ----------------------------------------------------------------------------
    def shares_gpu(self, gpus: Iterable[str]) -> bool:
        host = self._host_gpu()
        if host is None:
            return False
        return any(g == "all" or g == str(host) for g in gpus)

    def state(self) -> HandoffState:
        with self._mutex:
            return HandoffState(tuple(self._holders), self._model_out)

    # ---- acquire / release ------------------------------------------------------------------
    def acquire(self, key: str, gpus: Iterable[str] = ("0",)) -> bool:
        """Before a job starts. True when `key` now holds the hand-off (release it at the end)."""
        gpus = list(gpus)
        with self._mutex:
            if key in self._holders:
                return True
            if not self.shares_gpu(gpus):
                log.info("job %s trains on GPU %s, A1111 generates on %s: A1111's model stays loaded",
                         key, ",".join(gpus), self._host_gpu())
                return False
            if self._keep_loaded():
                log.info("job %s: keeping A1111's model in VRAM (setting 'keep the model loaded')", key)
                return False
            if not self._holders:
                self._take_gpu()
            self._holders.append(key)
            return True

    def release(self, key: str) -> bool:
        """After a job ends (any way). True when `key` held the hand-off."""
        with self._mutex:
            if key not in self._holders:
                return False
            self._holders.remove(key)
            if not self._holders:
                self._give_back_gpu()
            return True

    @contextmanager
    def handed_off(self, key: str = "job", gpus: Iterable[str] = ("0",)) -> Iterator[bool]:
        """`with handoff.handed_off(job_id, ["0"]):` the model is out inside, back after - on
        success, on an exception and on cancellation (KeyboardInterrupt, SystemExit) alike."""
        held = self.acquire(key, gpus)
        try:
            yield held
        finally:
            if held:
                self.release(key)

    # ---- the moves ----------------------------------------------------------------------------
    def _take_gpu(self) -> None:
        if self._lock is not None:
            self._lock.acquire()  # waits for a generation in progress to finish
        try:
            self._model_out = bool(self._unload())
        except BaseException:
            if self._lock is not None:
                self._lock.release()
            raise
        log.info("moved A1111's model to RAM for training" if self._model_out else
                 "A1111 had no model loaded; holding its queue while training")

    def _give_back_gpu(self) -> None:
        try:
            if self._model_out:
                self._reload()
                log.info("moved A1111's model back to VRAM")
        finally:
            self._model_out = False
            if self._lock is not None:
                self._lock.release()


class VramHandoffHooks:
    """The job hooks (jobs/hooks.py) for a VramHandoff: before_start takes, after_end gives back."""

    def __init__(self, handoff: VramHandoff):
        self.handoff = handoff

    def before_start(self, job) -> None:
        self.handoff.acquire(job.id, job_gpus(job))

    def after_end(self, job) -> None:
        self.handoff.release(job.id)
