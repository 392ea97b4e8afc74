"""Host tier (not in CI): the job service driving a REAL sd-scripts checkout through the kohya engine.

Runs only when these point at things fetched beside the project (never committed):
  LORA_TRAINER_TEST_SD_SCRIPTS             an sd-scripts checkout (train_network.py ...)
  LORA_TRAINER_TEST_SD_SCRIPTS_PYTHONPATH  extra import path for its packages (os.pathsep-separated), optional
  LORA_TRAINER_TEST_SD_SCRIPTS_PYTHON      its Python, optional (default: this one)
  LORA_TRAINER_TEST_SD15                   a full-size SD1.5-architecture checkpoint (random weights are fine)
"""

import os
from pathlib import Path

import pytest

from jobs_helpers import photos
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService
from lib_lora_trainer.lora_file import read_lora_header

CHECKOUT = os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS")
MODEL = os.environ.get("LORA_TRAINER_TEST_SD15")

pytestmark = pytest.mark.skipif(not (CHECKOUT and MODEL), reason="needs a real sd-scripts checkout and SD1.5 model")


def test_job_service_trains_with_real_sd_scripts(tmp_path, sd_scripts_fixtures):
    import json

    from lib_lora_trainer.config.presets import resolve_config

    settings = {"sd_scripts_path": CHECKOUT,
                "sd_scripts_pythonpath": [p for p in os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS_PYTHONPATH",
                                                                      "").split(os.pathsep) if p],
                "sd_scripts_python": os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS_PYTHON", ""),
                "device_override": (False, False)}
    service = JobService(tmp_path / "data", tmp_path / "Lora", settings)
    cfg = resolve_config("sd15-portrait", {
        "name": "VadymPanchenko_v1", "trigger": "VadymPanchenko", "class_token": "man", "base_model": MODEL,
        "engine": "kohya", "resolution": 128, "repeats": 2, "network_dim": 4, "network_alpha": 1,
        "max_train_steps": 2, "mixed_precision": "no", "save_state": False})
    job = service.submit(photos(tmp_path, n=4), cfg)
    done = service.wait(job.id, poll_s=1.0, timeout_s=1200)
    log = (done.folder / "stdout.log").read_text(errors="replace")[-3000:]
    assert done.state == S.SUCCEEDED, (done.error_kind, done.error, log)
    keys, md = read_lora_header(done.installed_path)
    fixture = json.loads((sd_scripts_fixtures / "sd15_simple.VadymPanchenko_v1.keys.json").read_text())
    assert set(keys) == set(fixture)
    assert md["ss_steps"] == "2" and md["ss_base_model_version"] == "sd_v1"
    assert Path(done.installed_path).with_suffix(".json").is_file()
