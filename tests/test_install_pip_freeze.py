"""install.py changes nothing in A1111's venv: `pip freeze` is identical before and after.

A real venv with A1111 1.10.1's pins (gradio 3.41.2, fastapi 0.94.0, transformers 4.30.2,
accelerate 0.21.0, safetensors 0.4.2; torch 2.13.0 preinstalled from the local CPU wheel so
nothing pulls a CUDA build) is built once and cached in ~/.cache/lora_trainer (about 2-4 minutes
the first time, from PyPI; LORA_TRAINER_TEST_CACHE moves it). install.py then runs as A1111 runs
it: a subprocess of that venv's Python with the webui folder on PYTHONPATH, where a stand-in
`launch.py` offers run_pip / is_installed / args with A1111's behaviour and runs pip for real.
Skipped, with the reason, when PyPI cannot be reached.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pypi_helpers import pypi_reachable

ROOT = Path(__file__).resolve().parent.parent
A1111_PINS = ["gradio==3.41.2", "fastapi==0.94.0", "transformers==4.30.2", "accelerate==0.21.0",
              "safetensors==0.4.2"]
TORCH = "torch==2.13.0"
CACHE = Path(os.environ.get("LORA_TRAINER_TEST_CACHE") or Path.home() / ".cache" / "lora_trainer")

# The parts of A1111 1.10.1's launch.py (modules/launch_utils.py) an install.py uses, with the same
# behaviour; A1111 hands run() one shell string, this stand-in splits it and runs it without a shell.
STAND_IN_LAUNCH = '''\
"""Stand-in for A1111 1.10.1's launch.py: args, python, index_url, run, is_installed, run_pip."""
import argparse, importlib.metadata, importlib.util, os, shlex, subprocess, sys

_parser = argparse.ArgumentParser(add_help=False)
_parser.add_argument("--skip-install", action="store_true")
args, _ = _parser.parse_known_args(sys.argv[1:] + shlex.split(os.environ.get("COMMANDLINE_ARGS", "")))
python = sys.executable
index_url = os.environ.get("INDEX_URL", "")


def run(command, desc=None, errdesc=None, custom_env=None, live=False):
    if desc is not None:
        print(desc)
    result = subprocess.run(shlex.split(command), env=os.environ if custom_env is None else custom_env,
                            encoding="utf8", errors="ignore", capture_output=not live)
    if result.returncode != 0:
        raise RuntimeError(f"{errdesc or 'Error running command'}.\\nCommand: {command}\\n"
                           f"Error code: {result.returncode}\\nstdout: {result.stdout}\\nstderr: {result.stderr}")
    return result.stdout or ""


def is_installed(package):
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        try:
            spec = importlib.util.find_spec(package)
        except ModuleNotFoundError:
            return False
        return spec is not None
    return dist is not None


def run_pip(command, desc=None, live=False):
    if args.skip_install:
        return
    index_url_line = f" --index-url {index_url}" if index_url != "" else ""
    return run(f'"{python}" -m pip {command} --prefer-binary{index_url_line}', desc=f"Installing {desc}",
               errdesc=f"Couldn't install {desc}", live=live)
'''


def run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)


def a1111_venv() -> Path:
    """The cached venv with A1111's pins (built under a file lock; a stamp marks it complete)."""
    key = hashlib.sha256(" ".join([sys.version, TORCH, *A1111_PINS]).encode()).hexdigest()[:12]
    venv = CACHE / f"a1111-1.10.1-pins-{key}"
    stamp = venv / "complete.stamp"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.is_file():
            shutil.rmtree(venv, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            steps = [[base, "-m", "venv", venv],
                     [venv / "bin" / "python", "-m", "pip", "install", "--prefer-binary", TORCH],
                     [venv / "bin" / "python", "-m", "pip", "install", "--prefer-binary", TORCH, *A1111_PINS]]
            for argv in steps:
                done = run(argv, timeout=1500)
                if done.returncode != 0:
                    pytest.fail(f"building the A1111-pins venv failed: {' '.join(map(str, argv))}\n"
                                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            stamp.write_text("ok")
    return venv


@pytest.fixture(scope="module")
def host_python() -> Path:
    if not pypi_reachable():
        pytest.skip("PyPI (https://pypi.org) is unreachable: the A1111-pins venv and install.py's pip run need it")
    return a1111_venv() / "bin" / "python"


@pytest.fixture
def webui(tmp_path) -> tuple[Path, Path]:
    """<webui>/launch.py (stand-in) and <webui>/extensions/sd-webui-lora-trainer (install.py and the
    standard-library part of the package it imports)."""
    root = tmp_path / "webui"
    ext = root / "extensions" / "sd-webui-lora-trainer"
    (ext / "lib_lora_trainer").mkdir(parents=True)
    (root / "launch.py").write_text(STAND_IN_LAUNCH)
    shutil.copy2(ROOT / "install.py", ext / "install.py")
    shutil.copy2(ROOT / "lib_lora_trainer" / "__init__.py", ext / "lib_lora_trainer" / "__init__.py")
    shutil.copytree(ROOT / "lib_lora_trainer" / "trainer_env", ext / "lib_lora_trainer" / "trainer_env",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return root, ext


def run_installer(python: Path, root: Path, ext: Path, **env) -> subprocess.CompletedProcess:
    """As modules/launch_utils.run_extension_installer does: PYTHONPATH=<webui root>, cwd = webui root."""
    full = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]), **env)
    full.pop("PYTHONHOME", None)
    done = run([python, ext / "install.py"], env=full, cwd=root, timeout=600)
    assert done.returncode == 0, f"install.py failed:\n{done.stdout}\n{done.stderr}"
    return done


def freeze(python: Path) -> str:
    done = run([python, "-m", "pip", "freeze", "--all"], timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_pip_freeze_is_identical_before_and_after_install_py(host_python, webui):
    root, ext = webui
    before = freeze(host_python)
    assert "gradio==3.41.2" in before and "fastapi==0.94.0" in before and "transformers==4.30.2" in before
    assert "tomli_w" not in before.lower().replace("-", "_")  # the dependency really is missing

    first = run_installer(host_python, root, ext)
    assert "Installing tomli-w==1.0.0 for sd-webui-lora-trainer" in first.stdout
    assert (ext / ".deps" / "tomli_w" / "__init__.py").is_file()
    assert freeze(host_python) == before

    # The extension can use it in A1111's process (hosts/a1111.py calls host_deps.activate()).
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from lib_lora_trainer.trainer_env import host_deps; "
            "host_deps.activate(); import tomli_w; print(tomli_w.dumps({'a': 1}).strip())")
    used = run([host_python, "-c", code, ext], cwd=root, timeout=60)
    assert used.stdout.strip() == "a = 1", used.stderr

    second = run_installer(host_python, root, ext)  # every A1111 start: nothing to do, no pip run
    assert "Installing" not in second.stdout
    assert freeze(host_python) == before


def test_skip_install_runs_no_pip(host_python, webui):
    root, ext = webui
    before = freeze(host_python)
    done = run_installer(host_python, root, ext, COMMANDLINE_ARGS="--skip-install")
    assert "Installing" not in done.stdout and not (ext / ".deps").exists()
    assert freeze(host_python) == before


def test_small_deps_are_exact_pure_python_pins():
    sys.path.insert(0, str(ROOT))
    from lib_lora_trainer.trainer_env import host_deps

    assert host_deps.small_deps((3, 10)) == {"tomli_w": "tomli-w==1.0.0", "tomli": "tomli==2.0.1"}
    assert host_deps.small_deps((3, 11)) == {"tomli_w": "tomli-w==1.0.0"}
    args = host_deps.pip_args(["tomli-w==1.0.0"], Path("/x/.deps"))
    assert args[:1] == ["install"] and "--no-deps" in args and args[args.index("--target") + 1] == "/x/.deps"
    source = (ROOT / "install.py").read_text()
    assert "launch.run_pip(" in source  # so A1111's --skip-install and INDEX_URL apply
