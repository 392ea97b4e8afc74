"""Host tier (opt-in, not in CI): a new user's first day inside a REAL A1111 1.10.1, through a
real browser, from a clean data dir, with the Train LoRA tab open while the job starts.

Sample dataset -> check -> preset -> prepare -> Start -> progress -> reload -> SUCCEEDED ->
Result (LoRA card with its preview, Send to txt2img) -> txt2img where weight 1 differs from
weight 0 and weight 0 equals no LoRA -> the test grid in the Result section. Once with the builtin
engine on the demo model, once with the kohya engine (a real sd-scripts checkout) on a full-size
SD1.5 checkpoint with random weights at 128 px for a few steps.

Set up the host with tests/host/setup_a1111.py (it prints these variables), then:
  LORA_TRAINER_TEST_A1111            the A1111 checkout (its venv at <checkout>/venv)
  LORA_TRAINER_TEST_MODELS           the models folder setup_a1111.py filled (Stable-diffusion/, Lora/)
  LORA_TRAINER_TEST_TRAINER_PYTHON   the builtin engine's Python (default: this one)
  LORA_TRAINER_TEST_SD_SCRIPTS       an sd-scripts checkout with its venv (kohya run only)
  LORA_TRAINER_TEST_SD15             the full-size random SD1.5 .safetensors (kohya run only)
  LORA_TRAINER_TEST_HOST_ARTIFACTS   where screenshots go (default tests/host/artifacts)
and run `python -m pytest tests/host/test_a1111_first_day.py -s`. The flow itself is in
first_day.py (shared with test_forge_neo_first_day.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import a1111_host  # noqa: E402
from first_day import A1111_UI, ARTIFACTS, TRAINER_PYTHON, browser, first_day  # noqa: E402,F401  (browser: a fixture)

A1111 = os.environ.get("LORA_TRAINER_TEST_A1111")
MODELS = os.environ.get("LORA_TRAINER_TEST_MODELS")
SD_SCRIPTS = os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS")
SD15 = os.environ.get("LORA_TRAINER_TEST_SD15")

pytestmark = [pytest.mark.skipif(not (A1111 and MODELS), reason="needs a real A1111 (LORA_TRAINER_TEST_A1111, "
                                                                 "LORA_TRAINER_TEST_MODELS): see setup_a1111.py"),
              pytest.mark.timeout(3600)]


@pytest.fixture
def host(tmp_path):
    """A1111 from a clean data dir and clean settings, the demo model loaded at start."""
    models = Path(MODELS)
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    port = a1111_host.free_port()
    argv, env = a1111_host.start_command(
        A1111, port=port, ckpt_dir=models / "Stable-diffusion", lora_dir=lora_dir,
        ckpt=models / "Stable-diffusion" / "cartoon128.safetensors", data_dir=tmp_path / "data",
        trainer_python=TRAINER_PYTHON, sd_scripts=SD_SCRIPTS, settings_dir=tmp_path / "settings")
    (tmp_path / "settings").mkdir()
    proc = a1111_host.A1111Process(argv, env, cwd=A1111, log_path=tmp_path / "a1111.log")
    with proc:
        line = proc.wait_ready(timeout_s=600)
        print(f"\nA1111: {line}")
        yield {"proc": proc, "url": proc.url, "lora_dir": lora_dir, "data": tmp_path / "data", "tmp": tmp_path}
    shutil.copyfile(tmp_path / "a1111.log", ARTIFACTS / f"a1111-{int(time.time())}.log")


def test_first_day_builtin_engine_on_the_demo_model(browser, host):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    first_day(page, host, ui=A1111_UI, name="zyrette_host", engine="builtin", checkpoint="cartoon128",
              preset="cpu-demo", fields={}, steps_min=200, test_grid=True, size=128, tag="a1111-builtin")


@pytest.mark.skipif(not (SD_SCRIPTS and SD15), reason="needs LORA_TRAINER_TEST_SD_SCRIPTS and LORA_TRAINER_TEST_SD15")
# Seen 2026-12-03: everything up to txt2img passes (SUCCEEDED with no intervention, 792 keys, card,
# Send to txt2img; weight 0 bit-identical to no LoRA), then A1111 raises NansException in its UNet
# at weight 1 on this random-weight SD1.5 (64 and 128 px, 2 and 8 steps), although the LoRA is
# finite and small (max |lora_up| 0.003); Forge Neo renders the same kind of LoRA fine.
@pytest.mark.xfail(reason="A1111's NaN check at weight 1 on a random-weight SD1.5", strict=False)
def test_first_day_kohya_engine_on_a_full_size_sd15(browser, host):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # A1111 started on the demo model: the txt2img checks switch to the checkpoint the LoRA was trained on.
    ui = replace(A1111_UI, txt2img_payload={"override_settings": {"sd_model_checkpoint": Path(SD15).stem},
                                            "override_settings_restore_afterwards": False})
    first_day(page, host, ui=ui, name="zyrette_kohya", engine="kohya", checkpoint=Path(SD15).stem,
              preset="sd15-portrait",
              fields={"resolution": "128", "max_train_steps": "3", "repeats": "1", "network_dim": "4",
                      "network_alpha": "4", "learning_rate": "0.001", "mixed_precision": "no",
                      "test_after_training": "false"},
              steps_min=3, test_grid=False, size=128, tag="a1111-kohya",
              render_size=64, txt2img_steps=2)  # more steps: NaNs in A1111's UNet on these random weights
