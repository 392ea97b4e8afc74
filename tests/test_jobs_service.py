"""The job service with real subprocesses on the tiny model: queue, kill -9 + resume, cancel,
a second service process, install with sidecar."""

import json
import os
import signal

import pytest

from jobs_helpers import cli, photos, tiny_config, wait_until
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService, SubmitError
from lib_lora_trainer.lora_file import read_lora_header


def test_cli_train_from_dataset_to_installed_lora_with_sidecar(tmp_path, tiny_model):
    src = photos(tmp_path)
    data, lora_dir = tmp_path / "data", tmp_path / "Lora"
    r = cli(data, "train", src, "--trigger", "zkperson", "--base", tiny_model, "--name", "zk_v1",
            "--preset", "cpu-tiny", "--set", "max_train_steps=4", "--lora-dir", lora_dir)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 images, 4 steps, sd1 model, builtin engine" in r.stdout
    lora = lora_dir / "zk_v1.safetensors"
    assert f"done: {lora}" in r.stdout and lora.is_file()
    sidecar = json.loads((lora_dir / "zk_v1.json").read_text())
    assert sidecar["activation text"] == "zkperson" and sidecar["sd version"] == "sd"
    assert sidecar["preferred weight"] == 1.0 and "4 steps, 6 images" in sidecar["notes"]
    _, md = read_lora_header(lora)
    assert md["ss_steps"] == "4" and md["ss_output_name"] == "zk_v1"
    listed = json.loads(cli(data, "jobs", "list", "--json").stdout)
    assert len(listed) == 1
    job = listed[0]
    assert job["state"] == "succeeded" and job["progress"]["step"] == 4 and job["progress"]["total"] == 4
    assert job["paths"]["installed"] == str(lora) and os.path.isfile(job["paths"]["stdout"])
    # A second run never overwrites the first LoRA silently.
    r2 = cli(data, "train", src, "--trigger", "zkperson", "--base", tiny_model, "--name", "zk_v1",
             "--preset", "cpu-tiny", "--set", "max_train_steps=2", "--lora-dir", lora_dir)
    assert r2.returncode == 0, r2.stderr
    assert (lora_dir / "zk_v2.safetensors").is_file() and read_lora_header(lora)[1]["ss_steps"] == "4"


@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", "x\x00y", ""])
def test_bad_names_are_refused_before_anything_runs(tmp_path, tiny_model, name):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    with pytest.raises((SubmitError, ValueError)):
        service.submit(photos(tmp_path), tiny_config(tiny_model, name))
    assert service.list() == [] or all(j.state == S.FAILED for j in service.list())


def test_kill_9_interrupts_and_resume_continues_the_step_count(tmp_path, tiny_model):
    data, lora_dir = tmp_path / "data", tmp_path / "Lora"
    service = JobService(data, lora_dir)
    job = service.submit(photos(tmp_path), tiny_config(tiny_model, "killme", max_train_steps=60,
                                                       save_every_n_steps=5, save_state=True))
    service.tick()
    running = wait_until(lambda: (service.reconcile(), service.get(job.id))[1].progress.get("step", 0) >= 12
                         and service.get(job.id), what="step 12")
    assert running.state == S.RUNNING
    os.killpg(running.pid, signal.SIGKILL)  # the trainer and its supervisor die at once
    # A NEW service process (the CLI) finds the job gone and marks it interrupted.
    r = cli(data, "jobs", "show", job.id, "--json")
    shown = json.loads(r.stdout)
    assert shown["state"] == "interrupted", shown
    killed_at = shown["progress"]["step"]
    r = cli(data, "jobs", "resume", job.id, "--wait", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    final = service.get(job.id)
    assert final.state == S.SUCCEEDED and final.progress["step"] == 60
    resumed_from = json.loads((final.folder / "output" / os.path.basename(final.resume_from) /
                               "train_state.json").read_text())["current_step"]
    assert 10 <= resumed_from <= killed_at and resumed_from % 5 == 0
    log = (final.folder / "stderr.log").read_text(encoding="utf-8", errors="replace")
    assert f"| {resumed_from}/60 [" in log, "the resumed bar starts at the saved step"
    _, md = read_lora_header(final.installed_path)
    assert md["ss_steps"] == "60"


def test_second_job_waits_for_the_first_then_runs(tmp_path, tiny_model):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    src = photos(tmp_path)
    first = service.submit(src, tiny_config(tiny_model, "first", max_train_steps=30))
    second = service.submit(src, tiny_config(tiny_model, "second", max_train_steps=3))
    service.tick()
    assert service.get(first.id).state == S.RUNNING and service.get(second.id).state == S.QUEUED
    service.tick()
    assert service.get(second.id).state == S.QUEUED, "one running job per GPU"
    done = service.wait(second.id, poll_s=0.5, timeout_s=600)
    assert done.state == S.SUCCEEDED
    first_done = service.get(first.id)
    assert first_done.state == S.SUCCEEDED and first_done.finished_at <= done.started_at


def test_cancel_stops_gracefully_and_the_job_can_resume(tmp_path, tiny_model):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = service.submit(photos(tmp_path), tiny_config(tiny_model, "stopme", max_train_steps=400,
                                                       save_every_n_steps=1000))
    service.tick()
    wait_until(lambda: (service.reconcile(), service.get(job.id).progress.get("step", 0) >= 3)[1], what="step 3")
    cancelled = service.cancel(job.id, wait=True, grace_s=120)
    assert cancelled.state == S.CANCELLED, (cancelled.error_kind, cancelled.error)
    out = cancelled.folder / "output"
    saved = [p.name for p in out.glob("stopme-step*.safetensors")]
    assert saved, "Stop saves the weights"
    assert list(out.glob("stopme-step*-state"))
    resumed = service.resume(job.id)
    assert resumed.state == S.QUEUED and "stopme-step" in resumed.resume_from


def test_bad_dataset_is_reported_and_nothing_queued(tmp_path, tiny_model):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SubmitError, match="no usable image"):
        service.submit(empty, tiny_config(tiny_model, "nothing"))
    [job] = service.list()
    assert job.state == S.FAILED and job.error_kind == "prepare"
