"""The tab's "Reproduce from a LoRA" control (ui/reproduce_section.py), called through the
functions gradio calls, on gradio 3.41 (this environment) and gradio 4.40 (.venv-ui4, no torch:
reading a LoRA needs only its header): the buttons fill the form, the checkpoint and the dataset
folder, and say what was not recovered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_lora_reproduce import RECIPE, write_our_lora

ROOT = Path(__file__).resolve().parent.parent
UI4_PYTHON = Path(os.environ.get("LORA_TRAINER_UI4_PYTHON") or ROOT / ".venv-ui4" / "bin" / "python")

# Builds the tab on a standalone host and clicks the reproduce buttons; prints {case: {elem_id: value}}.
SCRIPT = r'''
import json, sys
from pathlib import Path
from lib_lora_trainer.hosts.standalone import StandaloneHost
from lib_lora_trainer.ui.tab import build_tab

base = Path(sys.argv[1])
exposed = sys.argv[2] if len(sys.argv) > 2 else None
host = StandaloneHost(lora_dir=base / "Lora", ckpt_dir=base / "models", data_dir=base / "data",
                      dataset_roots=[base / "datasets"], exposed_as=exposed)
try:
    blocks = build_tab(host)
    cfg = blocks.get_config_file()
    names = {c["id"]: c["props"].get("elem_id") for c in cfg["components"]}
    ids = {v: k for k, v in names.items() if v}
    def event(elem_id):
        for i, dep in enumerate(cfg["dependencies"]):
            for t in dep["targets"]:
                block = t[0] if isinstance(t, (list, tuple)) else t
                if block == ids[elem_id]:
                    return blocks.fns[i].fn, dep
        raise AssertionError(elem_id)
    def click(elem_id, *args):
        fn, dep = event(elem_id)
        out = fn(*args)
        # an update dict (gradio 3 "generic_update", gradio 4 "update"): its value, None when it keeps the value
        return {names[o]: v.get("value") if isinstance(v, dict) and "__type__" in v else v
                for o, v in zip(dep["outputs"], out)}
    lora_box = next(c for c in cfg["components"] if c["props"].get("elem_id") == "lora_trainer_reproduce_lora")
    # gradio 4 lists choices as [name, value] pairs
    result = {"choices": [c[1] if isinstance(c, (list, tuple)) else c for c in lora_box["props"]["choices"]]}
    result["again"] = click("lora_trainer_reproduce_again", "sub/vadym_v1.safetensors", "")
    result["continue"] = click("lora_trainer_reproduce_continue", None,
                               str(base / "Lora" / "sub" / "vadym_v1.safetensors"))
    result["nothing"] = click("lora_trainer_reproduce_again", None, "")
    result["outside"] = click("lora_trainer_reproduce_again", None, str(base / "elsewhere.safetensors"))
    print(json.dumps(result, default=str))
finally:
    host.job_service().stop_background()
'''


@pytest.fixture
def world(tmp_path) -> Path:
    from lib_lora_trainer.config.training_config import TrainingConfig

    (tmp_path / "models").mkdir()
    ckpt = tmp_path / "models" / "sd15-base.safetensors"
    ckpt.write_bytes(os.urandom(0x110000))
    folder = tmp_path / "datasets" / "old" / "20_VadymPanchenko man"
    folder.mkdir(parents=True)
    for i in range(6):
        (folder / f"{i}.png").write_bytes(b"\x89PNG")
    lora = tmp_path / "Lora" / "sub" / "vadym_v1.safetensors"
    lora.parent.mkdir(parents=True)
    write_our_lora(lora, TrainingConfig.from_dict({**RECIPE, "base_model": str(ckpt)}), str(ckpt))
    (tmp_path / "elsewhere.safetensors").write_bytes(lora.read_bytes())
    return tmp_path


def _run(python: Path, world: Path, *extra) -> dict:
    r = subprocess.run([str(python), "-c", SCRIPT, str(world), *extra], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT), GRADIO_ANALYTICS_ENABLED="False"))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def _check(out: dict, world: Path) -> None:
    assert out["choices"] == ["sub/vadym_v1.safetensors"]
    again = out["again"]
    assert again["lora_trainer_cfg_name"] == "vadym_v1" and again["lora_trainer_cfg_trigger"] == "VadymPanchenko"
    assert again["lora_trainer_cfg_network_dim"] == 16 and again["lora_trainer_cfg_optimizer"] == "AdamW8bit"
    assert again["lora_trainer_cfg_repeats"] == 20 and again["lora_trainer_cfg_class_token"] == "man"
    assert json.loads(again["lora_trainer_cfg_optimizer_args"]) == {"weight_decay": 0.1, "betas": [0.9, 0.99]}
    assert again["lora_trainer_cfg_network_weights"] == "" and again["lora_trainer_cfg_clip_skip"] == "2"
    assert again["lora_trainer_checkpoint"] == "sd15-base.safetensors"
    assert again["lora_trainer_dataset_src"] == str(world / "datasets" / "old" / "20_VadymPanchenko man")
    html = again["lora_trainer_reproduce_report"]
    assert "Start training" in html and "Not recovered" not in html   # base, dataset and captions all found
    cont = out["continue"]
    assert cont["lora_trainer_cfg_network_weights"] == str((world / "Lora" / "sub" / "vadym_v1.safetensors"))
    assert "Continue from vadym_v1.safetensors" in cont["lora_trainer_reproduce_report"]
    nothing = out["nothing"]
    assert "Pick a LoRA" in nothing["lora_trainer_reproduce_report"] and nothing["lora_trainer_cfg_name"] is None


def test_reproduce_control_fills_the_form_on_gradio_3(world):
    out = _run(Path(sys.executable), world)
    _check(out, world)
    assert out["outside"]["lora_trainer_cfg_name"] == "vadym_v1"   # a local tab opens any path


def test_reproduce_control_refuses_paths_outside_the_roots_when_exposed(world):
    out = _run(Path(sys.executable), world, "0.0.0.0:7860")
    assert "outside the allowed LoRA folders" in out["outside"]["lora_trainer_reproduce_report"]
    assert out["outside"]["lora_trainer_cfg_name"] is None
    assert out["continue"]["lora_trainer_cfg_network_weights"]   # inside the Lora folder: fine


def test_reproduce_control_fills_the_form_on_gradio_4(world):
    if not UI4_PYTHON.is_file():
        pytest.skip(f"{UI4_PYTHON} is missing: `make ui4-env` builds the gradio-4 UI environment")
    _check(_run(UI4_PYTHON, world), world)
