"""The Train LoRA tab in a real browser: the standalone app (a real subprocess, served by gradio
3.41 and again by gradio 4.40 from .venv-ui4: see conftest.py) driven by Debian's chromium. One
user's first day on the tiny model: open the tab, load the sample dataset, read the report, fix a
caption, pick the preset (one resolution), start training, watch the steps, reload the page
mid-run, stop, resume, find the LoRA, Send to txt2img (which says why it cannot here), and test
the LoRA from the Result section. Screenshots of each stage go to
tests/ui/artifacts/<gradio3|gradio4>/. tests/host/test_a1111_first_day.py walks the same day in
real A1111."""

import json
import re
import time
from pathlib import Path

import pytest

from lib_lora_trainer.demo.sample_dataset import DEMO_TRIGGER

from .conftest import gallery_thumbnail, open_accordion, select_option, wait_for_picture

pytestmark = pytest.mark.timeout(400)

NAME = "zyrette_tiny"


def _wait_state(page, states, min_step=0, timeout_s=120):
    """Wait until the progress block shows one of `states` with at least `min_step` steps."""
    try:
        page.wait_for_function(
            """([states, minStep]) => {
                const el = document.querySelector('#lora_trainer_progress [data-state]');
                return el && states.includes(el.dataset.state) && Number(el.dataset.step) >= minStep;
            }""", arg=[list(states), min_step], timeout=timeout_s * 1000, polling=250)
    except Exception as exc:
        # Say what the page showed instead: a failed job and a slow one need different fixes.
        progress = page.inner_text("#lora_trainer_progress")
        log = page.input_value("#lora_trainer_log textarea")[-3000:]
        raise AssertionError(f"waited {timeout_s} s for {states} at step >= {min_step}; "
                             f"the progress block says:\n{progress}\nlog tail:\n{log}") from exc
    el = page.locator("#lora_trainer_progress [data-state]")
    return el.get_attribute("data-state"), int(el.get_attribute("data-step"))


def test_a_training_day_in_the_browser(browser, ui_server, shoot, tmp_path):
    started = time.time()
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # 1. open the tab
    page.goto(ui_server["url"])
    page.wait_for_selector("#lora_trainer_dataset_src textarea", timeout=60_000)
    page.wait_for_selector("#lora_trainer_progress [data-stamp]")
    assert "No training job yet" in page.inner_text("#lora_trainer_progress")
    shoot(page, "01-open")

    # 2. load the sample dataset: the report names the problems and the fixes, in the tab's words
    page.click("#lora_trainer_load_sample")
    page.wait_for_selector("#lora_trainer_dataset_report table", timeout=60_000)
    demo = Path(page.input_value("#lora_trainer_dataset_src textarea"))
    assert demo.is_dir() and ui_server["data"] in demo.parents
    assert page.input_value("#lora_trainer_cfg_trigger textarea") == DEMO_TRIGGER
    report = page.inner_text("#lora_trainer_dataset_report")
    for code in ("duplicate_exact", "trigger_missing", "exif_rotation", "too_small_severe", "unknown_file"):
        assert code in report
    assert "photo_09.txt" in report   # the caption that forgot the trigger
    assert "--trigger" not in report and "run `" not in report  # no CLI commands in the tab
    wait_for_picture(page, "#lora_trainer_gallery img")
    shoot(page, "02-report")

    # 3. fix that caption in the gallery, then check again
    gallery_thumbnail(page, "lora_trainer_gallery", "photo_09.jpg:").click()
    page.wait_for_function("() => document.querySelector('#lora_trainer_caption textarea').value.length > 0")
    assert page.input_value("#lora_trainer_caption_image textarea") == "photo_09.jpg"
    old = page.input_value("#lora_trainer_caption textarea")
    assert DEMO_TRIGGER not in old
    page.fill("#lora_trainer_caption textarea", f"{DEMO_TRIGGER}, {old}")
    page.click("#lora_trainer_caption_save")
    page.wait_for_selector("#lora_trainer_dataset_message :text('Saved the caption of photo_09.jpg')")
    assert (demo / "photo_09.txt").read_text(encoding="utf-8") == f"{DEMO_TRIGGER}, {old}\n"
    page.click("#lora_trainer_check")
    page.wait_for_function("() => !document.querySelector('#lora_trainer_dataset_report').innerText"
                           ".includes('trigger_missing')", timeout=60_000)
    shoot(page, "03-caption-fixed")

    # 4. model and parameters: the tiny model, the CPU preset, 200 steps; samples every 100
    assert page.input_value("#lora_trainer_checkpoint input") == ui_server["model"].name
    select_option(page, "lora_trainer_preset", "cpu-tiny")
    page.wait_for_function("() => document.querySelector('#lora_trainer_cfg_resolution input').value === '64'")
    # One resolution: the dataset section says the one the preset set, and Prepare uses it.
    page.wait_for_function("() => document.querySelector('#lora_trainer_dataset_recipe').innerText.includes('64 px')")
    # The preset fills the sections in more than one event: wait for its last value before typing.
    page.wait_for_function("() => document.querySelector('#lora_trainer_plan').innerText.includes('x 2 repeats')",
                           timeout=60_000)
    page.fill("#lora_trainer_cfg_name textarea", NAME)
    page.fill("#lora_trainer_cfg_repeats input", "25")
    page.locator("#lora_trainer_cfg_repeats input").press("Tab")
    open_accordion(page, "lora_trainer_advanced")
    page.fill("#lora_trainer_cfg_sample_prompts textarea", f"{DEMO_TRIGGER}, woman --w 64 --h 64 --s 4")
    page.fill("#lora_trainer_cfg_sample_every_n_steps textarea", "100")
    page.locator("#lora_trainer_plan :text('16 images x 25 repeats x 2 epochs / batch 4 = 200 steps')").wait_for(timeout=90_000)
    shoot(page, "04-params")

    # 5. start: the step counter moves
    page.click("#lora_trainer_start")
    page.wait_for_selector("#lora_trainer_train_message :text('Queued job')", timeout=120_000)
    assert "200 steps" in page.inner_text("#lora_trainer_train_message")
    state, step = _wait_state(page, ["running"], min_step=3, timeout_s=180)
    state, later = _wait_state(page, ["running"], min_step=step + 2, timeout_s=60)
    assert later > step
    shoot(page, "05-training")

    # 6. reload mid-run: the page finds the running job, its progress and its log again
    page.reload()
    state, step_after_reload = _wait_state(page, ["running", "succeeded"], min_step=later, timeout_s=60)
    assert state == "running", "the run ended before the reload could be checked: raise the step count"
    assert NAME in page.inner_text("#lora_trainer_progress")
    page.wait_for_function("() => document.querySelector('#lora_trainer_log textarea').value.includes('steps')")
    assert NAME in page.input_value("#lora_trainer_job input")
    shoot(page, "06-reloaded")

    # 7. stop: the trainer saves its state and the job is cancelled, part-way
    page.click("#lora_trainer_stop")
    state, stopped_at = _wait_state(page, ["cancelled"], timeout_s=120)
    assert 0 < stopped_at < 200
    page.wait_for_selector("#lora_trainer_banner :text('Press Resume')")
    shoot(page, "07-stopped")

    # 8. resume from the saved state, to the end
    page.click("#lora_trainer_resume")
    page.wait_for_selector("#lora_trainer_train_message :text('Resumed')", timeout=60_000)
    assert "-state" in page.inner_text("#lora_trainer_train_message")   # from the saved step, not step 0
    state, final = _wait_state(page, ["succeeded"], min_step=200, timeout_s=240)
    page.wait_for_function("() => document.querySelector('#lora_trainer_result_prompt textarea').value !== ''")
    wait_for_picture(page, "#lora_trainer_samples img", timeout=30_000)
    page.wait_for_selector("#lora_trainer_loss svg polyline")
    shoot(page, "08-result")

    # the result: the prompt to paste, the file and its sidecar where A1111 looks for LoRAs
    assert page.input_value("#lora_trainer_result_prompt textarea") == f"<lora:{NAME}:1>, {DEMO_TRIGGER}"
    assert f"{NAME}.json" in page.inner_text("#lora_trainer_result")
    lora = ui_server["lora"] / f"{NAME}.safetensors"
    assert lora.is_file() and lora.stat().st_size > 1000
    sidecar = json.loads(lora.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["activation text"] == DEMO_TRIGGER
    # Send to txt2img is there only where a txt2img is (inside A1111; tests/host walks it there).
    assert not page.locator("#lora_trainer_send_txt2img").is_visible()

    # Test this LoRA from the Result section: progress, then the grid.
    page.click("#lora_trainer_test_start")
    wait_for_picture(page, "#lora_trainer_grid img", timeout=300_000)
    # beside the grid: which weight to use, and a weight click sends its tag (no txt2img standalone)
    page.wait_for_selector("#lora_trainer_ranking .lt-ranking", timeout=60_000)
    assert page.inner_text("#lora_trainer_ranking b").startswith(("Use ", "No cell keeps the prompt", "No clear winner"))
    best = page.get_attribute("#lora_trainer_ranking .lt-ranking", "data-best")
    page.locator("#lora_trainer_ranking [data-lt-prompt]").first.click()
    page.wait_for_selector(f"#lora_trainer_result_message :text('copy <lora:{NAME}:')", timeout=10_000)
    shoot(page, "09-tested")
    # the stop saved a step file, so the automatic test ranked it beside the final one
    assert re.fullmatch(rf"{NAME}(-step\d{{8}})?\.safetensors:[\d.]+", best), best
    assert not errors, errors
    print(f"browser flow ({ui_server['name']}): {time.time() - started:.1f} s, stopped at step {stopped_at}")
