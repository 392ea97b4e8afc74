"""Host tier (not in CI): a new user installs sd-scripts from the tab inside a real A1111 1.10.1,
then a kohya job started in that A1111 trains with it.

Runs only when these are set (see setup_a1111.py and sd_scripts_origin.py):
  LORA_TRAINER_TEST_A1111                the A1111 checkout (its venv at <checkout>/venv)
  LORA_TRAINER_TEST_MODELS               the models folder setup_a1111.py filled
  LORA_TRAINER_TEST_SD_SCRIPTS_ORIGIN    a local sd-scripts repository with release tags (the URL setting)
  LORA_TRAINER_TEST_SD15                 a full-size SD1.5 checkpoint inside the models folder
The install reuses A1111's own torch (the default): nothing is downloaded but sd-scripts' pins.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import a1111_host  # noqa: E402
from first_day import A1111_UI, ARTIFACTS, TRAINER_PYTHON, browser, open_tab, shoot  # noqa: E402,F401

A1111 = os.environ.get("LORA_TRAINER_TEST_A1111")
MODELS = os.environ.get("LORA_TRAINER_TEST_MODELS")
ORIGIN = os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS_ORIGIN")
SD15 = os.environ.get("LORA_TRAINER_TEST_SD15")

pytestmark = [pytest.mark.skipif(not (A1111 and MODELS and ORIGIN and SD15),
                                 reason="needs a real A1111, its models, a local sd-scripts repository and an SD1.5"),
              pytest.mark.timeout(3600)]


@pytest.fixture
def host(tmp_path):
    models = Path(MODELS)
    (tmp_path / "Lora").mkdir()
    settings = tmp_path / "settings"
    settings.mkdir()
    # What the user would type in Settings > Train LoRA: where to clone sd-scripts from.
    (settings / "config.json").write_text(json.dumps({"lora_trainer_sd_scripts_url": ORIGIN}))
    port = a1111_host.free_port()
    argv, env = a1111_host.start_command(
        A1111, port=port, ckpt_dir=models / "Stable-diffusion", lora_dir=tmp_path / "Lora",
        ckpt=models / "Stable-diffusion" / "cartoon128.safetensors", data_dir=tmp_path / "data",
        trainer_python=TRAINER_PYTHON, settings_dir=settings)
    with a1111_host.A1111Process(argv, env, cwd=A1111, log_path=tmp_path / "a1111.log") as proc:
        print(f"\nA1111: {proc.wait_ready(timeout_s=600)}")
        yield {"url": proc.url, "data": tmp_path / "data", "tmp": tmp_path}
    shutil.copyfile(tmp_path / "a1111.log", ARTIFACTS / f"a1111-sd-scripts-{int(time.time())}.log")


def _status(page) -> str:
    return page.inner_text("#lora_trainer_sd_scripts_status")


def test_install_sd_scripts_from_the_tab_then_train_with_it(browser, host):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    open_tab(page, host["url"])
    page.locator("#lora_trainer_sd_scripts").first.click()  # open the accordion
    page.wait_for_selector("#lora_trainer_sd_scripts_install", state="visible", timeout=30_000)
    before = _status(page)
    assert "not usable" in before and "not installed" in before, before
    shoot(page, "a1111-sd-scripts-01-not-installed")
    t0 = time.monotonic()
    page.click("#lora_trainer_sd_scripts_install")
    page.wait_for_function("['installing', 'Could not start', 'broken', 'installed by the extension'].some("
                           "t => document.querySelector('#lora_trainer_sd_scripts_status').innerText.includes(t))",
                           timeout=60_000)
    assert "installing" in _status(page), _status(page)
    shoot(page, "a1111-sd-scripts-02-installing")
    seen_steps = set()
    while True:
        text = _status(page)
        seen_steps |= {s for s in ("step 1/5", "step 2/5", "step 3/5", "step 4/5", "step 5/5") if s in text}
        if "installed by the extension" in text or "broken" in text or time.monotonic() - t0 > 1800:
            break
        time.sleep(5)
        page.click("#lora_trainer_sd_scripts_refresh")
    took = time.monotonic() - t0
    shoot(page, "a1111-sd-scripts-03-ready")
    print(f"[a1111-sd-scripts] install from the tab: {took:.0f} s, steps seen while polling: {sorted(seen_steps)}")
    assert "installed by the extension" in text and "v0.10.1" in text, text
    assert errors == [], errors

    # A kohya job in this A1111 (the API the tab's Start uses) runs the installed sd-scripts.
    datasets = host["data"] / "datasets"
    from jobs_helpers import photos
    photos(datasets, n=4)
    body = {"dataset": str(datasets / "photos"), "preset": "sd15-portrait", "config": {
        "name": "zyrette_managed", "trigger": "zyrette", "base_model": SD15, "engine": "kohya", "resolution": 128,
        "repeats": 2, "network_dim": 4, "network_alpha": 4, "max_train_steps": 2, "mixed_precision": "no",
        "test_after_training": False}}
    status, job = a1111_host.request_json(host["url"] + "/lora-trainer/v1/jobs", body)
    assert status == 201, job
    t0 = time.monotonic()
    while True:
        status, job = a1111_host.request_json(host["url"] + f"/lora-trainer/v1/jobs/{job['id']}")
        if job["state"] in ("succeeded", "failed", "cancelled", "interrupted") or time.monotonic() - t0 > 1500:
            break
        time.sleep(3)
    print(f"[a1111-sd-scripts] kohya job: {job['state']} after {time.monotonic() - t0:.0f} s")
    assert job["state"] == "succeeded", job
    command = json.loads((Path(job["paths"]["job_dir"]) / "command.json").read_text())
    assert command["cwd"].endswith("engines/sd-scripts/v0.10.1/checkout"), command
