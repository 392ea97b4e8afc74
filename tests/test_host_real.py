"""Issue 15 item 1 (and 3): our host glue against the REAL functions of both web UIs, each in its
own Python (A1111 1.10.1: Python 3.10/3.11, gradio 3.41; Forge Neo: Python 3.13, gradio 4.40).
tests/real_host_probe.py initialises the host's modules the way its webui.py does (no server, no
model) and drives hosts/a1111.py there; these tests read what it found.

Opt-in like the host tier (a checkout beside the project, never committed):
    LORA_TRAINER_TEST_A1111=/work/hosts/a1111        [LORA_TRAINER_TEST_A1111_PYTHON=<its venv python>]
    LORA_TRAINER_TEST_FORGE_NEO=/work/hosts/forge-neo [LORA_TRAINER_TEST_FORGE_NEO_PYTHON=...]
Each run takes 15-70 s on 2 CPU cores (importing the host); nothing is trained.
The unit tests with stand-ins shaped like each host are in test_vram_handoff.py and
test_scripts_lora_trainer.py; those are shapes, these are the proof.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = Path(__file__).resolve().parent / "real_host_probe.py"
DROPPED = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "COMMANDLINE_ARGS", "IGNORE_CMD_ARGS_ERRORS")


def _probe(kind: str, env_name: str, tmp_path: Path) -> dict:
    checkout = os.environ.get(env_name)
    if not checkout:
        pytest.skip(f"needs a real host checkout: set {env_name}")
    python = os.environ.get(f"{env_name}_PYTHON") or str(Path(checkout) / "venv" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip(f"{python} does not exist: set {env_name}_PYTHON")
    env = {k: v for k, v in os.environ.items() if k not in DROPPED and not k.startswith("LORA_TRAINER_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", DO_NOT_TRACK="1")
    proc = subprocess.run([python, str(PROBE), kind, str(ROOT), str(tmp_path)], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PROBE-RESULT ")]
    assert proc.returncode == 0 and lines, f"probe failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return json.loads(lines[-1][len("PROBE-RESULT "):])


def test_real_a1111(tmp_path):
    found = _probe("a1111", "LORA_TRAINER_TEST_A1111", tmp_path)
    assert found["label"] == "A1111" and found["method"] == "a1111" and found["has_send_model_to_device"]
    assert found["captioners"] == ["BLIP (interrogate)", "DeepBooru"]
    assert found["checkpoint_dirs"] == [str(tmp_path / "ckpt-a"), found["model_path"]]   # --ckpt-dir + models/
    # started with --listen: A1111's own cmd_opts.disable_extension_access confines the tab's folders
    assert found["exposed"] and found["limit_roots"] == [str(tmp_path / "data" / "datasets")]
    h = found["handoff"]
    assert h["moves_during"] == ["cpu"] and len(h["moves_after"]) == 1          # unload_model_weights, send_model_to_device
    assert h["generation_waited"] and h["generation_ran_after"] and h["model_kept"] and h["works_after"] == [1, 4]
    assert found["lora_list"]["after"] == ["probe_sd1", "probe_sdxl"]            # networks.list_available_networks()
    assert found["page_shows"] == {"sd1": ["probe_sd1"], "sdxl": ["probe_sdxl"]}   # SdVersion filter per loaded model


def test_real_forge_neo(tmp_path):
    found = _probe("neo", "LORA_TRAINER_TEST_FORGE_NEO", tmp_path)
    assert found["label"] == "Forge Neo" and found["method"] == "forge" and not found["has_send_model_to_device"]
    assert found["captioners"] == []                                             # no deepbooru / interrogate
    assert found["checkpoint_dirs"] == [str(tmp_path / "ckpt-a"), str(tmp_path / "ckpt-b"), found["model_path"]]
    assert found["exposed"] and found["limit_roots"] == [str(tmp_path / "data" / "datasets")]
    h = found["handoff"]
    # backend.memory_management.unload_all_models emptied VRAM, the model object stayed, and the next
    # generation (load_models_gpu) loaded it back
    assert (h["loaded_before"], h["loaded_during"], h["loaded_after_next_generation"]) == (1, 0, 1)
    assert h["generation_waited"] and h["generation_ran_after"] and h["model_kept"] and h["works_after"] == [1, 8]
    assert found["lora_list"]["after"] == ["probe_sd1", "probe_sdxl"]
    assert found["page_shows"] == {"sd": ["probe_sd1"], "xl": ["probe_sdxl"]}    # Neo's preset filter ("sd version")
