"""Resume of a run whose last saved state is at the final step (seen in A1111: a job wrongly marked
interrupted at 200/200 was resumed and trained step 201/200). It must train nothing more."""

from __future__ import annotations

import json
from pathlib import Path

from jobs_helpers import photos, tiny_config, wait_until
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService
from lib_lora_trainer.lora_file import read_lora_header


def _trained_but_marked_interrupted(tmp_path, tiny_model, name):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = service.submit(photos(tmp_path, n=3), tiny_config(tiny_model, name, max_train_steps=4, save_state=True))
    service.tick()
    wait_until(lambda: (job.folder / "exitcode.json").is_file(), timeout=300, what="the trainer to finish")
    # What the launch race used to do: the row says interrupted although every step was trained.
    service.store.update(job.id, state=S.INTERRUPTED, error_kind="interrupted", error="disappeared")
    return service, service.get(job.id)


def test_resume_of_a_finished_run_installs_without_training(tmp_path, tiny_model):
    service, job = _trained_but_marked_interrupted(tmp_path, tiny_model, "done4")
    starts_before = (job.folder / "stdout.log").read_text().count("[lora-trainer] run start")
    resumed = service.resume(job.id)
    assert resumed.state == S.SUCCEEDED, (resumed.error_kind, resumed.error)
    assert resumed.progress["step"] == 4 and resumed.progress["total"] == 4
    _, md = read_lora_header(resumed.installed_path)
    assert md["ss_steps"] == "4"
    sidecar = json.loads(open(resumed.installed_path[:-len(".safetensors")] + ".json").read())
    assert "4 steps" in sidecar["notes"]
    assert (job.folder / "stdout.log").read_text().count("[lora-trainer] run start") == starts_before  # no relaunch


def test_engine_resumed_at_the_last_step_trains_no_step_more(tmp_path, tiny_model):
    """Without the final LoRA file the resume relaunches; the trainer then only saves."""
    service, job = _trained_but_marked_interrupted(tmp_path, tiny_model, "again4")
    plan = json.loads((job.folder / "plan.json").read_text())
    (Path(plan["output_dir"]) / "again4.safetensors").unlink()
    assert service.resume(job.id).state == S.QUEUED
    done = service.wait(job.id, poll_s=0.3, timeout_s=300)
    assert done.state == S.SUCCEEDED, (done.error_kind, done.error)
    assert done.progress["step"] == 4
    _, md = read_lora_header(done.installed_path)
    assert md["ss_steps"] == "4"
    last_attempt = (job.folder / "stdout.log").read_text().rsplit("[lora-trainer] run start", 1)[1]
    assert "5/4" not in last_attempt and "model saved." in last_attempt
