"""Host tier (opt-in, not in CI): the demo LoRA inside a REAL A1111 1.10.1, the way a user tries it.

`python -m lib_lora_trainer demo` trains the demo LoRA (the README's main job); A1111 loads the
shipped demo model from its single file and `.yaml`, renders novel prompts with its UI defaults
(DPM++ 2M, automatic schedule, 20 steps, CFG 7, 128 px) at LoRA weight 0 and 1, with DEBUG logs.
Checked: A1111 matched every module of the LoRA (its "didn't match keys" debug line names the
ones it skips), no "Networks with errors", pictures of the asked size, weight 0 identical to no
LoRA, and at weight 1 the attribute reader sees the character (pink hair in buns) that it does not
see at weight 0. The pictures and numbers go to the artifacts folder.

Variables: LORA_TRAINER_TEST_A1111 (the checkout, its venv at <checkout>/venv) and
LORA_TRAINER_TEST_TRAINER_PYTHON (default: this Python); see setup_a1111.py.
  python -m pytest tests/host/test_a1111_demo_lora.py -s
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))
import a1111_host  # noqa: E402
from first_day import ARTIFACTS, TRAINER_PYTHON, mean_abs_diff, txt2img  # noqa: E402

A1111 = os.environ.get("LORA_TRAINER_TEST_A1111")
pytestmark = [pytest.mark.skipif(not A1111, reason="needs a real A1111 (LORA_TRAINER_TEST_A1111): see setup_a1111.py"),
              pytest.mark.timeout(3600)]

# A1111 1.10.1's txt2img defaults in its UI (the API's own defaults differ: it asks for all of them).
A1111_DEFAULTS = {"sampler_name": "DPM++ 2M", "scheduler": "Automatic", "steps": 20, "cfg_scale": 7}
PROMPTS = ("zyrette, woman, smiling, a green shirt, blue background",
           "zyrette, woman, a red dress, yellow background",
           "zyrette, woman, glasses, a white shirt, gray background")
SEEDS = (1, 2, 3)
MIN_CONCEPT_LIFT = 0.4   # pink-buns probability, weight 1 minus weight 0 (measured 2026-12-04, cpu-demo 120 steps: 0.0 -> 0.80)


def lora_modules(path: Path) -> set[str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k.split(".", 1)[0] for k in f.keys()}


def unmatched_in_log(log: str, lora_name: str) -> set[str]:
    """A1111 logs `Network <file> didn't match keys: {key: module, ...}` at DEBUG level."""
    out: set[str] = set()
    for line in log.splitlines():
        if "didn't match keys:" in line and lora_name in line:
            out |= set(ast.literal_eval(line.split("didn't match keys:", 1)[1].strip()))
    return out


def test_demo_lora_applies_fully_and_shows_the_character_in_a1111(tmp_path):
    from lib_lora_trainer.demo.demo_model import install_demo_model
    from lib_lora_trainer.demo.sample_dataset import DEMO_CHARACTER
    from lib_lora_trainer.demo.scorer import load_reader, match_score, read_probabilities
    from lib_lora_trainer.demo.world import ATTRIBUTES, IDENTITY

    demo = subprocess.run([str(TRAINER_PYTHON), "-m", "lib_lora_trainer", "demo", "--out", str(tmp_path / "demo")],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    lora_dir = tmp_path / "Lora"
    lora_dir.mkdir()
    src = tmp_path / "demo" / "Lora" / "zyrette_v1.safetensors"
    (lora_dir / src.name).write_bytes(src.read_bytes())
    modules = lora_modules(src)
    ckpt = install_demo_model(tmp_path / "Stable-diffusion")

    argv, env = a1111_host.start_command(A1111, port=a1111_host.free_port(), ckpt_dir=ckpt.parent, lora_dir=lora_dir,
                                         ckpt=ckpt, data_dir=tmp_path / "data", trainer_python=TRAINER_PYTHON,
                                         settings_dir=tmp_path / "settings", extra_args=("--loglevel", "DEBUG"))
    (tmp_path / "settings").mkdir()
    log_path = tmp_path / "a1111.log"
    pictures: dict[tuple[str, int], dict[str, object]] = {}
    with a1111_host.A1111Process(argv, env, cwd=A1111, log_path=log_path) as host:
        host.wait_ready(timeout_s=900)
        for prompt in PROMPTS:
            for seed in SEEDS:
                row = {}
                for label, tag in (("none", ""), ("w0", " <lora:zyrette_v1:0>"), ("w1", " <lora:zyrette_v1:1>")):
                    row[label] = txt2img(host.url, prompt + tag, seed=seed, size=128, extra=A1111_DEFAULTS,
                                         with_info=True)
                pictures[(prompt, seed)] = row
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert " DEBUG " in log or "DEBUG [" in log, "A1111 wrote no DEBUG lines: the unmatched-keys check saw nothing"
    skipped = unmatched_in_log(log, "zyrette_v1")

    reader = load_reader()
    hair, style = ATTRIBUTES["hair_colour"].index("pink"), ATTRIBUTES["hair_style"].index("buns")

    def concept(images) -> float:
        p = read_probabilities(reader, images)
        return float(((p["hair_colour"][:, hair] + p["hair_style"][:, style]) / 2).mean())

    def identity(images) -> float:  # all five identity attributes, as `make demo`'s concept score reads them
        return match_score(images, {k: getattr(DEMO_CHARACTER, k) for k in IDENTITY}, reader)

    w0 = [r["w0"][0] for r in pictures.values()]
    w1 = [r["w1"][0] for r in pictures.values()]
    infos = [r[k][1] for r in pictures.values() for k in ("w0", "w1")]
    result = {
        "modules_in_lora": len(modules), "modules_skipped_by_a1111": len(skipped),
        "modules_applied": len(modules) - len(skipped),
        "size": list(w1[0].size), "settings": A1111_DEFAULTS,
        "w0_equals_no_lora": all(mean_abs_diff(r["none"][0], r["w0"][0]) == 0.0 for r in pictures.values()),
        "mean_pixel_change_w1_vs_w0": round(float(np.mean([mean_abs_diff(a, b) for a, b in zip(w0, w1)])), 2),
        "concept_w0": round(concept(w0), 3), "concept_w1": round(concept(w1), 3),
        "identity_w0": round(identity(w0), 3), "identity_w1": round(identity(w1), 3),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "a1111-demo-lora.json").write_text(json.dumps(result, indent=1) + "\n")
    _sheet(pictures).save(ARTIFACTS / "a1111-demo-lora.png")
    print("\nA1111 demo LoRA:", json.dumps(result))
    assert not skipped, f"A1111 skipped {len(skipped)} of {len(modules)} LoRA modules: {sorted(skipped)[:8]}"
    assert not any("Networks with errors" in (i.get("infotexts") or [""])[0] for i in infos)
    assert result["size"] == [128, 128]
    assert result["w0_equals_no_lora"]
    assert result["concept_w1"] - result["concept_w0"] >= MIN_CONCEPT_LIFT, result


def _sheet(pictures):
    """Rows: prompt x seed; columns: no LoRA, weight 0, weight 1."""
    from PIL import Image

    rows = list(pictures.values())
    w, h = rows[0]["w1"][0].size
    sheet = Image.new("RGB", (3 * w, len(rows) * h), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, key in enumerate(("none", "w0", "w1")):
            sheet.paste(row[key][0], (c * w, r * h))
    return sheet
