"""Jobs started the way a web UI host starts them: from a Python that has NOT got our package
installed, whose working folder is the host's, and on whose sys.path the extension folder is only
because the host put it there at import (A1111 does that while it loads an extension's scripts).

Before the fix the supervisor (`-m lib_lora_trainer.jobs.supervise`) could not import our package
whenever the engine's environment replaced PYTHONPATH (the kohya engine sets it to the sd-scripts
checkout), and the job ended "interrupted" within seconds; the real cause was in supervisor.log only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from jobs_helpers import ROOT, photos
from sd_scripts_standin import train_network_source

# A fake sd-scripts checkout: the launch chain (supervisor -> accelerate launch -> the script) is
# real; the script only reports the environment it got and writes a small kohya-format LoRA.
FAKE_TRAIN_NETWORK_BODY = '''
import json, os, sys, tomllib
import library.train_util  # importable only through the PYTHONPATH the kohya engine sets
from safetensors.torch import save_file
import torch

args = sys.argv[1:]
run = tomllib.loads(open(args[args.index("--config_file") + 1], encoding="utf-8").read())
json.dump({"pythonpath": os.environ.get("PYTHONPATH", ""), "cwd": os.getcwd(),
           "has_package": any(os.path.isdir(os.path.join(p, "lib_lora_trainer"))
                              for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)},
          open(os.environ["FAKE_SD_SCRIPTS_REPORT"], "w"))
print("running training / 学習開始", flush=True)
print("steps: 100%|##########| 2/2 [00:01<00:00,  1.50it/s, avr_loss=0.12]", flush=True)
out = os.path.join(run["output_dir"], run["output_name"] + ".safetensors")
name = "lora_unet_down_blocks_0_attentions_0_proj_in"
save_file({name + ".lora_down.weight": torch.zeros(4, 32), name + ".lora_up.weight": torch.zeros(32, 4),
           name + ".alpha": torch.tensor(4.0)},
          out, metadata={"ss_output_name": run["output_name"], "ss_network_module": "networks.lora",
                         "ss_base_model_version": "sd_v1", "ss_steps": "2"})
print("model saved.", flush=True)
'''

DRIVER = '''
import json, sys
sys.path.insert(0, sys.argv[1])  # the host puts the extension folder on sys.path
sys.path.append(sys.argv[2])     # and has the libraries (its own site-packages)
from lib_lora_trainer.jobs.service import JobService
from lib_lora_trainer.config.presets import resolve_config

data, lora_dir, dataset, model, engine, settings = sys.argv[3:9]
settings = json.loads(settings)
service = JobService(data, lora_dir, settings)
cfg = resolve_config("cpu-tiny", {"name": "hostjob", "trigger": "zkperson", "base_model": model,
                                  "engine": engine, "max_train_steps": 2})
job = service.submit(dataset, cfg)
done = service.wait(job.id, poll_s=0.3, timeout_s=300)
print(json.dumps({"state": done.state, "error": done.error, "error_kind": done.error_kind,
                  "installed": done.installed_path}))
'''


@pytest.fixture(scope="module")
def host_python(tmp_path_factory) -> str:
    """A bare venv: like A1111's Python, our package is not installed in it."""
    venv = tmp_path_factory.mktemp("hostpy") / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    probe = subprocess.run([python, "-c", "import lib_lora_trainer"], cwd="/", capture_output=True)
    if probe.returncode == 0:
        pytest.skip("the base interpreter has lib_lora_trainer installed; no host-like Python here")
    return python


def _run_as_host(tmp_path, host_python, tiny_model, engine, settings, extra_env=None):
    host_cwd = tmp_path / "webui"  # the host's folder, not the repository
    host_cwd.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra_env or {}, HF_HUB_OFFLINE="1")
    site = sysconfig.get_paths()["purelib"]
    proc = subprocess.run([host_python, str(driver), str(ROOT), site, str(tmp_path / "data"), str(tmp_path / "Lora"),
                           str(photos(tmp_path, n=4)), str(tiny_model), engine, json.dumps(settings)],
                          cwd=host_cwd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_builtin_job_started_from_a_host_python_succeeds(tmp_path, host_python, tiny_model):
    result = _run_as_host(tmp_path, host_python, tiny_model, "builtin", {"trainer_python": sys.executable})
    assert result["state"] == "succeeded", result
    assert Path(result["installed"]).is_file()


def test_kohya_job_started_from_a_host_python_succeeds(tmp_path, host_python, tiny_model):
    checkout = tmp_path / "sd-scripts"
    (checkout / "library").mkdir(parents=True)
    (checkout / "library" / "__init__.py").write_text("")
    (checkout / "library" / "train_util.py").write_text("")
    (checkout / "train_network.py").write_text(train_network_source(body=FAKE_TRAIN_NETWORK_BODY),
                                               encoding="utf-8")
    (checkout / "sdxl_train_network.py").write_text("from train_network import setup_parser\n")
    report = tmp_path / "engine_env.json"
    result = _run_as_host(tmp_path, host_python, tiny_model, "kohya",
                          {"sd_scripts_path": str(checkout), "sd_scripts_python": sys.executable},
                          {"FAKE_SD_SCRIPTS_REPORT": str(report)})
    assert result["state"] == "succeeded", result
    seen = json.loads(report.read_text())
    # The engine got exactly the environment the kohya engine asked for: the checkout, not our package.
    assert seen["pythonpath"].split(os.pathsep)[0] == str(checkout) and not seen["has_package"]
    assert seen["cwd"] == str(checkout)


def test_a_supervisor_that_dies_of_an_error_fails_the_job_with_its_real_cause(tmp_path):
    """Whatever breaks the supervisor itself must reach the user, not 'interrupted, resume'."""
    from lib_lora_trainer.jobs import states as S
    from lib_lora_trainer.jobs.lifecycle import Lifecycle
    from lib_lora_trainer.jobs.processes import SUPERVISOR_LOG, SUPERVISOR_START
    from lib_lora_trainer.jobs.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite3")
    folder = tmp_path / "job"
    folder.mkdir()
    # A real process that failed the way the supervisor did inside A1111.
    dead = subprocess.Popen([sys.executable, "-c", "import lib_lora_trainer_missing"], stderr=subprocess.PIPE)
    _, err = dead.communicate(timeout=60)
    (folder / SUPERVISOR_LOG).write_bytes(b"old attempt: fine\n" + SUPERVISOR_START + b" now\n" + err)
    job = store.create("j", "kohya", str(folder), {}, state=S.QUEUED)
    store.claim_next("0")
    store.update(job.id, pid=dead.pid)
    Lifecycle(store, tmp_path / "Lora", {}).reconcile(store.get(job.id))
    done = store.get(job.id)
    assert done.state == S.FAILED and done.error_kind == "supervisor", done
    assert "No module named 'lib_lora_trainer_missing'" in done.error and "supervisor.log" in done.error


def test_a_supervisor_killed_with_its_group_is_an_interruption(tmp_path):
    """kill -9 leaves no words in supervisor.log: that stays 'interrupted' (resumable)."""
    from lib_lora_trainer.jobs import states as S
    from lib_lora_trainer.jobs.lifecycle import Lifecycle
    from lib_lora_trainer.jobs.processes import SUPERVISOR_LOG, SUPERVISOR_START
    from lib_lora_trainer.jobs.store import JobStore

    store = JobStore(tmp_path / "jobs.sqlite3")
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / SUPERVISOR_LOG).write_bytes(b"Traceback: an old attempt\n" + SUPERVISOR_START + b" now\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=60)
    job = store.create("j", "builtin", str(folder), {}, state=S.QUEUED)
    store.claim_next("0")
    store.update(job.id, pid=dead.pid)
    Lifecycle(store, tmp_path / "Lora", {}).reconcile(store.get(job.id))
    assert store.get(job.id).state == S.INTERRUPTED
