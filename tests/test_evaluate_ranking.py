"""Best checkpoint and weight (evaluate/ranking.py) on constructed score tables, the grid's frame
on the recommended cell, and the ranking in a whole evaluation (fake renderer, real files)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lib_lora_trainer.evaluate.grid import HEAD_H, MARK, make_grid
from lib_lora_trainer.evaluate.ranking import KEEP_DIVERSITY, KEEP_FOLLOWING, NEAR, Cell, cells_from_scores, rank

CKPTS = ("z-000001.safetensors", "z-000002.safetensors", "z.safetensors")
BASE = {"concept": 0.1, "prompt_following": 0.8, "seed_diversity": 0.2}


def table(values: dict[tuple[int, float], dict]) -> list[Cell]:
    return [Cell(CKPTS[i], i, w, dict(s)) for (i, w), s in values.items()]


def test_over_trained_last_checkpoint_loses_to_an_earlier_one_that_keeps_the_prompt():
    cells = table({(1, 0.5): {"concept": 0.6, "prompt_following": 0.75, "seed_diversity": 0.2},
                   (1, 1.0): {"concept": 0.8, "prompt_following": 0.7, "seed_diversity": 0.18},
                   (2, 0.5): {"concept": 0.7, "prompt_following": 0.7, "seed_diversity": 0.2},
                   (2, 1.0): {"concept": 0.95, "prompt_following": 0.3, "seed_diversity": 0.15}})
    r = rank(cells, BASE)
    assert r.metric == "concept"
    assert (r.best["checkpoint"], r.best["weight"]) == (CKPTS[1], 1.0)
    assert r.sentence.startswith(f"Use {CKPTS[1]} at weight 1: the highest concept (0.80) among 3 of 4 cells")
    worst = [c for c in r.cells if c["checkpoint"] == CKPTS[2] and c["weight"] == 1.0][0]
    assert not worst["usable"] and "prompt following 0.30" in worst["why_not"]
    assert r.cells[-1] == worst  # unusable cells come last


def test_near_ties_go_to_better_following_then_lower_weight_then_earlier_checkpoint():
    cells = table({(0, 1.0): {"concept": 0.80, "prompt_following": 0.70},
                   (1, 0.5): {"concept": 0.81, "prompt_following": 0.70},
                   (2, 1.0): {"concept": 0.80 + NEAR, "prompt_following": 0.70}})
    best = rank(cells, BASE).best
    assert (best["checkpoint"], best["weight"]) == (CKPTS[1], 0.5)   # lowest weight of the tie
    cells[0].scores["prompt_following"] = 0.76
    assert rank(cells, BASE).best["checkpoint"] == CKPTS[0]          # better following wins the tie
    cells[0].scores["prompt_following"] = 0.70
    cells[1].weight = 1.0
    assert rank(cells, BASE).best["checkpoint"] == CKPTS[0]          # same weight: the earlier file
    cells[2].scores["concept"] = 0.80 + 2.5 * NEAR                   # out of the tie: fidelity decides
    assert rank(cells, BASE).best["checkpoint"] == CKPTS[2]


def test_face_identity_comes_before_concept_held_out_faces_first_and_missing_faces_count():
    cells = table({(2, 0.5): {"concept": 0.9, "face_identity": 0.9, "face_found": 0.5, "prompt_following": 0.8},
                   (2, 1.0): {"concept": 0.5, "face_identity": 0.6, "face_found": 1.0, "prompt_following": 0.8}})
    r = rank(cells, BASE)
    assert r.metric == "face_identity"
    assert r.best["weight"] == 1.0 and r.best["fidelity"] == pytest.approx(0.6)  # 0.9 x half the faces = 0.45
    for c, v in zip(cells, (0.9, 0.4)):
        c.scores["face_identity_holdout"] = v
    r = rank(cells, BASE)
    assert r.metric == "face_identity_holdout" and r.best["weight"] == 0.5
    assert "identity to the held-out faces" in r.sentence


def test_collapsed_seeds_are_not_usable():
    cells = table({(2, 0.5): {"concept": 0.5, "prompt_following": 0.8, "seed_diversity": 0.2},
                   (2, 1.0): {"concept": 0.9, "prompt_following": 0.8, "seed_diversity": KEEP_DIVERSITY * 0.2 * 0.9}})
    r = rank(cells, BASE)
    assert r.best["weight"] == 0.5
    assert "seeds collapse" in r.cells[1]["why_not"]


def test_no_usable_cell_names_the_one_that_follows_best_and_says_what_to_do():
    cells = table({(2, 0.5): {"concept": 0.5, "prompt_following": 0.5},
                   (2, 1.0): {"concept": 0.9, "prompt_following": 0.2}})
    r = rank(cells, BASE)
    assert r.best["weight"] == 0.5
    assert r.sentence.startswith("No cell keeps the prompt (prompt following 0.50 < 0.8 x 0.80)")
    assert "train fewer steps" in r.sentence


def test_a_winner_barely_above_the_model_alone_is_no_recommendation(tmp_path):
    """Concept 0.63 where the model alone gives 0.56 is noise (a 200-step tiny run's report said
    "under-trained" while the ranking said "use weight 0.25"): the sentence says train longer, and
    no preferred weight is written."""
    from eval_helpers import make_lora
    from lib_lora_trainer.evaluate.ranking import MIN_LIFT
    from lib_lora_trainer.evaluate.recommend import set_preferred_weight
    from lib_lora_trainer.lora_file.sidecar import read_sidecar

    base = {"concept": 0.56, "prompt_following": 0.27}
    cells = [Cell("z.safetensors", 0, w, {"concept": c, "prompt_following": 0.3}) for w, c in ((0.25, 0.63), (1.0, 0.59))]
    r = rank(cells, base)
    assert not r.confident and r.best["weight"] == 0.25
    assert r.sentence == (f"No clear winner: the best cell (weight 0.25, concept 0.63) is only +0.07 over the model "
                          f"alone (0.56; needs {MIN_LIFT:+.2f}): train longer or with a higher learning rate.")
    lora = make_lora(tmp_path / "z.safetensors")
    assert set_preferred_weight(lora, vars(r)) is None and read_sidecar(lora) is None
    cells[1].scores["concept"] = 0.56 + MIN_LIFT + 0.01
    r = rank(cells, base)
    assert r.confident and r.sentence.startswith("Use weight 1: the highest concept (0.72) of all 2 cells")
    assert set_preferred_weight(lora, vars(r)) == 1.0 and read_sidecar(lora).preferred_weight == 1.0


def test_following_falls_back_to_clip_t_and_fidelity_to_image_similarity():
    base = {"clip_t": 0.30, "dataset_colour_similarity": 0.2}
    cells = table({(2, 0.5): {"clip_t": 0.29, "dataset_colour_similarity": 0.5},
                   (2, 1.0): {"clip_t": KEEP_FOLLOWING * 0.30 - 0.01, "dataset_colour_similarity": 0.7}})
    r = rank(cells, base)
    assert r.metric == "dataset_colour_similarity" and r.best["weight"] == 0.5


def test_nothing_to_rank_is_said_not_raised():
    assert "nothing to rank" in rank([], BASE).sentence
    assert "nothing to rank" in rank(table({(2, 0.0): {"concept": 0.1}}), BASE).sentence
    assert rank(table({(2, 1.0): {"sharpness": 3.0}}), BASE).best is None


def test_cells_from_the_checkpoint_sweep_or_else_the_weight_sweep():
    rows = [{"sweep": "weights", "prompt": p, "weight": w, "concept": c}
            for p, w, c in (("a", 0.0, 0.1), ("b", 0.0, 0.3), ("a", 1.0, 0.6), ("b", 1.0, 0.8))]
    cells, base = cells_from_scores(rows, "z.safetensors")
    assert base == {"concept": 0.2}
    assert [(c.checkpoint, c.weight, c.scores["concept"]) for c in cells] == [("z.safetensors", 1.0, 0.7)]
    rows += [{"sweep": "checkpoints", "checkpoint": name, "weight": w, "concept": c}
             for name, w, c in (("z-000001.safetensors", 0.0, 0.1), ("z-000001.safetensors", 1.0, 0.4),
                                ("z.safetensors", 0.0, 0.1), ("z.safetensors", 1.0, 0.9))]
    cells, base = cells_from_scores(rows, "z.safetensors")
    assert base == {"concept": 0.1}
    assert [(c.checkpoint, c.order, c.scores["concept"]) for c in cells] == [
        ("z-000001.safetensors", 0, 0.4), ("z.safetensors", 1, 0.9)]


def test_grid_frames_the_marked_cell_only():
    red = Image.new("RGB", (16, 16), (200, 0, 0))
    img = np.asarray(make_grid(["p"], ["w=0", "w=1"], [[red, red]], cell=64, label_width=100, marked=frozenset({(0, 1)})))
    top = HEAD_H  # no title: the column header's height
    assert tuple(img[top + 1, 100 + 64 + 30]) == MARK      # frame of cell (0, 1)
    assert tuple(img[top + 1, 100 + 30]) != MARK           # cell (0, 0) is not framed
    assert tuple(img[top + 32, 100 + 64 + 32]) == (200, 0, 0)


# ---- in a whole evaluation: report, grid frame, sidecar, install ------------------------------

class CheckpointRenderer:
    """Each file draws its own colour: red grows with the weight by `strength` (the concept), green
    with the weight by `drift` (how much it overrides the prompt); seeds vary the blue channel."""

    def __init__(self, behaviour: dict[str, tuple[float, float]]):
        self.behaviour = behaviour

    def images(self, prompt, seeds, loras, *, sampler, steps, cfg_scale, negative="", width=None, height=None):
        red = green = 0.0
        for path, w in loras:
            strength, drift = self.behaviour[Path(path).name]
            red, green = red + strength * float(w), green + drift * float(w)
        return [Image.new("RGB", (16, 16), (int(255 * min(red, 1)), int(255 * min(green, 1)), 20 * s)) for s in seeds]


class ColourScorer:
    name = "colour"

    def unavailable_reason(self, ctx):
        return None

    def score(self, images, prompt, base_images, ctx):
        a = np.stack([np.asarray(im, dtype=np.float32) / 255 for im in images])
        return {"concept": round(float(a[..., 0].mean()), 4), "prompt_following": round(1 - float(a[..., 1].mean()), 4)}


def _job_with_checkpoint(tmp_path):
    from eval_helpers import make_lora, succeeded_job
    from lib_lora_trainer.jobs.service import JobService

    service = JobService(tmp_path / "data", tmp_path / "Lora")
    job = succeeded_job(service, tmp_path)
    output = Path(job.job_dir) / "output"
    output.mkdir(parents=True)
    early = make_lora(output / "zyr-000001.safetensors")
    early.write_bytes(early.read_bytes() + b" ")     # tell the files apart by their bytes
    return service, job, early


def test_the_test_recommends_an_earlier_checkpoint_and_installs_it_on_request(tmp_path):
    from lib_lora_trainer.cli import main
    from lib_lora_trainer.evaluate.job_eval import evaluate_subject, subject_for_job
    from lib_lora_trainer.evaluate.recommend import RecommendError, install_recommended
    from lib_lora_trainer.evaluate.scoring import ImageStatsScorer
    from lib_lora_trainer.lora_file.sidecar import read_sidecar

    service, job, early = _job_with_checkpoint(tmp_path)
    installed = Path(job.installed_path)
    with pytest.raises(RecommendError, match="no test report"):
        install_recommended(job)
    # The final file learned more but overrides the prompt at every weight; the earlier one keeps it.
    renderer = CheckpointRenderer({installed.name: (0.9, 0.9), early.name: (0.8, 0.1)})
    subject = subject_for_job(job)
    result, _, md_path = evaluate_subject(subject, {"weights", "checkpoints"}, renderer=renderer,
                                          scorers=[ImageStatsScorer(), ColourScorer()], seeds=2, say=lambda *_: None)
    best = result.ranking["best"]
    assert (best["checkpoint"], best["weight"]) == (early.name, 1.0), result.ranking["sentence"]
    assert f"Use {early.name} at weight 1" in md_path.read_text() and "## Which checkpoint and weight" in md_path.read_text()
    grid = np.asarray(Image.open(result.grids["checkpoints"]).convert("RGB"))
    assert (grid == MARK).all(-1).sum() > 4 * 100        # the frame is drawn
    assert read_sidecar(installed).preferred_weight == 1.0 and "Test recommendation" not in read_sidecar(installed).notes

    assert main(["jobs", "--data-dir", str(service.data_dir), "--lora-dir", str(service.lora_dir),
                 "install-recommended", job.id]) == 0
    assert installed.read_bytes() == early.read_bytes()
    sidecar = read_sidecar(installed)
    assert sidecar.activation_text == "zyrette" and sidecar.preferred_weight == 1.0
    assert f"{early.name} installed as {installed.name}" in sidecar.notes


def test_when_the_final_file_wins_its_weight_becomes_the_preferred_weight(tmp_path):
    from lib_lora_trainer.evaluate.job_eval import evaluate_subject, subject_for_job
    from lib_lora_trainer.lora_file.sidecar import read_sidecar

    service, job, early = _job_with_checkpoint(tmp_path)
    installed = Path(job.installed_path)
    before = installed.read_bytes()
    # The final file is strong: above weight 0.5 it overrides the prompt.
    renderer = CheckpointRenderer({installed.name: (1.0, 0.3), early.name: (0.3, 0.1)})
    result, _, _ = evaluate_subject(subject_for_job(job), {"weights", "checkpoints"}, renderer=renderer,
                                    scorers=[ColourScorer()], seeds=2, say=lambda *_: None)
    best = result.ranking["best"]
    assert (best["checkpoint"], best["weight"]) == (installed.name, 0.5), result.ranking["sentence"]
    sidecar = read_sidecar(installed)
    assert sidecar.preferred_weight == 0.5 and "Test recommendation: Use" in sidecar.notes
    assert installed.read_bytes() == before
    assert Path(result.preview).is_file()
