"""What happens to a running job: launch under the supervisor, follow its logs, finish, install."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import tomli_w

from lib_lora_trainer import atomic, toml_read
from lib_lora_trainer.file_lock import file_lock

from . import states as S
from .hooks import as_composite
from .processes import (SUPERVISOR_PID, alive, identity_alive, last_supervisor_output, read_pid,
                        start_supervised, stop_group)
from .store import Job, JobStore, StaleStateError
from .supervise import EXITCODE, read_exit
from .tracking import LogTracker

CANCEL_FLAG = "cancel.requested"
RUN_TOML, RESUME_TOML, DATASET_TOML = "run.toml", "run.resume.toml", "dataset.toml"
# A launcher that died before the supervisor wrote its pid file: how long the start may take.
SUPERVISOR_START_GRACE_S = 30.0


class Lifecycle:
    def __init__(self, store: JobStore, lora_dir: Path, settings: dict, hooks=None):
        self.store = store
        self.lora_dir = lora_dir
        self.settings = settings
        self.hooks = as_composite(hooks)  # jobs/hooks.py: before_start / after_end
        self.trackers: dict[str, LogTracker] = {}

    # ---- launch ---------------------------------------------------------------------------
    def launch(self, job: Job) -> None:
        from lib_lora_trainer.engines.base import JobLaunch
        from lib_lora_trainer.engines.registry import get_engine

        folder = job.folder
        plan = json.loads((folder / "plan.json").read_text(encoding="utf-8"))
        run_toml = folder / (RESUME_TOML if job.resume_from else RUN_TOML)
        (folder / CANCEL_FLAG).unlink(missing_ok=True)
        # What an earlier attempt left would be read as this attempt's result.
        (folder / EXITCODE).unlink(missing_ok=True)
        (folder / SUPERVISOR_PID).unlink(missing_ok=True)
        hooked = False
        try:
            engine = get_engine(job.engine, self.settings)
            cfg = job.config
            spec = engine.command(JobLaunch(
                run_toml=run_toml, dataset_toml=folder / DATASET_TOML, model_type=plan["model_type"],
                v_prediction=plan.get("v_prediction", False), num_processes=int(cfg.get("num_processes") or 1),
                mixed_precision=cfg.get("mixed_precision", "no"), gpu_ids=cfg.get("gpu_ids"),
                num_cpu_threads_per_process=int(cfg.get("num_cpu_threads_per_process") or 2), job_dir=folder))
            self.hooks.before_start(job)
            hooked = True
            pid = start_supervised(folder, spec.argv, spec.full_env(), spec.cwd)
        except Exception as exc:
            self.store.update(job.id, state=S.FAILED, error_kind="launch", error=f"{type(exc).__name__}: {exc}",
                              finished_at=time.time())
            if hooked:
                self.hooks.after_end(self.store.get(job.id))
            return
        atomic.write_text(folder / "command.json", json.dumps({"argv": spec.argv, "cwd": spec.cwd}, indent=2))
        self.trackers.pop(job.id, None)
        self.store.update(job.id, pid=pid, returncode=None, error=None, error_kind=None, launcher=None)

    # ---- follow ---------------------------------------------------------------------------
    def tracker(self, job: Job) -> LogTracker:
        tracker = self.trackers.get(job.id)
        if tracker is None:
            tracker = self.trackers[job.id] = LogTracker(job.folder)
        return tracker

    def reconcile(self, job: Job) -> None:
        if job.pid is None:
            job = self._launch_in_flight(job)
            if job is None:
                return  # being started: never judged dead before its launcher has stored a pid
        tracker = self.tracker(job)
        tracker.poll()
        exit_info = read_exit(job.folder)
        if exit_info is None and alive(job.pid):
            self.store.update(job.id, progress=_merge(job.progress, tracker.progress_dict()))
            return
        with file_lock(job.folder / ".finalize.lock"):
            current = self.store.get(job.id)
            if current is None or current.state != S.RUNNING or current.pid != job.pid:
                return  # another process finished it first
            tracker.finish()
            self._finish(current, tracker, read_exit(job.folder))
        self.hooks.after_end(self.store.get(job.id))  # every _finish path ends in a terminal state

    def _launch_in_flight(self, job: Job) -> Job | None:
        """A RUNNING row without a pid. None while its launch may still be going on; else the row
        with the supervisor's pid adopted (or pid 0 when no supervisor ever started)."""
        if identity_alive(job.launcher):
            return None
        pid = read_pid(job.folder / SUPERVISOR_PID)
        if pid is None and job.started_at and time.time() - job.started_at < SUPERVISOR_START_GRACE_S \
                and job.launcher:
            return None  # the launcher died right after starting it: give the supervisor time to say so
        try:
            return self.store.update(job.id, expect_state=S.RUNNING, pid=pid or 0, launcher=None)
        except StaleStateError:
            return None

    def _finish(self, job: Job, tracker: LogTracker, exit_info: dict | None) -> None:
        from .progress import classify_exit

        progress = _merge(job.progress, tracker.progress_dict())
        cancelled = (job.folder / CANCEL_FLAG).exists()
        now = time.time()
        if exit_info is None and not cancelled:
            failure = _supervisor_failure(job)
            if failure:  # the supervisor itself failed (bad environment...): say why, don't suggest resume
                self.store.update(job.id, state=S.FAILED, progress=progress, finished_at=now,
                                  error_kind="supervisor", error=failure)
                return
        if exit_info is None and cancelled:
            # Cancelled so early that the supervisor died of the signal before it could record an exit.
            self.store.update(job.id, state=S.CANCELLED, progress=progress, finished_at=now, error_kind="cancelled",
                              error="stopped by the user before training started; resume starts it again")
            return
        if exit_info is None:
            # The supervisor itself is gone (killed with its group, machine restarted...).
            self.store.update(job.id, state=S.INTERRUPTED, progress=progress, finished_at=now,
                              error_kind="interrupted", error="the training process disappeared; resume continues "
                              "from the last saved state")
            return
        code = int(exit_info["returncode"])
        ok, kind, message = classify_exit(code, tracker.state)
        if ok:
            self._succeed(job, progress, code)
        elif cancelled:
            self.store.update(job.id, state=S.CANCELLED, progress=progress, returncode=code, finished_at=now,
                              error_kind="cancelled", error="stopped by the user; the last saved state can be resumed")
        elif code < 0 or kind == "stopped":
            self.store.update(job.id, state=S.INTERRUPTED, progress=progress, returncode=code, finished_at=now,
                              error_kind=kind or "killed", error=message or f"the trainer was killed (signal {-code})")
        else:
            if kind == "oom":
                message = (message or "CUDA out of memory") + _lighter_preset_hint(job)
            self.store.update(job.id, state=S.FAILED, progress=progress, returncode=code, finished_at=now,
                              error_kind=kind or "exit", error=message or f"the trainer exited with code {code}")

    def _succeed(self, job: Job, progress: dict, code: int) -> None:
        from .install import install_lora, install_notes

        plan = json.loads((job.folder / "plan.json").read_text(encoding="utf-8"))
        output = Path(plan["output_dir"]) / f"{job.name}.safetensors"
        now = time.time()
        if not output.is_file():
            self.store.update(job.id, state=S.FAILED, progress=progress, returncode=code, finished_at=now,
                              error_kind="no_output", error=f"the trainer exited 0 but wrote no {output.name}")
            return
        try:
            installed = install_lora(
                output, Path(plan.get("lora_dir") or self.lora_dir), job.name, model_type=plan["model_type"], trigger=plan.get("trigger"),
                preferred_weight=float(self.settings.get("preferred_weight", 1.0)),
                notes=install_notes(base_model=plan["base_model"], steps=int(progress.get("step") or 0),
                                    images=int(plan.get("num_images") or 0), engine=job.engine))
        except Exception as exc:
            self.store.update(job.id, state=S.FAILED, progress=progress, returncode=code, finished_at=now,
                              error_kind="install", error=f"trained, but installing failed: {exc}")
            return
        self.store.update(job.id, state=S.SUCCEEDED, progress=progress, returncode=code, finished_at=now,
                          installed_path=str(installed))

    # ---- cancel and resume --------------------------------------------------------------------
    def request_cancel(self, job: Job, grace_s: float, wait: bool) -> None:
        atomic.write_text(job.folder / CANCEL_FLAG, str(time.time()))
        if wait:
            stop_group(job.pid, grace_s)
        else:  # never block a web request for the save: the group is stopped in the background
            threading.Thread(target=stop_group, args=(job.pid, grace_s), daemon=True).start()

    def queue_resume(self, job: Job) -> Job:
        plan_file = job.folder / "plan.json"
        if not plan_file.is_file():
            raise S.TransitionError(f"job {job.id} never finished preparing; submit it again")
        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        state_dir, step = latest_state(Path(plan["output_dir"]), job.name)
        total = int(plan.get("total_steps") or 0)
        if state_dir is not None and total and step >= total:
            finished = self._complete_trained(job, plan, total)
            if finished is not None:
                return finished
        run = toml_read.loads((job.folder / RUN_TOML).read_text(encoding="utf-8"))
        if state_dir is not None:
            run["resume"] = str(state_dir)
        atomic.write_text(job.folder / RESUME_TOML, tomli_w.dumps(run))
        return self.store.update(job.id, state=S.QUEUED, resume_from=str(state_dir) if state_dir else "",
                                 finished_at=None, error=None, error_kind=None)

    def _complete_trained(self, job: Job, plan: dict, total: int) -> Job | None:
        """Resume of a run whose last state is at the final step: train nothing more; install the
        LoRA it wrote. None when that LoRA is missing (then a relaunch only writes it)."""
        if not (Path(plan["output_dir"]) / f"{job.name}.safetensors").is_file():
            return None
        with file_lock(job.folder / ".finalize.lock"):
            current = self.store.get(job.id)
            if current is None or current.state not in S.RESUMABLE:
                raise S.TransitionError(f"job {job.id} is {current.state if current else 'gone'}; "
                                        "only failed, cancelled or interrupted jobs can be resumed")
            self._succeed(current, {**(current.progress or {}), "step": total, "total": total},
                          current.returncode or 0)
        done = self.store.get(job.id)
        self.hooks.after_end(done)  # installed now: the same follow-ups as a normal end (test...)
        return done


def _supervisor_failure(job: Job) -> str | None:
    """The supervisor's own last words, when it died of an error before recording an exit (killed
    with its group, it says nothing: that is an interruption, not a failure)."""
    if not job.pid:
        return "the training process could not be started (its launch was cut short); start it again"
    output = last_supervisor_output(job.folder)
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        return None
    return f"the job supervisor failed: {lines[-1].strip()} (full output in {job.folder / 'supervisor.log'})"


def _lighter_preset_hint(job: Job) -> str:
    """After a CUDA OOM: name a preset that the VRAM estimate says fits the free memory."""
    try:
        from lib_lora_trainer.config.training_config import TrainingConfig
        from lib_lora_trainer.config.vram import suggest_lighter_preset

        from .submit import free_gpu_gib
        plan = json.loads((job.folder / "plan.json").read_text(encoding="utf-8"))
        free = free_gpu_gib() or 0.0
        preset = suggest_lighter_preset(TrainingConfig.from_dict(job.config), plan["model_type"], free)
    except Exception:
        return ""
    return f". Try the lighter preset {preset!r}." if preset else ""


def _merge(old: dict, new: dict) -> dict:
    """Known values (e.g. the planned total) stay until the log says otherwise."""
    return {**(old or {}), **{k: v for k, v in new.items() if v is not None}}


def latest_state(output_dir: Path, name: str) -> tuple[Path | None, int]:
    """The saved state with the highest step, and that step (-1 without one):
    `<name>-step00000120-state`, `<name>-000002-state`..."""
    best, best_step = None, -1
    if not output_dir.is_dir():
        return None, -1
    for folder in output_dir.iterdir():
        if not folder.name.startswith(name) or not folder.name.endswith("-state"):
            continue
        try:
            step = int(json.loads((folder / "train_state.json").read_text())["current_step"])
        except (OSError, ValueError, KeyError):
            continue
        if step > best_step:
            best, best_step = folder, step
    return best, best_step
