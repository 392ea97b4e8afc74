"""A new user's first day in a real web UI host, through a real browser: the flow shared by
test_a1111_first_day.py (A1111 1.10.1, gradio 3.41) and test_forge_neo_first_day.py (Forge Neo,
gradio 4.40). Not a test module itself (pytest collects test_*.py only).

Sample dataset -> check -> preset -> prepare -> Start (the tab open while the job starts) ->
progress -> reload -> SUCCEEDED -> Result -> Send to txt2img -> the Lora card in txt2img's Lora
tab -> txt2img through the host's API where weight 0 is bit-identical to no LoRA and weight 1
differs -> (optionally) the automatic test's grid.

What differs between the hosts is a `HostUI` (selectors, the gradio major, txt2img's payload):
  - gradio 3 and 4 both open a `ul.options` list under a Dropdown's input; gradio 4 names each item
    (aria-label) and is checked here by the input's value afterwards. A field that is a Dropdown
    (mixed_precision, engine) is picked from that list on both (typing into it leaves it empty).
  - gradio 4 lazy-loads pictures: screenshots there first make them eager (tests/ui/conftest.py
    does the same for the standalone app).
  - the top-level tabs (`#tabs > .tab-nav button`), txt2img's extra-network tabs
    (`#txt2img_extra_tabs`) and the Lora cards (`#txt2img_lora_cards .card[data-name=...]`) have
    the same DOM in A1111 1.10 and Neo; they stay parameters so a host that moves them needs no
    change here.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import a1111_host  # noqa: E402

sys.path.insert(0, str(HERE.parent))  # tests/: the page helpers shared with tests/ui
from browser_pages import load_lazy_pictures  # noqa: E402

ARTIFACTS = Path(os.environ.get("LORA_TRAINER_TEST_HOST_ARTIFACTS", HERE / "artifacts"))
CHROMIUM = Path(os.environ.get("LORA_TRAINER_CHROMIUM", "/usr/bin/chromium"))
TRAINER_PYTHON = os.environ.get("LORA_TRAINER_TEST_TRAINER_PYTHON", sys.executable)
TRIGGER = "zyrette"


@dataclass(frozen=True)
class HostUI:
    """How one host's page and API differ."""
    label: str                                      # for messages and artifact names
    gradio: int                                     # 3 (A1111 1.10) or 4 (Forge Neo)
    top_tabs: str = "#tabs > .tab-nav button"      # the web UI's top-level tab buttons
    extra_tabs: str = "#txt2img_extra_tabs button"  # txt2img's extra-network tab buttons
    lora_cards: str = "#txt2img_lora_cards"         # the Lora page's cards container
    lora_refresh: str = "#txt2img_lora_extra_refresh"
    txt2img_payload: dict = field(default_factory=dict)  # added to every /sdapi/v1/txt2img request


A1111_UI = HostUI(label="A1111", gradio=3)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"])
        yield b
        b.close()


def shoot(page, name: str, ui: HostUI = A1111_UI) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    if ui.gradio >= 4:
        load_lazy_pictures(page)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def open_tab(page, url: str, ui: HostUI = A1111_UI) -> None:
    page.goto(url, timeout=180_000)
    page.locator(ui.top_tabs, has_text="Train LoRA").first.click(timeout=180_000)
    page.wait_for_selector("#lora_trainer_progress [data-stamp]", timeout=120_000)


def select(page, elem_id: str, option: str, ui: HostUI = A1111_UI) -> None:
    """Pick the Dropdown item whose text contains `option` (a checkpoint's title has its hash too)."""
    page.click(f"#{elem_id} input")
    if ui.gradio < 4:
        page.locator(f"#{elem_id} ul.options li", has_text=option).first.click()
        return
    page.wait_for_selector(f"#{elem_id} ul.options li", timeout=30_000)
    named = page.locator(f"#{elem_id} ul.options li[aria-label={_css_string(option)}]")
    (named if named.count() else page.locator(f"#{elem_id} ul.options li", has_text=option)).first.click()
    page.wait_for_function("([id, value]) => document.querySelector(`#${id} input`).value.includes(value)",
                           arg=[elem_id, option], timeout=30_000)


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def state(page):
    el = page.locator("#lora_trainer_progress [data-state]")
    return el.get_attribute("data-state"), int(el.get_attribute("data-step") or 0)


def wait_state(page, states, min_step=0, timeout_s=600):
    page.wait_for_function(
        """([states, minStep]) => {
            const el = document.querySelector('#lora_trainer_progress [data-state]');
            return el && states.includes(el.dataset.state) && Number(el.dataset.step) >= minStep;
        }""", arg=[list(states), min_step], timeout=timeout_s * 1000, polling=500)
    return state(page)


def _is_dropdown(name: str) -> bool:
    from lib_lora_trainer.ui import fields as F

    info = F.field_infos().get(name)
    return info is not None and F.widget_kind(info) == "dropdown"


def fill_field(page, name: str, value: str, ui: HostUI = A1111_UI) -> None:
    if _is_dropdown(name):  # typing into a dropdown leaves it empty on both gradio majors
        select(page, f"lora_trainer_cfg_{name}", value, ui)
        return
    box = page.locator(f"#lora_trainer_cfg_{name} textarea, #lora_trainer_cfg_{name} input").first
    if box.get_attribute("type") == "checkbox":
        box.set_checked(value.lower() in ("1", "true", "yes", "on"))
        return
    box.fill(value)
    box.press("Tab")


def txt2img(url: str, prompt: str, seed: int = 7, size: int = 128, steps: int = 8, ui: HostUI = A1111_UI,
            extra: dict | None = None, with_info: bool = False):
    """One picture from the host's API (Euler a, CFG 7 unless `extra` says otherwise); with_info:
    (picture, the response's info as a dict)."""
    from PIL import Image

    status, body = a1111_host.request_json(f"{url}/sdapi/v1/txt2img", {
        "prompt": prompt, "seed": seed, "steps": steps, "width": size, "height": size, "batch_size": 1,
        "sampler_name": "Euler a", "cfg_scale": 7, **ui.txt2img_payload, **(extra or {})}, timeout_s=900)
    assert status == 200, body
    image = Image.open(io.BytesIO(base64.b64decode(body["images"][0]))).convert("RGB")
    return (image, json.loads(body.get("info") or "{}")) if with_info else image


def mean_abs_diff(a, b) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


START_ANSWER_JS = """() => {
    const box = document.querySelector('#lora_trainer_train_message');
    const ps = box ? [...box.querySelectorAll('p')].filter(p => !p.classList.contains('loading')) : [];
    return ps.map(p => p.innerText.trim()).filter(t => t).join(' ');
}"""


def first_day(page, host, *, name, engine, checkpoint, preset, fields, steps_min, test_grid, size, tag,
              render_size=None, ui: HostUI = A1111_UI, txt2img_steps: int = 8):
    """The whole day; returns its timings (and the txt2img differences). host: {"url", "lora_dir"}."""
    url = host["url"]
    timings = {}
    t0 = time.time()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_tab(page, url, ui)
    shoot(page, f"{tag}-01-open", ui)

    # The sample dataset, its report, then the model and the preset.
    page.click("#lora_trainer_load_sample")
    page.wait_for_selector("#lora_trainer_dataset_report table", timeout=120_000)
    report = page.inner_text("#lora_trainer_dataset_report")
    assert "duplicate_exact" in report and "--" not in report.replace("---", "")  # UI words, not CLI flags
    page.fill("#lora_trainer_cfg_trigger textarea", TRIGGER)
    select(page, "lora_trainer_checkpoint", checkpoint, ui)
    select(page, "lora_trainer_preset", preset, ui)
    time.sleep(2.0)  # the preset fills the sections in several events
    fill_field(page, "name", name, ui)
    if engine != "builtin":
        select(page, "lora_trainer_cfg_engine", engine, ui)
    page.click("#lora_trainer_advanced .label-wrap")
    for key, value in fields.items():
        fill_field(page, key, value, ui)
    shoot(page, f"{tag}-02-params", ui)
    page.click("#lora_trainer_prepare")
    page.wait_for_selector("#lora_trainer_prepare_result :text('Prepared')", timeout=180_000)
    prepared = page.inner_text("#lora_trainer_prepare_result")
    assert f"{size} px" in prepared, prepared

    # Start, with the tab open: the job must never be marked interrupted while it starts.
    page.click("#lora_trainer_start")
    # The answer is the extension's own <p> (a "Queued job" line or an error); gradio's progress
    # text while the click is pending ("queue: 1/1 | 0.1/0.2s" in gradio 3, a p.loading in 4) is not.
    page.wait_for_function(START_ANSWER_JS, timeout=900_000)
    message = page.evaluate(START_ANSWER_JS)
    assert "Queued job" in message, message
    t_start = time.time()
    seen = set()
    deadline = time.time() + 1800
    while time.time() < deadline:
        st, step = state(page)
        seen.add(st)
        assert st not in ("interrupted", "failed", "cancelled"), page.inner_text("#lora_trainer_banner")
        if st == "running" and step >= 1:
            break
        if st == "succeeded":  # a run of a few steps can end between two looks
            break
        time.sleep(0.5)
    shoot(page, f"{tag}-03-training", ui)
    page.reload()
    open_tab(page, url, ui)
    st, _ = wait_state(page, ["running", "succeeded"], timeout_s=120)
    shoot(page, f"{tag}-04-reloaded", ui)
    st, final = wait_state(page, ["succeeded", "failed", "interrupted", "cancelled"], timeout_s=1800)
    assert st == "succeeded", page.inner_text("#lora_trainer_banner") + page.input_value("#lora_trainer_log textarea")
    assert final >= steps_min
    timings["train_s"] = round(time.time() - t_start, 1)
    timings["states_seen"] = sorted(seen)
    lora = host["lora_dir"] / f"{name}.safetensors"
    assert lora.is_file() and lora.with_suffix(".json").is_file()

    # The Result section, Send to txt2img.
    page.wait_for_function("() => document.querySelector('#lora_trainer_result_prompt textarea').value !== ''",
                           timeout=60_000)
    prompt = page.input_value("#lora_trainer_result_prompt textarea")
    assert prompt.startswith(f"<lora:{name}:")
    shoot(page, f"{tag}-05-result", ui)
    page.click("#lora_trainer_send_txt2img")
    page.wait_for_function("(p) => document.querySelector('#txt2img_prompt textarea').value.includes(p)",
                           arg=f"<lora:{name}:", timeout=30_000)

    # The Lora card in txt2img's Lora tab (refreshed by the extension, no restart).
    page.locator(ui.extra_tabs, has_text="Lora").first.click()
    page.wait_for_selector(f"{ui.lora_cards} .card[data-name='{name}']", timeout=120_000)
    shoot(page, f"{tag}-06-lora-card", ui)

    # txt2img through the host's API: weight 0 is the base, weight 1 differs.
    render = render_size or size
    base = txt2img(url, f"{TRIGGER}, woman", size=render, steps=txt2img_steps, ui=ui)
    # The tag goes last: A1111-style hosts remove it from the text, and a leftover leading ", "
    # would change the conditioning (measured in A1111: 6.8/255 between "<lora:x:0>, a" and "a";
    # 0 with the tag last).
    w0 = txt2img(url, f"{TRIGGER}, woman <lora:{name}:0>", size=render, steps=txt2img_steps, ui=ui)
    w1 = txt2img(url, f"{TRIGGER}, woman <lora:{name}:1>", size=render, steps=txt2img_steps, ui=ui)
    timings["w0_vs_base"] = mean_abs_diff(base, w0)
    timings["w1_vs_w0"] = mean_abs_diff(w1, w0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for label, img in (("base", base), ("w0", w0), ("w1", w1)):
        img.save(ARTIFACTS / f"{tag}-txt2img-{label}.png")
    assert timings["w0_vs_base"] == 0.0
    assert timings["w1_vs_w0"] > 0.5

    if test_grid:  # the automatic test (the host's renderer), its grid in the Result section
        t_test = time.time()
        open_tab(page, url, ui)
        page.wait_for_selector("#lora_trainer_test_grid img", timeout=3000 * 1000)
        timings["auto_test_s"] = round(time.time() - t_test + (t_test - t_start - timings["train_s"]), 1)
        assert Path(str(lora).replace(".safetensors", ".preview.png")).is_file()
        shoot(page, f"{tag}-07-grid", ui)
        # Beside the grid, the ranking: a weight click puts that `<lora:name:w>, trigger` into txt2img.
        page.wait_for_selector("#lora_trainer_ranking .lt-ranking", timeout=60_000)
        timings["ranking"] = page.inner_text("#lora_trainer_ranking b")
        cell = page.locator("#lora_trainer_ranking [data-lt-prompt]").first
        sent = cell.get_attribute("data-lt-prompt")
        cell.click()
        page.wait_for_function("(text) => document.querySelector('#txt2img_prompt textarea').value.includes(text)",
                               arg=sent, timeout=30_000)
        assert page.locator("#txt2img_prompt textarea").is_visible()      # it switched to txt2img
        timings["ranking_sent"] = sent
        # The card now has the test's preview picture (after a refresh of the Lora list).
        page.locator(ui.top_tabs, has_text="txt2img").first.click()
        page.locator(ui.extra_tabs, has_text="Lora").first.click()
        page.locator(ui.lora_refresh).first.click()
        page.wait_for_function(
            "([cards, n]) => { const c = document.querySelector(`${cards} .card[data-name='${n}']`);"
            " return c && c.querySelector('img.preview'); }", arg=[ui.lora_cards, name], timeout=60_000)
        shoot(page, f"{tag}-08-card-preview", ui)
    timings["total_s"] = round(time.time() - t0, 1)
    timings["page_errors"] = errors
    print(f"\n{tag}: {json.dumps(timings)}")
    (ARTIFACTS / f"{tag}-timings.json").write_text(json.dumps(timings, indent=2))
    return timings
