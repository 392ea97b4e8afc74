"""Train then test on the tiny model, through the job service: holdout, every sweep, the grids,
weight-0 identity, scores in range, the preview, the `test` CLI and the API routes."""

import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from eval_helpers import host_like_start
from jobs_helpers import cli, photos, tiny_config

from lib_lora_trainer.evaluate.grid import CELL, HEAD_H, LABEL_WIDTH, TITLE_H
from lib_lora_trainer.evaluate.job_eval import evaluate_subject, subject_for_job
from lib_lora_trainer.evaluate.scoring import ImageStatsScorer
from lib_lora_trainer.jobs.service import JobService


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("evaltiny")
    service = JobService(data_dir=tmp / "data", lora_dir=tmp / "Lora")
    cfg = tiny_config(tiny_model, "evaltiny", holdout_images=2, save_every_n_epochs=1, test_after_training=False)
    job = service.submit(photos(tmp, n=6), cfg)
    job = service.wait(job.id, poll_s=0.3, timeout_s=600)
    assert job.state == "succeeded", (job.error_kind, job.error)
    return service, job


def test_held_out_pictures_are_not_trained_on(trained):
    _, job = trained
    folder = Path(job.job_dir)
    held = sorted(p.name for p in (folder / "holdout").iterdir() if p.suffix == ".png")
    trained_names = {p.name for p in (folder / "dataset" / "img").rglob("*.png")}
    assert len(held) == 2 and not set(held) & trained_names and len(trained_names) == 4
    assert json.loads((folder / "plan.json").read_text())["held_out"] == held


def test_held_out_pictures_give_a_validation_loss_at_every_save(trained):
    """dataset.toml gets the held-out pictures as a validation-only dataset (sd-scripts v0.10's
    validation_split 1.0), run.toml validates at every save; the job's progress has the held-out
    loss per validation and the tab's chart draws it beside the training loss."""
    import tomllib

    from lib_lora_trainer.ui.job_view import loss_svg

    service, job = trained
    folder = Path(job.job_dir)
    ds = tomllib.loads((folder / "dataset.toml").read_text())
    held = ds["datasets"][1]
    assert held["validation_split"] == 1.0 and held["subsets"][0]["image_dir"] == str((folder / "holdout").resolve())
    assert tomllib.loads((folder / "run.toml").read_text())["validate_every_n_epochs"] == 1
    job = service.get(job.id)
    history = job.progress["val_loss_history"]
    epochs = job.progress.get("epochs") or 1
    assert len(history) == epochs and all(v > 0 for _, v in history), history
    assert [s for s, _ in history] == sorted(s for s, _ in history)
    svg = loss_svg(job.progress["loss_history"], validation=history)
    assert svg.count("<circle") == len(history) and "held-out loss" in svg
    assert list((folder / "logs").rglob("events.out.tfevents.*"))


def test_every_sweep_has_the_right_cells_and_weight_zero_is_the_base(trained):
    _, job = trained
    subject = subject_for_job(job)
    assert len(subject.checkpoints) >= 1  # per-epoch files (save_every_n_epochs=1)
    result, json_path, md_path = evaluate_subject(
        subject, {"weights", "samplers", "steps", "checkpoints"}, scorers=[ImageStatsScorer()], seeds=2,
        say=lambda m: None, steps=3, samplers=("Euler a", "DPM++ 2M Karras"), steps_sweep=(2, 4))
    prompts, weights = result.plan["prompts"], result.plan["weights"]
    assert len(weights) == 5 and len(prompts) == 3 + 3
    by_sweep = {}
    for row in result.scores:
        by_sweep.setdefault(row["sweep"], []).append(row)
    assert len(by_sweep["weights"]) == len(prompts) * 5
    assert len(by_sweep["samplers"]) == 2 * 2 and len(by_sweep["steps"]) == 2 * 2
    assert len(by_sweep["checkpoints"]) == 3 * (len(subject.checkpoints) + 1) * 5   # every novel prompt
    zero = [r for r in by_sweep["weights"] if r["weight"] == 0.0]
    # weight 0 is rendered with the LoRA once (first prompt) and found bit-identical; the base stands in after
    assert [r.get("equals_base") for r in zero] == [True] + [None] * (len(prompts) - 1)
    assert all(r.get("reused_base") for r in zero[1:]) and all(r["change_vs_base"] == 0.0 for r in zero)
    assert any(r["change_vs_base"] > 0 for r in by_sweep["weights"] if r["weight"] == 1.0)
    for row in by_sweep["weights"]:
        assert 0 <= row["dataset_colour_similarity"] <= 1 and 0 <= row["change_vs_base"] <= 1
        assert 0 <= row["holdout_colour_similarity"] <= 1
    grid = Image.open(result.grids["weights"])
    assert grid.size == (LABEL_WIDTH + CELL * 6, TITLE_H + HEAD_H + CELL * 6)
    assert Image.open(result.grids["samplers"]).size == (LABEL_WIDTH + CELL * 2, TITLE_H + HEAD_H + CELL * 2)
    preview = Path(job.installed_path).with_suffix(".preview.png")
    assert preview.is_file() and Image.open(preview).size[0] >= 256
    report = json.loads(json_path.read_text())
    assert report["verdict"]["label"] in ("under-trained", "good", "over-trained")
    assert "## Grids" in md_path.read_text()


def test_test_of_a_job_started_from_a_host_like_process_and_the_cli_on_a_file(trained, tiny_model, tmp_path):
    """Issue 12 item 3: the test subprocess started from a process whose working folder and
    PYTHONPATH are not the repository's (a host's) runs to the end in the trainer Python, with its
    progress in pictures; the `test` CLI on a file says what it lacks."""
    service, job = trained
    out, status, _ = host_like_start(tmp_path, service, job, sys.executable, extra=("--seeds", "1", "--steps", "2"),
                                     timeout=400)
    assert status["state"] == "done", (status, (Path(job.job_dir) / "test.log").read_text()[-2000:])
    # The job saved per-epoch files, so the automatic sweep adds them: 3 novel prompts x (the base +
    # every file at the 4 weights above 0), one seed; plus 6 prompts x 6 (weight 0 rendered for the
    # first prompt only: the base stands in after that check) and the preview.
    files = len(subject_for_job(job).checkpoints) + 1
    total = 6 * 6 - 5 + 1 + 3 * (1 + files * 4)
    assert status["done"] == status["total"] == total and status["text"] == f"tested: {total} pictures"
    report_plan = json.loads((Path(job.job_dir) / "test" / "report.json").read_text())["plan"]
    assert len(report_plan["checkpoints"]) == files - 1 >= 1
    assert "verdict:" in (Path(job.job_dir) / "test.log").read_text()
    # The embedding scorer has no weights here: said, not failed.
    report = json.loads((Path(job.job_dir) / "test" / "report.json").read_text())
    assert "no CLIP weights" in report["skipped_scorers"]["embeddings"]
    r = cli(service.data_dir, "test", job.installed_path, "--seeds", "1", "--steps", "2")
    assert r.returncode == 2 and "--model" in r.stderr
    r = cli(service.data_dir, "test", job.id, "--sweep", "colours")
    assert r.returncode == 2 and "unknown colours" in r.stderr


def test_api_serves_the_test_report_and_grids(trained, tmp_path):
    from fastapi.testclient import TestClient

    from lib_lora_trainer.api import create_app

    service, job = trained
    client = TestClient(create_app(service, dataset_roots=[tmp_path], upload_dir=tmp_path / "up", auth=None))
    base = "/lora-trainer/v1"
    if not (Path(job.job_dir) / "test" / "report.json").is_file():
        evaluate_subject(subject_for_job(job), {"weights"}, scorers=[ImageStatsScorer()], seeds=1,
                         say=lambda m: None, steps=2)
    r = client.get(f"{base}/jobs/{job.id}/test")
    assert r.status_code == 200 and r.json()["state"] == "done"
    assert r.json()["report"]["verdict"]["label"]
    png = client.get(f"{base}/jobs/{job.id}/test/grid_weights.png")
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    for bad in ("../plan.json", "report.json", "grid_weights.png%00.txt", "..%2Fplan.json"):
        assert client.get(f"{base}/jobs/{job.id}/test/{bad}").status_code == 404, bad
    assert client.get(f"{base}/jobs/nope/test").status_code in (400, 404)
