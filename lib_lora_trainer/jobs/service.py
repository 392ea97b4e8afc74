"""The job service: submit (check -> prepare -> config), queue, launch, track, cancel, resume, install.

Every public method may be called from any process sharing the data dir (the web UI, the CLI,
the API): the SQLite store is the truth, the engine runs in its own process group under a
supervisor, and `reconcile()` brings the store up to date with what the processes did.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from lib_lora_trainer import atomic, paths

from . import states as S
from .lifecycle import Lifecycle
from .store import Job, JobStore, new_job_id


class SubmitError(ValueError):
    """Bad dataset or configuration: nothing was queued."""


class JobService:
    def __init__(self, data_dir: str | Path | None = None, lora_dir: str | Path | None = None,
                 settings: dict | None = None, hooks=None):
        self.data_dir = paths.data_dir(data_dir)
        self.jobs_root = self.data_dir / "jobs"
        self.jobs_root.mkdir(exist_ok=True)
        self.lora_dir = Path(lora_dir) if lora_dir else self.data_dir / "Lora"
        self.settings = dict(settings or {})
        # where engines the extension installs live (engines/sd_scripts_install.py)
        self.settings.setdefault("engines_dir", str(self.data_dir / "engines"))
        self.store = JobStore(self.data_dir / "jobs.sqlite3")
        self.lifecycle = Lifecycle(self.store, self.lora_dir, self.settings, hooks=hooks)
        self.hooks = self.lifecycle.hooks  # jobs/hooks.CompositeHooks: add() more hooks later
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ---- submit ---------------------------------------------------------------------------
    def submit(self, dataset_src: str | Path, config, crop: str = "center", queue: bool = True) -> Job:
        """check -> prepare -> TOML; the job is queued (or left failed with the reason)."""
        from lib_lora_trainer.jobs.install import InstallError, validate_lora_name

        from .submit import prepare_job

        try:
            validate_lora_name(config.name)
        except InstallError as exc:
            raise SubmitError(str(exc)) from None
        job_id = new_job_id()
        job_dir = self.jobs_root / job_id
        job_dir.mkdir(parents=True)
        job = self.store.create(config.name, config.engine, str(job_dir), config.to_dict(),
                                gpu=str(config.gpu_ids or "0").split(",")[0], state=S.PREPARING, job_id=job_id)
        try:
            plan = prepare_job(job_dir, dataset_src, config, crop, self.settings)
        except Exception as exc:
            self.store.update(job.id, state=S.FAILED, error_kind="prepare", error=str(exc), finished_at=time.time())
            raise SubmitError(str(exc)) from exc
        plan["lora_dir"] = str(self.lora_dir)  # the job installs where it was asked to, whoever finishes it
        atomic.write_text(job_dir / "plan.json", json.dumps(plan, indent=2))
        self.store.update(job.id, config=plan["config"], progress={"total": plan["total_steps"], "step": 0})
        if queue:
            self.store.update(job.id, state=S.QUEUED)
        return self.store.get(job.id)

    # ---- queries --------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            raise KeyError(f"no job with id {job_id!r}")
        return job

    def list(self) -> list[Job]:
        return self.store.list()

    # ---- control --------------------------------------------------------------------------
    def tick(self) -> None:
        """Bring running jobs up to date, then start queued ones on free GPUs."""
        from .processes import process_identity

        self.reconcile()
        for gpu in sorted({j.gpu for j in self.store.list((S.QUEUED,))}):
            job = self.store.claim_next(gpu, launcher=process_identity())
            if job is not None:
                self.lifecycle.launch(job)

    def reconcile(self) -> None:
        from .processes import reap_children

        reap_children()  # supervisors this process started, whoever finished their jobs
        for job in self.store.list((S.RUNNING,)):
            self.lifecycle.reconcile(job)

    def cancel(self, job_id: str, wait: bool = False, grace_s: float = 120.0) -> Job:
        job = self.get(job_id)
        if job.state in (S.QUEUED, S.PREPARING):
            return self.store.update(job.id, state=S.CANCELLED, finished_at=time.time())
        if job.state != S.RUNNING:
            raise S.TransitionError(f"job {job_id} is {job.state}; only queued or running jobs can be cancelled")
        self.lifecycle.request_cancel(job, grace_s, wait)
        if wait:
            self.reconcile()
        return self.get(job_id)

    def resume(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job.state not in S.RESUMABLE:
            raise S.TransitionError(f"job {job_id} is {job.state}; only failed, cancelled or interrupted jobs "
                                    "can be resumed")
        return self.lifecycle.queue_resume(job)

    def wait(self, job_id: str, poll_s: float = 1.0, timeout_s: float | None = None, on_tick=None) -> Job:
        deadline = None if timeout_s is None else time.time() + timeout_s
        while True:
            self.tick()
            job = self.get(job_id)
            if on_tick:
                on_tick(job)
            if job.state in S.FINISHED:
                return job
            if deadline and time.time() > deadline:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout_s} s")
            time.sleep(poll_s)

    # ---- background loop (web UI / API process) ---------------------------------------------
    def start_background(self, interval_s: float = 1.0) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval_s,), name="lora-trainer-jobs",
                                        daemon=True)
        self._thread.start()

    def stop_background(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self, interval_s: float) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # the loop must survive a bad job; the error is on that job
                print(f"[lora-trainer] job loop: {type(exc).__name__}: {exc}", flush=True)
            self._stop.wait(interval_s)
