"""Host tier (not in CI): sd-scripts installed BY THE EXTENSION (git clone --branch, own venv,
requirements) from a local repository, then the job service training with it on a real SD1.5.

Runs only when these are set (things beside the project, never committed):
  LORA_TRAINER_TEST_SD_SCRIPTS_ORIGIN    a local git repository with release tags
                                         (tests/host/sd_scripts_origin.py makes one from a snapshot)
  LORA_TRAINER_TEST_SD15                 a full-size SD1.5-architecture checkpoint (random weights are fine)
optional:
  LORA_TRAINER_TEST_SD_SCRIPTS_VERSIONS  tags to run, comma-separated (default v0.10.1)
  LORA_TRAINER_TEST_SD_SCRIPTS_TORCH     pip arguments for torch in the new venvs (default: reuse this torch)
  LORA_TRAINER_TEST_DATA                 a data dir to keep the installs in between runs (default: a temp one)

    LORA_TRAINER_TEST_SD_SCRIPTS_ORIGIN=/work/hosts/sd-scripts-origin \
    LORA_TRAINER_TEST_SD_SCRIPTS_VERSIONS=v0.10.1,main-48d368f \
    LORA_TRAINER_TEST_SD_SCRIPTS_TORCH="torch==2.14.1 torchvision==0.29.1" \
    LORA_TRAINER_TEST_SD15=/work/hosts/models/Stable-diffusion/sd15-random.safetensors \
    LORA_TRAINER_TEST_DATA=/work/real13/data .venv/bin/python -m pytest -s tests/host/test_sd_scripts_managed_real.py
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from jobs_helpers import photos
from lib_lora_trainer.jobs import states as S
from lib_lora_trainer.jobs.service import JobService, SubmitError
from lib_lora_trainer.lora_file import read_lora_header

ORIGIN = os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS_ORIGIN")
MODEL = os.environ.get("LORA_TRAINER_TEST_SD15")
VERSIONS = [v for v in os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS_VERSIONS", "v0.10.1").split(",") if v]
TORCH = os.environ.get("LORA_TRAINER_TEST_SD_SCRIPTS_TORCH", "")

pytestmark = pytest.mark.skipif(not (ORIGIN and MODEL), reason="needs a local sd-scripts repository and an SD1.5")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return Path(os.environ.get("LORA_TRAINER_TEST_DATA") or tmp_path_factory.mktemp("data"))


def _service(data_dir: Path, tmp_path: Path, version: str) -> JobService:
    settings = {"sd_scripts_url": ORIGIN, "sd_scripts_version": version, "sd_scripts_torch": TORCH,
                "device_override": (False, False)}
    return JobService(data_dir, tmp_path / "Lora", settings)


def _config(**over):
    from lib_lora_trainer.config.presets import resolve_config

    values = {"name": "VadymPanchenko_v1", "trigger": "VadymPanchenko", "class_token": "man", "base_model": MODEL,
              "engine": "kohya", "resolution": 128, "repeats": 2, "network_dim": 4, "network_alpha": 1,
              "max_train_steps": 2, "mixed_precision": "no", "save_state": False, "test_after_training": False}
    values.update(over)
    return resolve_config("sd15-portrait", values)


@pytest.mark.parametrize("version", VERSIONS)
def test_managed_install_then_a_real_job(data_dir, tmp_path, version, sd_scripts_fixtures):
    from lib_lora_trainer.engines.sd_scripts_install import SdScriptsInstaller

    service = _service(data_dir, tmp_path, version)
    t0 = time.monotonic()
    state = SdScriptsInstaller(service.settings["engines_dir"], service.settings).install(version, progress=print)
    print(f"[managed-real] {version}: install {state.state} ({state.commit}) after {time.monotonic() - t0:.0f} s")
    assert state.state == "ready", state.reason
    t0 = time.monotonic()
    job = service.submit(photos(tmp_path, n=4), _config())
    done = service.wait(job.id, poll_s=1.0, timeout_s=1500)
    took = time.monotonic() - t0
    log = (done.folder / "stdout.log").read_text(errors="replace")
    assert done.state == S.SUCCEEDED, (done.error_kind, done.error, log[-3000:])
    command = json.loads((done.folder / "command.json").read_text())
    assert command["cwd"] == str(SdScriptsInstaller(service.settings["engines_dir"]).checkout(version))
    keys, md = read_lora_header(done.installed_path)
    fixture = json.loads((sd_scripts_fixtures / "sd15_simple.VadymPanchenko_v1.keys.json").read_text())
    print(f"[managed-real] {version}: job {took:.0f} s, {len(keys)} keys, ss_steps {md['ss_steps']}, "
          f"same key set as the v0.10.1 fixture: {set(keys) == set(fixture)}")
    assert set(keys) == set(fixture)
    assert md["ss_steps"] == "2" and md["ss_base_model_version"] == "sd_v1"
    progress = done.progress or {}
    assert progress.get("step") == 2 and progress.get("total") == 2, progress


@pytest.mark.parametrize("version", VERSIONS)
def test_a_key_this_version_would_ignore_is_refused_before_launch(data_dir, tmp_path, version):
    """train_network.py (SD1/SD2) has no cache_text_encoder_outputs (only sdxl_train_network.py
    does): written for an SD1 run, sd-scripts would drop it without a word."""
    service = _service(data_dir, tmp_path, version)
    cfg = _config(cache_text_encoder_outputs=True, train_unet_only=True, shuffle_caption=False,
                  caption_dropout_rate=0.0)
    with pytest.raises(SubmitError) as refused:
        service.submit(photos(tmp_path, n=4), cfg)
    message = str(refused.value)
    print(f"[managed-real] {version}: refused: {message}")
    assert "`cache_text_encoder_outputs`" in message and version in message and "ignore" in message


def _run_direct(service: JobService, version: str, run: dict, tmp_path: Path, name: str):
    """sd-scripts of the managed install run by hand (no job service) with `run` as its config."""
    import subprocess

    import tomli_w

    from lib_lora_trainer.engines.kohya import KohyaEngine
    from lib_lora_trainer.engines.sd_scripts_install import SdScriptsInstaller

    installer = SdScriptsInstaller(service.settings["engines_dir"])
    checkout = installer.checkout(version)
    toml = tmp_path / f"{name}.toml"
    toml.write_text(tomli_w.dumps(run), encoding="utf-8")
    env = KohyaEngine(service.settings).launch_env(checkout)
    done = subprocess.run([str(installer.python(version)), "-m", "accelerate.commands.launch", "--num_processes",
                           "1", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                           str(checkout / "train_network.py"), "--config_file", str(toml)],
                          cwd=checkout, env=env, capture_output=True, text=True, errors="replace", timeout=1500)
    return done


@pytest.mark.parametrize("version", VERSIONS)
def test_the_progress_parser_reads_this_versions_rich_log_and_its_no_data_failure(data_dir, tmp_path, version):
    """The job runs above log in sd-scripts' simple mode; here the same version's rich log (the
    default a user's own runs have) and its "No data found" run, which exits 0."""
    import tomllib

    from lib_lora_trainer.jobs.progress import ProgressParser, classify_exit

    service = _service(data_dir, tmp_path, version)
    job = service.submit(photos(tmp_path, n=4), _config(), queue=False)
    run = tomllib.loads((job.folder / "run.toml").read_text())
    dataset = tomllib.loads((job.folder / "dataset.toml").read_text())
    run.update(console_log_simple=False, output_dir=str(tmp_path / "out-rich"),
               train_data_dir=str(Path(dataset["datasets"][0]["subsets"][0]["image_dir"]).parent),
               resolution=str(run.get("resolution", 128)), caption_extension=".txt")
    for name, changes, want in (("rich", {}, "ok"),
                                ("badfolder", {"train_data_dir": str(photos(tmp_path / "flat", n=2)),
                                               "output_dir": str(tmp_path / "out-bad")}, "no_data")):
        done = _run_direct(service, version, {**run, **changes}, tmp_path, name)
        parser = ProgressParser()
        parser.feed(done.stdout, "stdout")
        parser.feed(done.stderr, "stderr")
        parser.finish()
        ok, kind, message = classify_exit(done.returncode, parser.state)
        print(f"[managed-real] {version} {name}: exit {done.returncode}, step {parser.state.step}/"
              f"{parser.state.total}, ok={ok}, kind={kind}, losses={len(parser.state.loss_history)}")
        if want == "ok":
            assert ok and parser.state.step == parser.state.total == 2, done.stderr[-2000:]
            assert len(parser.state.loss_history) == 2
        else:
            assert done.returncode == 0 and (ok, kind) == (False, "no_data"), done.stderr[-2000:]
