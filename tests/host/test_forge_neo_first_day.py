"""Host tier (opt-in, not in CI): a new user's first day inside a REAL Forge Neo (gradio 4.40,
Python 3.13, on CPU), through a real browser, from a clean data dir, with the Train LoRA tab open
while the job starts: the same day as test_a1111_first_day.py (the flow is in first_day.py).

Sample dataset -> check -> preset -> prepare -> Start -> progress -> reload -> SUCCEEDED ->
Result -> Send to txt2img -> the LoRA's card in txt2img's Lora tab -> txt2img through Neo's API
where weight 0 is bit-identical to no LoRA and weight 1 differs. Builtin engine on the full-size
random SD1.5 (Neo refuses the tiny demo model) at 64 px for 3 steps, without the automatic test
(145 pictures of a full-size SD1.5 on CPU would take hours; the A1111 run covers the grid).

Set up the host with tests/host/setup_forge_neo.py (it prints the start command), then:
  LORA_TRAINER_TEST_FORGE_NEO        the Neo tree (its venv at <tree>/venv)
  LORA_TRAINER_TEST_NEO_MODELS       the models folder setup_forge_neo.py filled (Stable-diffusion/ with
                                     the random SD1.5 only, Lora/)
  LORA_TRAINER_TEST_TRAINER_PYTHON   the builtin engine's Python (default: this one)
  LORA_TRAINER_TEST_HOST_ARTIFACTS   where screenshots go (default tests/host/artifacts)
and run `python -m pytest tests/host/test_forge_neo_first_day.py -s`.

What Neo needs here that A1111 did not (the rest is the same DOM: see first_day.py):
  - gradio 4: Dropdowns (checkpoint, preset, mixed_precision) are picked from their list and
    checked by value; pictures are made eager before screenshots.
  - the checkpoint: Neo loads only what its detector recognises, so the random SD1.5 both trains
    and renders, at 64 px (VAE factor 8: 8x8 latents), and every txt2img names it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import forge_neo_host  # noqa: E402
from first_day import ARTIFACTS, TRAINER_PYTHON, HostUI, browser, first_day  # noqa: E402,F401  (browser: a fixture)

NEO = os.environ.get("LORA_TRAINER_TEST_FORGE_NEO")
MODELS = os.environ.get("LORA_TRAINER_TEST_NEO_MODELS")
SD15_NAME = os.environ.get("LORA_TRAINER_TEST_NEO_SD15_NAME", "sd15-random")  # a stem in <models>/Stable-diffusion

pytestmark = [pytest.mark.skipif(not (NEO and MODELS), reason="needs a real Forge Neo (LORA_TRAINER_TEST_FORGE_NEO, "
                                                               "LORA_TRAINER_TEST_NEO_MODELS): see setup_forge_neo.py"),
              pytest.mark.timeout(3600)]

NEO_UI = HostUI(label="Forge Neo", gradio=4,
                txt2img_payload={"override_settings": {"sd_model_checkpoint": SD15_NAME}})


@pytest.fixture
def host(tmp_path):
    """Forge Neo from a clean data dir and clean settings, an empty Lora folder of its own."""
    models = Path(MODELS)
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    port = forge_neo_host.free_port()
    argv, env = forge_neo_host.start_command(
        NEO, port=port, ckpt_dirs=[models / "Stable-diffusion"], lora_dir=lora_dir, data_dir=tmp_path / "data",
        trainer_python=TRAINER_PYTHON, settings_dir=tmp_path / "settings")
    proc = forge_neo_host.NeoProcess(argv, env, cwd=NEO, log_path=tmp_path / "neo.log")
    with proc:
        line = proc.wait_ready(timeout_s=600)
        print(f"\nForge Neo: {line}")
        yield {"proc": proc, "url": proc.url, "lora_dir": lora_dir, "data": tmp_path / "data", "tmp": tmp_path}
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tmp_path / "neo.log", ARTIFACTS / f"neo-{int(time.time())}.log")


def test_first_day_builtin_engine_on_a_full_size_sd15(browser, host):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    first_day(page, host, ui=NEO_UI, name="zyrette_neo", engine="builtin", checkpoint=SD15_NAME,
              preset="sd15-portrait",
              # lr 1e-3 and alpha = dim (scale 1): at the preset's 1e-4 and alpha 1, 3 steps moved
              # txt2img by 0.34/255 on average (Neo applied all 192 UNet and 72 CLIP keys).
              fields={"resolution": "64", "max_train_steps": "3", "repeats": "1", "network_dim": "4",
                      "network_alpha": "4", "learning_rate": "0.001", "mixed_precision": "no",
                      "test_after_training": "false"},
              steps_min=3, test_grid=False, size=64, tag="neo-builtin")
    _ranking_table_sends_to_neo_txt2img(page, host, "zyrette_neo")


def _ranking_table_sends_to_neo_txt2img(page, host, name: str) -> None:
    """The test's checkpoint x weight table beside the grid, in Neo's gradio 4 page: a weight click
    puts `<lora:name:w>, trigger` into Neo's txt2img prompt. The report is written here for the real
    installed file from constructed scores (ranking.rank, as a finished test writes it): a real
    test renders 145 full-size SD1.5 pictures on CPU, hours here; A1111's run covers a real one."""
    import json

    from PIL import Image

    from first_day import open_tab, shoot
    from lib_lora_trainer.evaluate.ranking import Cell, rank

    job_dir = next(p for p in (host["data"] / "jobs").iterdir() if (p / "plan.json").is_file())
    installed = f"{name}.safetensors"
    cells = [Cell(installed, 0, w, {"concept": c, "prompt_following": f})
             for w, c, f in ((0.5, 0.55, 0.8), (0.75, 0.7, 0.78), (1.0, 0.8, 0.5))]
    ranking = vars(rank(cells, {"concept": 0.2, "prompt_following": 0.8}))
    test = job_dir / "test"
    test.mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), (200, 120, 160)).save(test / "grid_weights.png")
    (test / "report.md").write_text(f"# Test report: {installed}\n\n{ranking['sentence']}\n")
    (test / "report.json").write_text(json.dumps({"ranking": ranking}))
    open_tab(page, host["url"], NEO_UI)
    page.wait_for_selector("#lora_trainer_ranking .lt-ranking", timeout=60_000)
    assert page.inner_text("#lora_trainer_ranking b").startswith("Use weight 0.75:"), page.inner_text("#lora_trainer_ranking")
    cell = page.locator("#lora_trainer_ranking [data-lt-prompt]").first
    sent = cell.get_attribute("data-lt-prompt")
    assert sent == f"<lora:{name}:0.75>, zyrette", sent
    shoot(page, "neo-builtin-09-ranking", NEO_UI)
    cell.click()
    page.wait_for_function("(text) => document.querySelector('#txt2img_prompt textarea').value.includes(text)",
                           arg=sent, timeout=30_000)
    assert page.locator("#txt2img_prompt textarea").is_visible()
    print(f"\nneo ranking: {ranking['sentence']} -> sent {sent}")
