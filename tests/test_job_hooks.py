"""Job hooks: before_start right before the training process starts, after_end once at the end
(success after install, failure, cancel, failed launch); a raising hook never breaks the job.

The jobs run for real (supervisor, process group, SQLite, reconcile, install), but the "trainer
Python" is a small stand-in script, so each test takes about a second instead of a training run.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.hooks import CompositeHooks, JobHooks, as_composite
from lib_lora_trainer.jobs.service import JobService
from lib_lora_trainer.lora_file import save_lora

FAKE_TRAINER = """\
#!{python}
# Stands in for `python -m accelerate.commands.launch ... -m <trainer> --config_file run.toml`.
import os, shutil, sys, time
args = sys.argv[1:]
job_dir = os.path.dirname(args[args.index("--config_file") + 1])
mode = os.environ.get("FAKE_TRAINER_MODE", "ok")
with open(os.path.join(job_dir, "hook_probe.txt"), "w") as fh:  # proves before_start ran first
    fh.write(open(os.path.join(job_dir, "before_start.mark")).read() if os.path.exists(
        os.path.join(job_dir, "before_start.mark")) else "missing")
print("steps:  50%|#####     | 1/2 [00:00<00:00, 5.00it/s, avr_loss=0.1]", flush=True)
if mode == "fail":
    sys.exit(3)
if mode == "hang":
    time.sleep(120)
shutil.copyfile(os.environ["FAKE_TRAINER_LORA"], os.path.join(job_dir, "output", "hooked.safetensors"))
print("steps: 100%|##########| 2/2 [00:00<00:00, 5.00it/s, avr_loss=0.1]", flush=True)
"""


class Recorder:
    def __init__(self, name: str, calls: list, fail: bool = False):
        self.name, self.calls, self.fail = name, calls, fail

    def before_start(self, job):
        self.calls.append((self.name, "before_start", job.id, job.state))
        (Path(job.job_dir) / "before_start.mark").write_text(self.name)
        if self.fail:
            raise RuntimeError("hook exploded")

    def after_end(self, job):
        self.calls.append((self.name, "after_end", job.id, job.state))
        if self.fail:
            raise RuntimeError("hook exploded")


@pytest.fixture
def fake_python(tmp_path) -> Path:
    script = tmp_path / "fake-python"
    script.write_text(FAKE_TRAINER.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


@pytest.fixture
def lora(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "src.safetensors"
    save_lora(path, {"lora_unet_x.lora_down.weight": torch.ones(2, 4), "lora_unet_x.lora_up.weight": torch.ones(4, 2),
                     "lora_unet_x.alpha": torch.tensor(2)}, {"ss_base_model_version": "sd_v1"})
    monkeypatch.setenv("FAKE_TRAINER_LORA", str(path))
    return path


def queued_job(service: JobService, name: str = "hooked"):
    """A queued job row with what launch and install read (plan.json, run.toml), no dataset prepare."""
    job = service.store.create(name, "builtin", str(service.jobs_root / f"j-{name}-{time.time_ns()}"),
                               {"num_processes": 1, "mixed_precision": "no"}, gpu="0", state=S.QUEUED)
    folder = Path(job.job_dir)
    (folder / "output").mkdir(parents=True)
    (folder / "run.toml").write_text(f'output_name = "{name}"\n')
    (folder / "dataset.toml").write_text("")
    (folder / "plan.json").write_text(json.dumps({
        "model_type": "sd1", "output_dir": str(folder / "output"), "base_model": "tiny.safetensors",
        "trigger": "zk", "num_images": 1, "total_steps": 2}))
    return job


def run_to_end(service: JobService, job_id: str, timeout: float = 60):
    return service.wait(job_id, poll_s=0.2, timeout_s=timeout)


def make_service(tmp_path, fake_python, hooks) -> JobService:
    return JobService(tmp_path / "data", tmp_path / "Lora", settings={"trainer_python": str(fake_python)},
                      hooks=hooks)


def test_success_calls_before_start_first_then_after_end_once_after_install(tmp_path, fake_python, lora):
    calls: list = []
    service = make_service(tmp_path, fake_python, [Recorder("vram", calls), Recorder("eval", calls)])
    job = queued_job(service)
    done = run_to_end(service, job.id)
    assert done.state == S.SUCCEEDED, done.error
    assert (Path(done.job_dir) / "hook_probe.txt").read_text() == "eval"  # both ran before the process
    assert calls == [("vram", "before_start", job.id, S.RUNNING), ("eval", "before_start", job.id, S.RUNNING),
                     ("vram", "after_end", job.id, S.SUCCEEDED), ("eval", "after_end", job.id, S.SUCCEEDED)]
    assert Path(done.installed_path).is_file()  # after_end sees the installed LoRA
    service.tick()
    assert len(calls) == 4  # never twice


def test_failure_and_a_raising_hook(tmp_path, fake_python, lora, monkeypatch, caplog):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "fail")
    calls: list = []
    service = make_service(tmp_path, fake_python, [Recorder("bad", calls, fail=True), Recorder("good", calls)])
    job = queued_job(service)
    done = run_to_end(service, job.id)
    assert done.state == S.FAILED and done.returncode == 3
    assert [c[:2] for c in calls] == [("bad", "before_start"), ("good", "before_start"),
                                      ("bad", "after_end"), ("good", "after_end")]
    assert calls[-1][3] == S.FAILED
    assert "hook exploded" in caplog.text and "Recorder.before_start failed" in caplog.text


def test_cancel_ends_with_after_end(tmp_path, fake_python, lora, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "hang")
    calls: list = []
    service = make_service(tmp_path, fake_python, None)
    service.hooks.add(Recorder("late", calls))  # hooks can be added after the service exists
    job = queued_job(service)
    service.tick()
    assert service.get(job.id).state == S.RUNNING
    probe = Path(job.job_dir) / "hook_probe.txt"
    deadline = time.time() + 30
    while not probe.exists() and time.time() < deadline:  # cancel once the trainer runs (a SIGTERM
        time.sleep(0.1)                                  # during the supervisor's start-up kills it)
    service.cancel(job.id, wait=True, grace_s=5)
    done = run_to_end(service, job.id, timeout=30)
    assert done.state == S.CANCELLED, (done.error_kind, done.error, done.returncode)
    assert [c[1:] for c in calls] == [("before_start", job.id, S.RUNNING), ("after_end", job.id, S.CANCELLED)]


def test_failed_launch_still_pairs_after_end(tmp_path, lora, monkeypatch):
    import lib_lora_trainer.jobs.lifecycle as lifecycle

    def cannot_start(*a, **k):
        raise OSError("no such interpreter")

    calls: list = []
    service = JobService(tmp_path / "data", tmp_path / "Lora", hooks=Recorder("only", calls))
    job = queued_job(service)
    monkeypatch.setattr(lifecycle, "start_supervised", cannot_start)
    service.tick()
    failed = service.get(job.id)
    assert failed.state == S.FAILED and failed.error_kind == "launch" and "no such interpreter" in failed.error
    assert [c[1:] for c in calls] == [("before_start", job.id, S.RUNNING), ("after_end", job.id, S.FAILED)]


def test_composite_accepts_one_hook_a_list_or_none_and_rejects_non_hooks():
    calls: list = []
    one = Recorder("a", calls)
    assert isinstance(one, JobHooks)
    assert as_composite(one).hooks == [one]
    assert as_composite([one, one]).hooks == [one, one]
    assert as_composite(None).hooks == []
    composite = CompositeHooks()
    assert as_composite(composite) is composite
    with pytest.raises(TypeError, match="before_start"):
        composite.add(object())
    composite.add(one)
    composite.remove(one)
    assert composite.hooks == []
