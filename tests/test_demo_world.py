"""The demo world: attributes, captions, prompt parsing, rendering, the sample dataset."""

import random

import numpy as np
import pytest

from lib_lora_trainer.dataset.check import check_dataset
from lib_lora_trainer.demo.render import render
from lib_lora_trainer.demo.sample_dataset import DEMO_CHARACTER, DEMO_TRIGGER, shots, write_sample_dataset
from lib_lora_trainer.demo.world import (ATTRIBUTES, HELD_OUT, IDENTITY, Person, describe, parse_prompt,
                                         random_person, trigger_caption)


def test_every_described_person_parses_back_to_its_attributes():
    rng = random.Random(5)
    for _ in range(500):
        p = random_person(rng, include_held_out=True)
        parsed = parse_prompt(describe(p))
        expected = p.attributes()
        if p.glasses == "no":  # "no glasses" is never written
            expected.pop("glasses")
        assert parsed == expected, describe(p)


def test_novel_prompts_parse_to_what_they_ask():
    assert parse_prompt("zyrette, woman in a red jacket, blue background") == {
        "gender": "woman", "clothing_colour": "red", "clothing": "jacket", "background": "blue"}
    assert parse_prompt("zyrette, smiling, yellow background") == {"expression": "smiling", "background": "yellow"}


def test_base_model_data_never_contains_the_held_out_looks():
    rng = random.Random(0)
    people = [random_person(rng) for _ in range(3000)]
    for name, values in HELD_OUT.items():
        assert not any(getattr(p, name) in values for p in people)
    # ...but the reader's data does, and the demo character is made of them.
    rng = random.Random(0)
    assert any(random_person(rng, include_held_out=True).hair_colour == "pink" for _ in range(200))
    assert DEMO_CHARACTER.hair_colour in HELD_OUT["hair_colour"] and DEMO_CHARACTER.hair_style in HELD_OUT["hair_style"]


def test_trigger_captions_start_with_the_trigger_and_leave_identity_out():
    for p in shots():
        cap = trigger_caption(DEMO_TRIGGER, p)
        assert cap.startswith(f"{DEMO_TRIGGER}, woman, ")
        assert "hair" not in cap and "buns" not in cap and "glasses" not in cap and "skin" not in cap
        parsed = parse_prompt(cap)
        assert {"background", "clothing_colour", "clothing", "expression"} <= set(parsed)
        assert all(getattr(p, k) == v for k, v in parsed.items())


def test_shots_keep_the_identity_and_vary_everything_else():
    people = shots()
    assert len(people) == 16
    assert {tuple(getattr(p, k) for k in IDENTITY) for p in people} == {tuple(getattr(DEMO_CHARACTER, k) for k in IDENTITY)}
    for name in ("expression", "background", "clothing_colour", "clothing"):
        assert len({getattr(p, name) for p in people}) == len(ATTRIBUTES[name])
    assert len({(p.dx, p.dy, p.scale) for p in people}) == 16


def test_render_is_deterministic_and_draws_the_asked_colours():
    p = Person(background="blue", hair_colour="red", clothing_colour="yellow")
    a, b = render(p, 64, seed=3), render(p, 64, seed=3)
    assert a.size == (64, 64) and a.tobytes() == b.tobytes()
    arr = np.asarray(a, dtype=np.float32)
    corner = arr[:6, :6].mean((0, 1))
    assert corner[2] > 150 and corner[0] < 90                      # blue background
    bottom = arr[58:, 26:38].mean((0, 1))
    assert bottom[0] > 180 and bottom[1] > 150 and bottom[2] < 90  # yellow clothes
    with pytest.raises(ValueError, match="hair_colour"):
        Person(hair_colour="plaid")


def test_sample_dataset_check_finds_the_planted_problems(tmp_path):
    report = check_dataset(write_sample_dataset(tmp_path / "photos"), 64, DEMO_TRIGGER)
    codes = {p.code for p in report.problems}
    assert {"duplicate_exact", "too_small_severe", "exif_rotation", "mode_alpha", "trigger_missing",
            "unknown_file"} <= codes
    assert not any(p.code == "duplicate_near" for p in report.problems)
