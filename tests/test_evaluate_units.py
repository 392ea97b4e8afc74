"""Evaluation pieces without a model: plan checks, grid geometry, verdict rules, scores, reports."""

import numpy as np
import pytest
from PIL import Image

from lib_lora_trainer.evaluate.dataset_pairs import caption_pairs, spread
from lib_lora_trainer.evaluate.grid import HEAD_H, TITLE_H, make_grid
from lib_lora_trainer.evaluate.plan import EvalPlan, PlanError, novel_prompts, parse_sweeps
from lib_lora_trainer.evaluate.scoring import EvalContext, ImageStatsScorer, colour_histogram
from lib_lora_trainer.evaluate.verdict import MIN_CONCEPT, decide


def solid(rgb, size=64):
    return Image.new("RGB", (size, size), rgb)


def test_plan_rejects_bad_fields_by_name(tmp_path):
    with pytest.raises(PlanError, match="^weights:"):
        EvalPlan(prompts=["a"], novel_from=0, weights=(0, 3.0)).validate()
    with pytest.raises(PlanError, match="^prompts:"):
        EvalPlan(prompts=[], novel_from=0).validate()
    with pytest.raises(PlanError, match="^second_lora:"):
        EvalPlan(prompts=["a"], novel_from=0, second_lora=tmp_path / "nope.safetensors").validate()
    with pytest.raises(PlanError, match="unknown colours"):
        parse_sweeps("weights,colours")
    assert parse_sweeps("samplers") == {"weights", "samplers"}
    assert all(p.startswith("zk, man") for p in novel_prompts("zk", "man"))


def test_grid_has_one_cell_per_row_and_column():
    cells = [[solid((255, 0, 0)), None, solid((0, 0, 255))] for _ in range(4)]
    img = make_grid(["p1", "p2", "p3", "p4"], ["dataset", "w=0", "w=1"], cells, cell=100, title="t", label_width=200)
    top = TITLE_H + HEAD_H
    assert img.size == (200 + 3 * 100, top + 4 * 100)
    arr = np.asarray(img)
    assert tuple(arr[top + 50, 200 + 50]) == (255, 0, 0)        # first column: red cell
    assert tuple(arr[top + 50, 200 + 250]) == (0, 0, 255)       # third column: blue cell
    with pytest.raises(ValueError, match="shape"):
        make_grid(["p1"], ["a", "b"], [[solid((0, 0, 0))]])


def test_image_stats_measure_change_and_dataset_similarity():
    ctx = EvalContext(trigger="zk", dataset_images=[solid((250, 130, 190))] * 2)
    base = [solid((40, 70, 205)), solid((40, 70, 200))]
    same = ImageStatsScorer().score(base, "p", base, ctx)
    assert same["change_vs_base"] == 0.0
    pinkish = [solid((250, 130, 190)), solid((245, 130, 190))]
    moved = ImageStatsScorer().score(pinkish, "p", base, ctx)
    assert moved["change_vs_base"] > 0.3
    assert moved["dataset_colour_similarity"] > 0.9 > same["dataset_colour_similarity"]
    assert abs(colour_histogram(base).sum() - 1) < 1e-9


def test_verdict_from_concept_scores():
    novel = {0.0: {"concept": 0.3, "prompt_following": 0.8}, 0.5: {"concept": 0.7, "prompt_following": 0.75},
             1.0: {"concept": 0.9, "prompt_following": 0.7}}
    v = decide(novel, {})
    assert v.label == "good" and v.basis == "concept" and v.recommended_weight == 1.0
    flat = {w: {"concept": 0.3, "prompt_following": 0.8} for w in (0.0, 1.0)}
    assert decide(flat, {}).label == "under-trained"
    bossy = {0.0: {"concept": 0.3, "prompt_following": 0.8}, 0.5: {"concept": 0.85, "prompt_following": 0.7},
             1.0: {"concept": 0.9, "prompt_following": 0.2}}
    v = decide(bossy, {})
    assert v.label == "over-trained" and v.recommended_weight == 0.5
    # Over-trained everywhere (the demo LoRA at lr 1e-2): no weight that loses the prompts is advised.
    hot = {0.0: {"concept": 0.27, "prompt_following": 0.74}, 0.5: {"concept": 0.4, "prompt_following": 0.5},
           1.0: {"concept": 0.46, "prompt_following": 0.26}}
    v = decide(hot, {})
    assert v.label == "over-trained" and "no weight keeps the prompts" in v.reason and v.recommended_weight == 0.5
    # Rising well past the lift line, but only half there: not good (issue 14).
    half = {0.0: {"concept": 0.13, "prompt_following": 0.55}, 1.0: {"concept": 0.46, "prompt_following": 0.53}}
    v = decide(half, {})
    assert v.label == "under-trained" and "partly learned" in v.reason and f"{MIN_CONCEPT:.2f}" in v.reason


def test_verdict_from_image_statistics_alone():
    assert decide({0.0: {"change_vs_base": 0.0, "seed_diversity": 0.2},
                   1.0: {"change_vs_base": 0.001, "seed_diversity": 0.2}}, {}).label == "under-trained"
    assert decide({0.0: {"change_vs_base": 0.0, "seed_diversity": 0.2},
                   1.0: {"change_vs_base": 0.2, "seed_diversity": 0.01}}, {}).label == "over-trained"
    assert decide({0.0: {"change_vs_base": 0.0, "seed_diversity": 0.2},
                   1.0: {"change_vs_base": 0.2, "seed_diversity": 0.18}}, {}).label == "good"


def test_caption_pairs_and_spread(tmp_path):
    d = tmp_path / "img" / "10_zk"
    d.mkdir(parents=True)
    for i in range(5):
        solid((i, i, i)).save(d / f"{i}.png")
        if i != 3:
            (d / f"{i}.txt").write_text(f"zk, caption {i}\nsecond line", encoding="utf-8")
    pairs = caption_pairs(tmp_path / "img")
    assert [c for _, c in pairs] == ["zk, caption 0", "zk, caption 1", "zk, caption 2", "", "zk, caption 4"]
    assert spread(list(range(10)), 3) == [0, 3, 6]
    with pytest.raises(FileNotFoundError):
        caption_pairs(tmp_path / "missing")
