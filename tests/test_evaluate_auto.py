"""Starting a LoRA test and following it (issue 12, items 3 and 4): the subprocess tester's
interpreter and environment from a host-like process, A1111's in-process tester with a fake
renderer, the progress in pictures ("testing: n/N") in files, the API and the Result section."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval_helpers import FakeRenderer, host_like_start, make_lora, recording_python, succeeded_job
from lib_lora_trainer.evaluate import auto as A
from lib_lora_trainer.evaluate import progress as P
from lib_lora_trainer.evaluate.plan import EvalPlan
from lib_lora_trainer.evaluate.run import EvalTarget, Evaluation
from lib_lora_trainer.evaluate.scoring import ImageStatsScorer
from lib_lora_trainer.hosts.a1111_renderer import A1111AutoTest
from lib_lora_trainer.jobs.service import JobService

ROOT = Path(__file__).resolve().parent.parent


# ---- progress in pictures ---------------------------------------------------------------------

def test_every_sweep_counts_its_pictures_and_reports_each_cell(tmp_path):
    """The planned total equals what is rendered, for every sweep; progress comes after every cell,
    each cell being one renderer call with all its seeds; the preview renders one picture."""
    lora, other, ckpt = make_lora(tmp_path / "a.safetensors"), make_lora(tmp_path / "b.safetensors"), tmp_path / "a-01.safetensors"
    plan = EvalPlan(prompts=["p1", "p2", "p3"], novel_from=1, seeds=(1, 2, 3), samplers=("Euler a", "DDIM"),
                    steps_sweep=(2, 4), checkpoints=[ckpt], second_lora=other)
    seen = []
    renderer = FakeRenderer()
    ev = Evaluation(EvalTarget(lora=lora, trigger="zyrette"), plan, tmp_path / "out", renderer, [],
                    say=lambda m: None, progress=lambda done, total, cell: seen.append((done, total, cell)))
    result = ev.run()
    rendered = sum(len(seeds) for _, seeds, _ in renderer.calls)
    assert seen[0][:2] == (0, rendered) and seen[-1][:2] == (rendered, rendered) == (result.pictures, ev.total)
    assert [d for d, _, _ in seen] == sorted(d for d, _, _ in seen) and len(seen) == len(renderer.calls) + 1
    assert all(len(seeds) == 3 for _, seeds, _ in renderer.calls[:-1]) and len(renderer.calls[-1][1]) == 1
    assert "p1" in seen[1][2] and "no LoRA" in seen[1][2]


class ZeroLeaksRenderer(FakeRenderer):
    """A broken LoRA loader: weight 0 still changes the picture."""

    def images(self, prompt, seeds, loras, **kw):
        return super().images(prompt, seeds, [(p, w or 0.01) for p, w in loras], **kw)


@pytest.mark.parametrize("renderer_class", [FakeRenderer, ZeroLeaksRenderer])
def test_weight_zero_is_checked_once_and_rendered_everywhere_when_it_differs(tmp_path, renderer_class):
    lora = make_lora(tmp_path / "a.safetensors")
    plan = EvalPlan(prompts=["p1", "p2", "p3"], novel_from=1, seeds=(1, 2), weights=(0.0, 1.0))
    renderer = renderer_class()
    ev = Evaluation(EvalTarget(lora=lora, trigger="zyrette"), plan, tmp_path / "out", renderer, [],
                    say=lambda m: None)
    result = ev.run()
    zero = [r for r in result.scores if r["sweep"] == "weights" and r["weight"] == 0.0]
    zero_calls = [c for c in renderer.calls if c[2] and c[2][0][1] < 0.5]   # weight 0 (0.01 when leaking)
    if renderer_class is FakeRenderer:
        assert [r.get("equals_base") for r in zero] == [True, None, None] and len(zero_calls) == 1
    else:  # never passed off as the base: every prompt's weight 0 is rendered and reported as differing
        assert [r.get("equals_base") for r in zero] == [False] * 3 and len(zero_calls) == 3
        assert not any(r.get("reused_base") for r in zero)
    assert result.pictures == ev.total == sum(len(seeds) for _, seeds, _ in renderer.calls)


def test_status_from_the_files_none_running_failed_done(tmp_path):
    folder, log = tmp_path / "test", tmp_path / "test.log"
    assert P.read_status(folder, log).state == "none"
    P.reset(folder)
    P.mark_launch(folder, os.getpid(), "weights", "thread")
    running = P.read_status(folder, log)
    assert running.state == "running" and running.text == "testing: starting (loading the model)"
    tracker = P.ProgressFile(folder)
    tracker(12, 145, "p1 (zyr:0.5)")
    status = P.read_status(folder, log)
    assert (status.state, status.done, status.total, status.text) == ("running", 12, 145, "testing: 12/145 pictures")
    # a started process that died without a report: failed, with the last line of its log
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    P.reset(folder)
    P.mark_launch(folder, dead.pid, "weights", "subprocess")
    log.write_text("Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'tomli_w'\n")
    failed = P.read_status(folder, log)
    assert failed.state == "failed" and failed.text == "test failed: ModuleNotFoundError: No module named 'tomli_w'"
    tracker = P.ProgressFile(folder)
    tracker.fail("RuntimeError: boom")
    assert P.read_status(folder, log).error == "RuntimeError: boom"
    (folder / "report.json").write_text("{}")
    assert P.read_status(folder, log).state == "done"


# ---- the subprocess tester (standalone, CLI, bare API) ------------------------------------------

def test_subprocess_test_runs_in_the_trainer_python_with_our_package_and_deps(tmp_path):
    """Issue 12 item 3: from a host-like process the child runs in the trainer environment's Python
    (not the host's), finds lib_lora_trainer and <ext>/.deps, and its failure is reported with
    its real cause (here: the base model is missing), never a ModuleNotFoundError."""
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = succeeded_job(service, tmp_path)
    out, status, deps = host_like_start(tmp_path, service, job, recording_python(tmp_path))
    assert "STARTED running" in out
    child = json.loads((tmp_path / "child.json").read_text())
    assert child["argv"][1:4] == ["-m", "lib_lora_trainer", "test"] and job.id in child["argv"]
    assert child["cwd"] == job.job_dir
    path = child["env"]["PYTHONPATH"].split(os.pathsep)
    assert path[0] == str(ROOT) and str(deps) in path and "PYTHONHOME" not in child["env"]
    assert status["state"] == "failed", status
    assert "missing-model" in status["error"] and "ModuleNotFoundError" not in status["error"], status
    assert "[lora-trainer] test:" in (Path(job.job_dir) / "test.log").read_text()


def test_subprocess_tester_says_why_it_cannot_start(tmp_path):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = succeeded_job(service, tmp_path)
    with pytest.raises(A.TestStartError, match="no-such-python"):
        A.start_test(job, service.data_dir, settings={"trainer_python": str(tmp_path / "no-such-python")})
    running = service.store.create("r", "builtin", str(tmp_path / "r"), {}, state="running")
    with pytest.raises(A.TestStartError, match="only a succeeded job"):
        A.start_test(running, service.data_dir)
    # the hook (after a job): the reason is the test's state, the job stays succeeded
    A.AutoTestHook(service.data_dir, settings={"trainer_env_dir": str(tmp_path / "env"),
                                             "trainer_env_install": False}).after_end(job)
    status = A.test_status(Path(job.job_dir))
    assert status.state == "failed" and "--skip-install" in status.error


# ---- A1111's in-process tester ------------------------------------------------------------------

def test_a1111_tester_renders_in_a_thread_and_reports_pictures(tmp_path):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = succeeded_job(service, tmp_path)
    renderer = FakeRenderer(delay=0.01)
    tester = A1111AutoTest(renderer, scorers=[ImageStatsScorer()], seeds=2, steps=2)
    status = tester.start_test(job)
    assert status.state == "running"
    assert tester.start_test(job).state == "running" and len([t for t in tester._running.values()]) == 1
    tester.wait(job.id, timeout=60)
    done = A.test_status(Path(job.job_dir))
    # 2 dataset + 3 novel prompts, base + 5 weights, 2 seeds each, + 1 preview picture; weight 0 is
    # rendered for the first prompt only (bit-identical to the base, which then stands in for it)
    assert (done.state, done.done, done.total) == ("done", 53, 53), done
    assert len(renderer.calls) == 5 * 6 + 1 - 4               # one txt2img call per cell
    assert "test done" in (Path(job.job_dir) / "test.log").read_text()
    assert Path(job.installed_path).with_suffix(".preview.png").is_file()


def test_a1111_tester_failure_is_the_tests_state_with_its_cause(tmp_path):
    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = succeeded_job(service, tmp_path)
    tester = A1111AutoTest(FakeRenderer(fail_after=3), scorers=[], seeds=1)
    tester.start_test(job)
    tester.wait(job.id, timeout=60)
    status = A.test_status(Path(job.job_dir))
    assert status.state == "failed" and "CUDA out of memory (fake)" in status.error and status.done == 3
    assert service.get(job.id).state == "succeeded"


# ---- the API and the Result section use the service's tester -----------------------------------

def test_api_starts_the_services_tester_and_shows_progress(tmp_path):
    from fastapi.testclient import TestClient

    from lib_lora_trainer.api import create_app

    renderer = FakeRenderer(delay=0.01)
    tester = A1111AutoTest(renderer, scorers=[], seeds=1)
    service = JobService(tmp_path / "data", tmp_path / "Lora", hooks=[tester])
    job = succeeded_job(service, tmp_path)
    client = TestClient(create_app(service, dataset_roots=[tmp_path], upload_dir=tmp_path / "up", auth=None))
    url = f"/lora-trainer/v1/jobs/{job.id}/test"
    assert client.get(url).json()["state"] == "none"
    r = client.post(url)
    assert r.status_code == 202 and r.json()["state"] in ("running", "done"), r.json()
    tester.wait(job.id, timeout=60)
    body = client.get(url).json()
    assert body["state"] == "done" and body["done"] == body["total"] == 5 * 6 + 1 - 4 and body["report"]["verdict"]
    assert renderer.calls, "the API must run the host's tester (A1111's txt2img inside A1111)"
    # a bare service: the subprocess tester, whose trainer Python is unusable here -> 409 with why
    bare = JobService(tmp_path / "data", tmp_path / "Lora", settings={"trainer_python": str(tmp_path / "nope")})
    client = TestClient(create_app(bare, dataset_roots=[tmp_path], upload_dir=tmp_path / "up", auth=None))
    r = client.post(url)
    assert r.status_code == 409 and "nope" in r.json()["error"]
    assert isinstance(A.tester_for(bare), A.AutoTestHook) and A.tester_for(service) is tester


def test_the_automatic_test_compares_every_saved_file_when_there_are_several(tmp_path):
    """A job that saved intermediate files is tested with the checkpoints sweep too, so the
    ranking can pick the file, not only the weight (the real test subprocess, through a Python that
    records its command line)."""
    import json
    import time

    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = succeeded_job(service, tmp_path)
    assert A.default_sweep(job) == "weights"
    make_lora(Path(job.job_dir) / "output" / "zyr-000001.safetensors")
    assert A.default_sweep(job) == "weights,checkpoints"
    recorder = recording_python(tmp_path)
    A.AutoTestHook(service.data_dir, python=str(recorder)).start_test(job)
    record = tmp_path / "child.json"
    deadline, argv = time.time() + 60, None
    while argv is None and time.time() < deadline:
        try:
            argv = json.loads(record.read_text())["argv"]
        except (OSError, ValueError):   # not there, or not completely written yet
            time.sleep(0.1)
    assert argv[argv.index("--sweep") + 1] == "weights,checkpoints"
