import pytest

from lib_lora_trainer.config.steps import plan_steps, warmup_steps
from lib_lora_trainer.dataset.layout import folder_for, parse_folder_name


@pytest.mark.parametrize("name,repeats,tokens", [
    ("100_VadymPanchenko", 100, "VadymPanchenko"),
    ("10_vadym man", 10, "vadym man"),
    ("5_a_b", 5, "a_b"),
    ("1_", 1, ""),
])
def test_parse_like_sd_scripts(name, repeats, tokens):
    f = parse_folder_name(name)
    assert (f.repeats, f.class_tokens) == (repeats, tokens)
    assert f.name == name


@pytest.mark.parametrize("name", ["VadymPanchenko", "x_100", "0_zero", "-1_neg", "abc_def", "100", "1.5_x"])
def test_folders_sd_scripts_skips(name):
    assert parse_folder_name(name) is None


def test_folder_round_trip():
    f = folder_for(100, "VadymPanchenko")
    assert f.name == "100_VadymPanchenko" and parse_folder_name(f.name) == f
    g = folder_for(10, "vadym", "man")
    assert g.name == "10_vadym man" and parse_folder_name(g.name).class_tokens == "vadym man"


@pytest.mark.parametrize("trigger", ["", "  ", "a/b", "a\\b", "..", ".hidden", "nul\x00", "x" * 101])
def test_bad_trigger_names_refused(trigger):
    with pytest.raises(ValueError, match="trigger"):
        folder_for(100, trigger)


def test_bad_repeats_refused():
    with pytest.raises(ValueError, match="repeats"):
        folder_for(0, "x")


def test_step_arithmetic_matches_sd_scripts():
    # The thesis: 16 images x 100 repeats, batch 1, 1 epoch -> 1600 steps.
    assert plan_steps(16, 100).total_steps == 1600
    # Batch 4, 2 epochs: ceil(1600 / 4) x 2.
    assert plan_steps(16, 100, batch_size=4, epochs=2).total_steps == 800
    # Per-bucket rounding: buckets of 3 and 5 at batch 2 -> 2 + 3 = 5 batches, not ceil(8 / 2) = 4.
    assert plan_steps(8, 1, batch_size=2, bucket_sizes=[3, 5]).steps_per_epoch == 5
    # Gradient accumulation and processes divide the batches, rounding up.
    assert plan_steps(10, 1, grad_accum=3).steps_per_epoch == 4
    assert plan_steps(10, 1, num_processes=2, grad_accum=2).steps_per_epoch == 3
    assert "16 images x 100 repeats x 1 epoch / batch 1 = 1600 steps" in plan_steps(16, 100).describe()


def test_warmup_ratio_and_steps():
    assert warmup_steps(0.1, 1600) == 160
    assert warmup_steps(50, 1600) == 50
    with pytest.raises(ValueError):
        warmup_steps(1.5, 100)
    with pytest.raises(ValueError):
        warmup_steps(-1, 100)
