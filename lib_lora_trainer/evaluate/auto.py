"""Train then test: start the test of a succeeded job, automatically when the job ends (a job hook)
or on request (the Result section's button, POST /jobs/{id}/test).

Two testers with one interface, `start_test(job, sweep="weights") -> TestStatus`:
- `AutoTestHook` (standalone, CLI, bare API): `python -m lib_lora_trainer test <job id>` as a detached
  subprocess in the trainer environment's Python (it renders with diffusers, which a host's Python
  may lack), with our package and `<ext>/.deps` on its path whatever the caller's working folder;
- `hosts/a1111_renderer.A1111AutoTest`: A1111's own txt2img in a thread of A1111's process.
A job service carries its tester as one of its hooks; `tester_for(service)` finds it.

The state is files (evaluate/progress.py): `<job>/test/launch.json`, `running.json` (pictures
done / in all, or the error), `report.json` when done; the subprocess's output goes to `<job>/test.log`.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

from .job_eval import REPORT_DIR
from .progress import LOG, TestStatus, mark_failed, mark_launch, read_status, reset

def default_sweep(job) -> str:
    """What a test compares when nobody says: the LoRA's weights, and every saved file when the job
    saved more than the last one (so the ranking can pick the checkpoint too)."""
    from .job_eval import intermediate_checkpoints

    name = (job.config or {}).get("name") or Path(job.installed_path or "").stem
    return "weights,checkpoints" if intermediate_checkpoints(Path(job.job_dir) / "output", name) else "weights"


class TestStartError(RuntimeError):
    """The test could not be started (the message says why and what to do)."""

    __test__ = False   # not a pytest class


def test_status(job_dir: Path) -> TestStatus:
    job_dir = Path(job_dir)
    return read_status(job_dir / REPORT_DIR, job_dir / LOG)


def test_state(job_dir: Path) -> str:
    """none | running | done | failed."""
    return test_status(job_dir).state


def check_testable(job) -> None:
    if job.state != "succeeded" or not job.installed_path:
        raise TestStartError(f"job {job.id} is {job.state}; only a succeeded job has a LoRA to test")
    if not Path(job.installed_path).is_file():
        raise TestStartError(f"the LoRA {job.installed_path} is no longer on disk (moved or deleted)")


def test_interpreter(settings: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The argv prefix of the Python that renders: the trainer environment's (trainer_env/choose.py)."""
    from lib_lora_trainer.trainer_env.choose import choose_interpreter
    from lib_lora_trainer.trainer_env.plan import TrainerEnvError

    try:
        return tuple(choose_interpreter(dict(settings or {})).prefix)
    except TrainerEnvError as exc:
        raise TestStartError(f"the test renders in the trainer environment, which is not usable: {exc}") from None


def test_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test subprocess's environment: our package and `<ext>/.deps` importable (child_env.py)."""
    from lib_lora_trainer.child_env import with_package

    env = with_package(base)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("HF_HUB_OFFLINE", "1")             # like the trainer: local models only
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def test_command(prefix: Sequence[str], job, data_dir: Path, sweep: str, extra_args: Sequence[str] = ()) -> list[str]:
    return [*prefix, "-m", "lib_lora_trainer", "test", job.id, "--data-dir", str(Path(data_dir).absolute()),
            "--sweep", sweep, *extra_args]


def start_test(job, data_dir: Path, sweep: str = "weights", python: str | None = None, *,
               settings: Mapping[str, Any] | None = None, extra_args: Sequence[str] = ()) -> subprocess.Popen | None:
    """Start the test of a succeeded job in a detached subprocess unless one runs already; returns the
    process (None if one was running). `python`: an interpreter to use; default: the trainer
    environment's (from `settings`). Raises TestStartError when it cannot start."""
    check_testable(job)
    job_dir = Path(job.job_dir)
    folder = job_dir / REPORT_DIR
    if test_state(job_dir) == "running":
        return None
    from .scorer_weights import downloads_allowed

    prefix = (python,) if python else test_interpreter(settings)
    reset(folder)
    if downloads_allowed(dict(settings or {})):   # the user agreed to the scorer download (a setting)
        extra_args = (*extra_args, "--allow-downloads")
    argv = test_command(prefix, job, data_dir, sweep, extra_args)
    with open(job_dir / LOG, "ab") as log:
        log.write(f"[lora-trainer] test: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=test_env(), cwd=str(job_dir), start_new_session=True, close_fds=True)
        except OSError as exc:
            raise TestStartError(f"cannot start {prefix[0]}: {exc}") from None
    mark_launch(folder, proc.pid, sweep, "subprocess")
    # Collect its exit status when it ends, so it never stays <defunct> in a long-lived host process.
    threading.Thread(target=proc.wait, daemon=True, name=f"lora-trainer-test-reaper-{job.id}").start()
    return proc


def wants_test(job) -> bool:
    """A succeeded, installed job whose config keeps test_after_training on (the default)."""
    return job.state == "succeeded" and bool(job.installed_path) and job.config.get("test_after_training", True)


class AutoTestHook:
    """A job hook and a tester: after a job ends as succeeded, test it in a subprocess (unless the job's
    config says not to); `start_test` tests one on request. `settings`: the job service's (they name
    the trainer environment); `extra_args` go to the `test` command (e.g. --seeds 1 --steps 2)."""

    def __init__(self, data_dir: Path, python: str | None = None, settings: Mapping[str, Any] | None = None,
                 extra_args: Sequence[str] = ()):
        self.data_dir, self.python, self.settings = Path(data_dir), python, settings
        self.extra_args = tuple(extra_args)

    def before_start(self, job) -> None:
        pass

    def after_end(self, job) -> None:
        if wants_test(job):
            try:
                self.start_test(job)
            except TestStartError as exc:   # the job stays succeeded; the test shows as failed, with why
                mark_failed(Path(job.job_dir) / REPORT_DIR, str(exc))

    def start_test(self, job, sweep: str | None = None) -> TestStatus:
        start_test(job, self.data_dir, sweep or default_sweep(job), self.python, settings=self.settings,
                   extra_args=self.extra_args)
        return test_status(Path(job.job_dir))


def tester_for(service):
    """The tester the service carries among its hooks (A1111's in-process one, or the subprocess
    one), else a subprocess tester on the service's data folder and settings."""
    hooks = getattr(service, "hooks", None)
    for hook in getattr(hooks, "hooks", None) or ():
        if callable(getattr(hook, "start_test", None)):
            return hook
    return AutoTestHook(service.data_dir, settings=getattr(service, "settings", None))
