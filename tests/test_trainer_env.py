"""The trainer environment: which pins, reusing the host's torch (a real venv that imports the host's
torch without installing it), creation with progress lines, the stamp, pip never touching the
host's folder, the user-given Python check (for real against the test venv), the interpreter
choice and the `exec` launcher the builtin engine uses on first use.

The full `pip install` of the trainer pins (diffusers, transformers, peft...: minutes) is not run
here: its exact command list is tested, and the creation path runs with a one-package list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib_lora_trainer.engines.base import JobLaunch
from lib_lora_trainer.engines.builtin_engine import BuiltinEngine
from lib_lora_trainer.trainer_env.choose import choose_interpreter
from lib_lora_trainer.trainer_env.managed import ManagedEnv
from lib_lora_trainer.trainer_env.plan import BRIDGE_PTH, TrainerEnvError, make_plan
from lib_lora_trainer.trainer_env.probe import probe
from lib_lora_trainer.trainer_env.requirements import ENV_TXT, trainer_requirements
from lib_lora_trainer.trainer_env.user_python import check_user_python

from pypi_helpers import pypi_reachable

ROOT = Path(__file__).resolve().parent.parent
HOST = sys.executable                                     # has torch 2.13 (the project's test venv)
BARE = getattr(sys, "_base_executable", sys.executable)   # the interpreter it was made from: no torch


def host_has_torch() -> Path:
    info = probe(HOST)
    if not info.torch:
        pytest.skip(f"{HOST} has no torch")
    return Path(info.torch_dir)


def test_trainer_pins_come_from_env_txt(tmp_path):
    pins = trainer_requirements()
    names = [p.split("==")[0].lower() for p in pins]
    assert "torch==2.13.0" in pins and "diffusers==0.42.1" in pins and "peft==0.21.2" in pins
    assert not {"gradio", "fastapi", "pytest", "schemathesis", "uvicorn"} & set(names)
    assert "torch" not in [n for n in (p.split("==")[0] for p in trainer_requirements(reuse_torch=True))]
    partial = tmp_path / "env.txt"
    partial.write_text("torch==2.13.0\n")
    with pytest.raises(ValueError, match="no pin for .*diffusers.*add one"):
        trainer_requirements(partial)


def test_plan_reuses_the_host_torch_and_pins_it():
    torch_dir = host_has_torch()
    plan = make_plan(Path("/tmp/x/env"), HOST)
    assert plan.torch_from == str(torch_dir)
    host_torch = probe(HOST).torch
    assert f"torch=={host_torch}" in plan.requirements and "torch==2.13.0" not in plan.requirements
    assert "diffusers==0.42.1" in plan.requirements and any("reusing the host's torch" in n for n in plan.notes)
    assert plan.venv_argv() == [HOST, "-m", "venv", "/tmp/x/env"]
    assert plan.pip_argv()[:4] == ["/tmp/x/env/bin/python", "-m", "pip", "install"]
    assert "--progress-bar" in plan.pip_argv() and plan.pip_argv()[-len(plan.requirements):] == list(plan.requirements)


def test_plan_without_a_host_torch_installs_the_pinned_one():
    if probe(BARE).torch:
        pytest.skip(f"{BARE} has a torch")
    plan = make_plan(Path("/tmp/x/env"), BARE)
    assert plan.torch_from is None and "torch==2.13.0" in plan.requirements
    assert any("has no torch" in n for n in plan.notes)


def test_too_old_base_python_is_a_clear_error(tmp_path):
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho 'TRAINER_ENV_PROBE {\"version\": [3, 9, 1], \"prefix\": \"/p\", "
                   "\"base_prefix\": \"/p\", \"purelib\": \"/p/s\", \"torch\": null, \"torch_dir\": null}'\n")
    old.chmod(0o755)
    with pytest.raises(TrainerEnvError, match="Python 3.9.1; the trainer environment needs 3.11"):
        make_plan(tmp_path / "env", HOST, base_python=str(old))


@pytest.fixture(scope="module")
def bridged_env(tmp_path_factory):
    """A real venv made from the test venv's Python, linked to its torch, with one small pin."""
    host_has_torch()
    env_dir = tmp_path_factory.mktemp("trainer") / "env"
    lines: list[str] = []
    env = ManagedEnv(env_dir, HOST, requirements=["tomli-w==1.0.0"])
    python = env.ensure(progress=lines.append)
    return env, python, lines


def test_created_venv_sees_the_host_torch_without_installing_it(bridged_env):
    env, python, lines = bridged_env
    assert python == env.env_dir / "bin" / "python" and env.ready()
    code = "import sys, torch; print(sys.prefix); print(torch.__file__); print(torch.__version__)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120)
    prefix, torch_file, version = done.stdout.split()
    assert Path(prefix) == env.env_dir and version.startswith("2.")
    assert not Path(torch_file).is_relative_to(env.env_dir)  # the host's torch, not a copy
    site = next((env.env_dir / "lib").glob("python3*/site-packages"))
    assert not (site / "torch").exists() and (site / BRIDGE_PTH).is_file()
    assert any("step 1/3" in line for line in lines) and any("step 3/3" in line for line in lines)
    assert any("reusing the host's torch" in line for line in lines) and lines[-1].startswith("[trainer-env] ready")


def test_second_use_does_nothing_and_a_pin_change_rebuilds(bridged_env, tmp_path):
    env, python, _ = bridged_env
    again: list[str] = []
    assert ManagedEnv(env.env_dir, HOST, requirements=["tomli-w==1.0.0"]).ensure(progress=again.append) == python
    assert again == []
    assert not ManagedEnv(env.env_dir, HOST, requirements=["tomli-w==1.1.0"]).ready()


def test_pip_in_the_trainer_venv_never_touches_the_host_folder(bridged_env, tmp_path):
    """What the managed venv relies on: a package the venv needs in another version is installed
    into the venv; the host's copy (reached through the .pth link) is left exactly as it was."""
    if not pypi_reachable():
        pytest.skip("PyPI is unreachable")
    env, python, _ = bridged_env
    host_site = tmp_path / "host-site"
    subprocess.run([HOST, "-m", "pip", "install", "--no-deps", "--target", str(host_site), "tomli-w==1.0.0"],
                   check=True, capture_output=True, timeout=300)
    before = sorted(p.relative_to(host_site).as_posix() for p in host_site.rglob("*"))
    site = next((env.env_dir / "lib").glob("python3*/site-packages"))
    (site / "zz_fake_host.pth").write_text(str(host_site) + "\n")
    try:
        done = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "tomli-w==1.1.0"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        seen = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('tomli-w'))"],
                              capture_output=True, text=True, timeout=60).stdout.strip()
        assert seen == "1.1.0"
        assert sorted(p.relative_to(host_site).as_posix() for p in host_site.rglob("*")) == before
    finally:
        (site / "zz_fake_host.pth").unlink()


def test_user_python_check_for_real():
    good = check_user_python(HOST)
    assert good.ok, good.message()
    assert good.versions["diffusers"] == "0.42.1" and good.versions["torch"].startswith("2.13")
    bad = check_user_python(BARE)
    assert not bad.ok and "cannot import torch" in bad.message() and "clear the trainer Python setting" in bad.message()
    missing = check_user_python("/no/such/python")
    assert not missing.ok and "does not exist" in missing.message()


def test_user_python_too_old_package(tmp_path, monkeypatch):
    fake = tmp_path / "old"
    (fake / "diffusers").mkdir(parents=True)
    (fake / "diffusers" / "__init__.py").write_text("")
    (fake / "diffusers-0.30.0.dist-info").mkdir()
    (fake / "diffusers-0.30.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: diffusers\n"
                                                                  "Version: 0.30.0\n")
    monkeypatch.setenv("PYTHONPATH", str(fake))
    result = check_user_python(HOST, refresh=True)
    assert not result.ok and "diffusers 0.30.0 is older than the supported 0.42" in result.message()


def test_interpreter_choice_order(tmp_path, monkeypatch):
    monkeypatch.delenv("LORA_TRAINER_PYTHON", raising=False)
    assert choose_interpreter({}).python == sys.executable
    assert choose_interpreter({"trainer_python": "/opt/t/python"}).prefix == ("/opt/t/python",)
    env_dir = tmp_path / "trainer-env"
    first = choose_interpreter({"trainer_env_dir": str(env_dir)})
    assert first.source == "managed-on-first-use" and first.python == str(env_dir / "bin" / "python")
    assert first.prefix == (sys.executable, "-m", "lib_lora_trainer.trainer_env", "exec", "--env-dir",
                            str(env_dir), "--")
    with pytest.raises(TrainerEnvError, match="--skip-install"):
        choose_interpreter({"trainer_env_dir": str(env_dir), "trainer_env_install": False})
    with pytest.raises(TrainerEnvError, match="cannot import torch"):
        choose_interpreter({"trainer_python": BARE, "validate_trainer_python": True})
    monkeypatch.setenv("LORA_TRAINER_PYTHON", "/env/python")  # the environment variable beats the venv
    assert choose_interpreter({"trainer_env_dir": str(env_dir)}).python == "/env/python"


def test_builtin_engine_uses_the_launcher_then_the_ready_venv(bridged_env, tmp_path, monkeypatch):
    monkeypatch.delenv("LORA_TRAINER_PYTHON", raising=False)
    env, python, _ = bridged_env
    job = tmp_path / "job"
    job.mkdir()
    launch = JobLaunch(run_toml=job / "run.toml", model_type="sd1", job_dir=job)
    fresh = BuiltinEngine({"trainer_env_dir": str(tmp_path / "not-yet")})
    argv = fresh.command(launch).argv
    assert argv[:4] == [sys.executable, "-m", "lib_lora_trainer.trainer_env", "exec"]
    assert argv[argv.index("--") + 1:argv.index("--") + 3] == ["-m", "accelerate.commands.launch"]
    assert fresh.status().available and fresh.status().python == str(tmp_path / "not-yet" / "bin" / "python")
    assert not BuiltinEngine({"trainer_env_dir": str(tmp_path / "x"), "trainer_env_install": "false"}).status().available

    declare_complete_for_env_txt(env)
    ready = BuiltinEngine({"trainer_env_dir": str(env.env_dir)})
    assert ready.command(launch).argv[0] == str(python) and ready.interpreter().source == "managed"


def declare_complete_for_env_txt(env: ManagedEnv) -> None:
    """The real venv, declared complete for the env.txt pins (not installed: minutes of pip)."""
    stamp = env.stamp()
    stamp["key"] = ManagedEnv(env.env_dir).key()
    env.stamp_file.write_text(json.dumps(stamp))


def test_exec_launcher_runs_the_venv_python_and_reports_errors(bridged_env, tmp_path):
    env, python, _ = bridged_env
    declare_complete_for_env_txt(env)
    environ = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "lib_lora_trainer.trainer_env", "exec", "--env-dir", str(env.env_dir),
                           "--", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                          env=environ, timeout=120)
    assert done.returncode == 0 and Path(done.stdout.strip()) == env.env_dir, done.stderr
    broken = subprocess.run([sys.executable, "-m", "lib_lora_trainer.trainer_env", "exec", "--env-dir",
                             str(tmp_path / "new-env"), "--base-python", "/no/such/python", "--", "-c", "pass"],
                            capture_output=True, text=True, env=environ, timeout=120)
    assert broken.returncode == 2 and "[trainer-env] error: /no/such/python does not exist" in broken.stderr
    assert not (tmp_path / "new-env").exists()


def test_a1111_entry_points_put_deps_back_on_sys_path(tmp_path, monkeypatch):
    """A1111's load_scripts() restores its saved sys.path after each script file, dropping the
    .deps entry added at import (seen in a real A1111 1.10.1): every entry point adds it again."""
    import sys

    from lib_lora_trainer.hosts import a1111
    from lib_lora_trainer.trainer_env import host_deps

    deps = tmp_path / ".deps"
    deps.mkdir()
    monkeypatch.setattr(host_deps, "DEPS_DIR", deps)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(deps)])
    monkeypatch.setattr(a1111, "_host", object())  # an existing host: no A1111 needed
    a1111.host()
    assert sys.path[-1] == str(deps)
    a1111.host()
    assert sys.path.count(str(deps)) == 1
