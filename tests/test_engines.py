"""Engine protocol, the builtin and kohya engines' commands, discovery and status, the registry."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib_lora_trainer.engines import base, get_engine, list_engines
from lib_lora_trainer.engines.base import Engine, EngineUnavailable, JobLaunch, LaunchSpec, probe_python
from lib_lora_trainer.engines.builtin_engine import REPO_ROOT, BuiltinEngine
from lib_lora_trainer.engines.kohya import (ENV_SD_SCRIPTS, ENV_SD_SCRIPTS_PYTHON, KohyaEngine, checkout_version,
                                            script_for, venv_python)
from sd_scripts_standin import train_network_source

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SOURCES = sorted(p for p in (ROOT / "lib_lora_trainer" / "engines").glob("*.py"))
ACCEL = ["-m", "accelerate.commands.launch"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in (base.ENV_TRAINER_PYTHON, ENV_SD_SCRIPTS, ENV_SD_SCRIPTS_PYTHON):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # no real ~/sd-scripts can leak into discovery
    base.clear_probe_cache()
    yield home
    base.clear_probe_cache()


def launch(tmp_path: Path, **over) -> JobLaunch:
    run_toml = tmp_path / "job" / "run.toml"
    run_toml.parent.mkdir(parents=True, exist_ok=True)
    if not run_toml.exists():
        run_toml.write_text('output_dir = "/o"\noutput_name = "x"\n', encoding="utf-8")
    fields = dict(run_toml=run_toml, dataset_toml=tmp_path / "job" / "dataset.toml",
                  model_type="sd1", job_dir=tmp_path / "job")
    fields.update(over)
    return JobLaunch(**fields)


def fake_python(path: Path, target: str = sys.executable, flags: str = "") -> Path:
    """A small executable that runs the test interpreter (what a venv's bin/python does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\nexec "{target}" {flags} "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


def fake_checkout(folder: Path, files=("train_network.py", "sdxl_train_network.py", "library/train_util.py"),
                  venv: str | None = "venv") -> Path:
    sources = {"train_network.py": train_network_source(),  # a parser the engine can ask for its keys
               "sdxl_train_network.py": "from train_network import setup_parser\n"}
    for rel in files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(sources.get(rel, "# stand-in\n"), encoding="utf-8")
    if venv:
        fake_python(folder / venv / "bin" / "python")
    return folder


def stub_packages(folder: Path, names=("toml", "voluptuous")) -> Path:
    """Importable stand-ins for sd-scripts' small pure-Python requirements."""
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "__init__.py").write_text("", encoding="utf-8")
    return folder


# --- JobLaunch / LaunchSpec ---------------------------------------------------------

@pytest.mark.parametrize("over, words", [
    ({"model_type": "flux"}, "model_type"), ({"mixed_precision": "fp32"}, "mixed_precision"),
    ({"num_processes": 0}, "num_processes"), ({"num_cpu_threads_per_process": 0}, "num_cpu_threads"),
    ({"gpu_ids": "0; rm -rf /"}, "gpu_ids"),
])
def test_job_launch_rejects_bad_values(tmp_path, over, words):
    with pytest.raises(ValueError, match=words):
        launch(tmp_path, **over)


def test_full_env_drops_pythonhome_and_replaces_pythonpath():
    spec = LaunchSpec(["x"], {"PYTHONPATH": "/new", "A": "1"})
    env = spec.full_env({"PYTHONHOME": "/a1111/python", "PYTHONPATH": "/old", "PATH": "/bin"})
    assert env == {"PYTHONPATH": "/new", "A": "1", "PATH": "/bin"}


# --- builtin engine -----------------------------------------------------------------

def test_builtin_command_single_process_exact(tmp_path):
    spec = BuiltinEngine().command(launch(tmp_path, num_cpu_threads_per_process=2))
    job = tmp_path / "job"
    assert spec.argv == [sys.executable, *ACCEL, "--num_processes", "1", "--num_machines", "1",
                         "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "2",
                         "-m", "lib_lora_trainer.engines.builtin.train",
                         "--config_file", str(job / "run.toml"), "--dataset_config", str(job / "dataset.toml")]
    assert spec.cwd == str(job)


def test_builtin_command_two_processes_adds_multi_gpu_and_gpu_ids(tmp_path):
    spec = BuiltinEngine({"trainer_python": "/opt/trainer/bin/python"}).command(
        launch(tmp_path, num_processes=2, mixed_precision="bf16", gpu_ids="0,1", dataset_toml=None))
    assert spec.argv == ["/opt/trainer/bin/python", *ACCEL, "--num_processes", "2", "--num_machines", "1",
                         "--mixed_precision", "bf16", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                         "--multi_gpu", "--gpu_ids", "0,1", "-m", "lib_lora_trainer.engines.builtin.train",
                         "--config_file", str(tmp_path / "job" / "run.toml")]


def test_builtin_env_contents():
    env = BuiltinEngine().env()
    assert env == {"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
                   "TOKENIZERS_PARALLELISM": "false"}
    assert (Path(env["PYTHONPATH"]) / "lib_lora_trainer" / "__init__.py").is_file()


def test_builtin_python_setting_beats_env_var_beats_sys_executable(monkeypatch):
    assert BuiltinEngine().python == sys.executable
    monkeypatch.setenv(base.ENV_TRAINER_PYTHON, "/env/python")
    assert BuiltinEngine().python == "/env/python"
    assert BuiltinEngine({"trainer_python": ""}).python == "/env/python"  # empty setting = unset
    assert BuiltinEngine({"trainer_python": "/set/python"}).python == "/set/python"


def test_builtin_status_available_with_this_interpreter():
    st = BuiltinEngine().status()
    assert st.available, st.reason
    assert st.python == sys.executable and st.path == str(REPO_ROOT) and st.version
    assert {"diffusers", "peft", "accelerate"} <= {k for k, v in st.packages.items() if v}


def test_builtin_status_bogus_interpreter(tmp_path):
    st = BuiltinEngine({"trainer_python": str(tmp_path / "nope" / "python")}).status()
    assert not st.available
    assert "not found" in st.reason and "LORA_TRAINER_PYTHON" in st.reason


def test_builtin_status_interpreter_without_packages(tmp_path):
    # -S: no site-packages, so the trainer's packages cannot be found.
    py = fake_python(tmp_path / "bare" / "python", flags="-S")
    st = BuiltinEngine({"trainer_python": str(py)}).status()
    assert not st.available
    assert "lacks" in st.reason and "diffusers" in st.reason and "peft" in st.reason


def test_status_probe_is_cached_and_never_imports_here(tmp_path):
    py = fake_python(tmp_path / "p" / "python")
    first = probe_python(str(py), ("json", "no_such_module_xyz"))
    assert first.ok and first.modules["json"] is not None and first.missing() == ["no_such_module_xyz"]
    mtime = py.stat().st_mtime_ns
    py.write_text("#!/bin/sh\nexit 3\n")
    os.utime(py, ns=(mtime, mtime))  # same interpreter path and mtime: the cached answer stands
    assert probe_python(str(py), ("json", "no_such_module_xyz")) is first
    broken = probe_python(str(py), ("json",), refresh=True)
    assert not broken.ok and "exit code 3" in broken.error


# --- kohya: discovery ----------------------------------------------------------------

def test_kohya_explicit_setting(tmp_path):
    co = fake_checkout(tmp_path / "mine" / "sd-scripts")
    k = KohyaEngine({"sd_scripts_path": str(co)})
    found = k.locate()
    assert (found.checkout, found.how, found.reason) == (co, "setting", None)
    assert found.python == str(co / "venv" / "bin" / "python")


def test_kohya_env_var(tmp_path, monkeypatch):
    co = fake_checkout(tmp_path / "envco")
    monkeypatch.setenv(ENV_SD_SCRIPTS, str(co))
    found = KohyaEngine().locate()
    assert (found.checkout, found.how) == (co, "env")


def test_kohya_kohya_ss_folder_means_its_submodule(tmp_path):
    co = fake_checkout(tmp_path / "kohya_ss" / "sd-scripts", venv=None)
    fake_python(tmp_path / "kohya_ss" / "venv" / "bin" / "python")
    found = KohyaEngine({"sd_scripts_path": str(tmp_path / "kohya_ss")}).locate()
    assert found.checkout == co
    assert found.python == str(tmp_path / "kohya_ss" / "venv" / "bin" / "python")  # kohya_ss layout


@pytest.mark.parametrize("rel", ["kohya_ss/sd-scripts", "sd-scripts"])
def test_kohya_beside_the_webui(tmp_path, rel):
    webui = tmp_path / "apps" / "stable-diffusion-webui"
    webui.mkdir(parents=True)
    co = fake_checkout(tmp_path / "apps" / rel)
    found = KohyaEngine({"webui_root": str(webui)}).locate()
    assert (found.checkout, found.how) == (co, "beside the web UI")


@pytest.mark.parametrize("rel", ["kohya_ss/sd-scripts", "sd-scripts"])
def test_kohya_in_home(clean_env, rel):
    co = fake_checkout(clean_env / rel)
    found = KohyaEngine().locate()
    assert (found.checkout, found.how) == (co, "home")


def test_kohya_precedence_setting_env_sibling_home(tmp_path, monkeypatch, clean_env):
    webui = tmp_path / "apps" / "webui"
    webui.mkdir(parents=True)
    by_setting = fake_checkout(tmp_path / "a")
    by_env = fake_checkout(tmp_path / "b")
    sibling_kohya = fake_checkout(tmp_path / "apps" / "kohya_ss" / "sd-scripts")
    sibling_plain = fake_checkout(tmp_path / "apps" / "sd-scripts")
    home = fake_checkout(clean_env / "kohya_ss" / "sd-scripts")
    monkeypatch.setenv(ENV_SD_SCRIPTS, str(by_env))
    settings = {"sd_scripts_path": str(by_setting), "webui_root": str(webui)}
    assert KohyaEngine(settings).locate().checkout == by_setting
    settings["sd_scripts_path"] = ""
    assert KohyaEngine(settings).locate().checkout == by_env
    monkeypatch.delenv(ENV_SD_SCRIPTS)
    assert KohyaEngine(settings).locate().checkout == sibling_kohya
    (sibling_kohya / "train_network.py").unlink()
    assert KohyaEngine(settings).locate().checkout == sibling_plain
    del settings["webui_root"]
    assert KohyaEngine(settings).locate().checkout == home


def test_kohya_invalid_explicit_checkout_is_reported_not_replaced(tmp_path, monkeypatch, clean_env):
    fake_checkout(clean_env / "sd-scripts")  # a valid one exists, but the user asked for another
    bad = fake_checkout(tmp_path / "bad", files=("train_network.py",))
    st = KohyaEngine({"sd_scripts_path": str(bad)}).status()
    assert not st.available
    assert "not an sd-scripts checkout" in st.reason
    assert "sdxl_train_network.py" in st.reason and "library/train_util.py" in st.reason
    monkeypatch.setenv(ENV_SD_SCRIPTS, str(tmp_path / "missing"))
    st = KohyaEngine().status()
    assert not st.available and "is not a folder" in st.reason and ENV_SD_SCRIPTS in st.reason
    with pytest.raises(EngineUnavailable, match="is not a folder"):
        KohyaEngine().command(launch(tmp_path))


def test_kohya_nothing_found_says_what_to_set(clean_env):
    st = KohyaEngine().status()
    assert not st.available
    assert st.reason.startswith("no sd-scripts checkout found") and ENV_SD_SCRIPTS in st.reason
    assert str(clean_env / "kohya_ss" / "sd-scripts") in st.reason


# --- kohya: its Python --------------------------------------------------------------

@pytest.mark.parametrize("venv", ["venv", ".venv"])
def test_kohya_python_from_checkout_venv(tmp_path, venv):
    co = fake_checkout(tmp_path / "co", venv=venv)
    assert KohyaEngine({"sd_scripts_path": str(co)}).locate().python == str(co / venv / "bin" / "python")


def test_kohya_python_falls_back_to_trainer_python(tmp_path):
    co = fake_checkout(tmp_path / "co", venv=None)
    trainer = fake_python(tmp_path / "trainer" / "python")
    found = KohyaEngine({"sd_scripts_path": str(co), "trainer_python": str(trainer)}).locate()
    assert found.python == str(trainer)


def test_kohya_python_explicit_and_broken(tmp_path, monkeypatch):
    co = fake_checkout(tmp_path / "co")
    other = fake_python(tmp_path / "other" / "python")
    assert KohyaEngine({"sd_scripts_path": str(co), "sd_scripts_python": str(other)}).locate().python == str(other)
    monkeypatch.setenv(ENV_SD_SCRIPTS_PYTHON, str(tmp_path / "gone" / "python"))
    found = KohyaEngine({"sd_scripts_path": str(co)}).locate()
    assert found.python is None and "not found" in found.reason and ENV_SD_SCRIPTS_PYTHON in found.reason
    monkeypatch.delenv(ENV_SD_SCRIPTS_PYTHON)
    (co / "venv" / "bin" / "python").unlink()  # a venv folder without its interpreter
    st = KohyaEngine({"sd_scripts_path": str(co)}).status()
    assert not st.available and st.reason.startswith(f"{co / 'venv' / 'bin' / 'python'} not found")


def test_venv_python_windows_layout(tmp_path):
    assert venv_python(tmp_path / "venv", windows=True) == [tmp_path / "venv" / "Scripts" / "python.exe"]
    assert venv_python(tmp_path / "venv", windows=False)[0] == tmp_path / "venv" / "bin" / "python"


def test_kohya_status_available_and_missing_packages(tmp_path):
    co = fake_checkout(tmp_path / "co")
    st = KohyaEngine({"sd_scripts_path": str(co)}).status()
    if st.available:  # this environment happens to have toml and voluptuous
        pytest.skip("toml and voluptuous are installed here")
    assert "lacks" in st.reason and "voluptuous" in st.reason and "requirements.txt" in st.reason
    stubs = stub_packages(tmp_path / "stubs")
    st = KohyaEngine({"sd_scripts_path": str(co), "sd_scripts_pythonpath": [str(stubs)]}).status(refresh=True)
    assert st.available, st.reason
    assert st.path == str(co) and st.python == str(co / "venv" / "bin" / "python") and st.version == "unknown"


# --- kohya: command --------------------------------------------------------------------

@pytest.mark.parametrize("model_type, v, script, flags", [
    ("sd1", False, "train_network.py", []),
    ("sd2", False, "train_network.py", ["--v2"]),
    ("sd2", True, "train_network.py", ["--v2", "--v_parameterization"]),
    ("sdxl", False, "sdxl_train_network.py", []),
    ("sdxl", True, "sdxl_train_network.py", ["--v_parameterization"]),
])
def test_kohya_script_choice(tmp_path, model_type, v, script, flags):
    assert script_for(model_type, v) == (script, flags)
    co = fake_checkout(tmp_path / "co")
    spec = KohyaEngine({"sd_scripts_path": str(co)}).command(launch(tmp_path, model_type=model_type, v_prediction=v))
    job = tmp_path / "job"
    assert spec.argv == [str(co / "venv" / "bin" / "python"), *ACCEL, "--num_processes", "1", "--num_machines", "1",
                         "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
                         str(co / script), "--config_file", str(job / "run.toml"),
                         "--dataset_config", str(job / "dataset.toml"), *flags]
    assert spec.cwd == str(co)


def test_kohya_command_multi_gpu_and_env(tmp_path):
    co = fake_checkout(tmp_path / "co")
    extra = [str(tmp_path / "site1"), str(tmp_path / "site2")]
    spec = KohyaEngine({"sd_scripts_path": str(co), "sd_scripts_pythonpath": os.pathsep.join(extra)}).command(
        launch(tmp_path, num_processes=2, gpu_ids="0,1", mixed_precision="fp16"))
    assert spec.argv[3:17] == ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "fp16",
                               "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1", "--multi_gpu",
                               "--gpu_ids", "0,1", str(co / "train_network.py")]
    assert spec.env == {"PYTHONPATH": os.pathsep.join([str(co), *extra]), "PYTHONUNBUFFERED": "1",
                        "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "COLUMNS": "200"}


def test_kohya_unknown_model_type():
    with pytest.raises(ValueError, match="sd1, sd2 or sdxl"):
        script_for("flux")


# --- kohya: version ----------------------------------------------------------------------

def _git(cwd: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_NOSYSTEM="1")
    subprocess.run(["git", *args], cwd=str(cwd), env=env, check=True, capture_output=True, timeout=30)


def test_kohya_version_from_git_tag(tmp_path):
    co = fake_checkout(tmp_path / "co", venv=None)
    (co / "setup.py").write_text('setup(name="library", version="0.0.9")\n')
    _git(co, "init", "-q")
    _git(co, "add", "-A")
    _git(co, "commit", "-q", "-m", "first")
    _git(co, "tag", "v0.10.1")
    assert checkout_version(co) == "v0.10.1"
    (co / "train_network.py").write_text("# changed\n")
    _git(co, "commit", "-q", "-am", "second")
    assert checkout_version(co).startswith("v0.10.1-1-g")


def test_kohya_version_without_git(tmp_path):
    co = fake_checkout(tmp_path / "co", venv=None)
    assert checkout_version(co) == "unknown"
    (co / "setup.py").write_text('from setuptools import setup\nsetup(\n    name="library",\n    version="0.8.7",\n)\n')
    assert checkout_version(co) == "0.8.7"
    (co / "pyproject.toml").write_text('[project]\nname = "sd-scripts"\nversion = "0.11.1"\n')
    assert checkout_version(co) == "0.11.1"


# --- kohya: extra run.toml keys ----------------------------------------------------------------

@pytest.mark.parametrize("model_type, folders", [
    ("sd1", ["openai_clip-vit-large-patch14"]),
    ("sdxl", ["laion_CLIP-ViT-bigG-14-laion2B-39B-b160k", "openai_clip-vit-large-patch14"]),
])
def test_kohya_extra_run_keys_write_tokenizer_cache(tmp_path, model_type, folders):
    keys = KohyaEngine().extra_run_keys(launch(tmp_path, model_type=model_type))
    cache = tmp_path / "job" / "tokenizer_cache"
    assert keys == {"console_log_simple": True, "tokenizer_cache_dir": str(cache)}
    assert sorted(p.name for p in cache.iterdir()) == folders
    for name in folders:
        assert {"vocab.json", "merges.txt", "tokenizer_config.json"} <= {p.name for p in (cache / name).iterdir()}
    stamp = (cache / folders[0] / "vocab.json").stat().st_mtime_ns
    KohyaEngine().extra_run_keys(launch(tmp_path, model_type=model_type))  # complete cache: not rewritten
    assert (cache / folders[0] / "vocab.json").stat().st_mtime_ns == stamp


def test_kohya_tokenizer_cache_setting(tmp_path):
    keys = KohyaEngine({"tokenizer_cache_dir": str(tmp_path / "shared_tok")}).extra_run_keys(launch(tmp_path))
    assert keys["tokenizer_cache_dir"] == str(tmp_path / "shared_tok")
    assert (tmp_path / "shared_tok" / "openai_clip-vit-large-patch14" / "merges.txt").is_file()


def test_kohya_tokenizer_cache_named_in_run_toml_is_used(tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "run.toml").write_text(f'tokenizer_cache_dir = "{tmp_path / "tok"}"\n', encoding="utf-8")
    keys = KohyaEngine().extra_run_keys(launch(tmp_path))
    assert keys["tokenizer_cache_dir"] == str(tmp_path / "tok")
    assert (tmp_path / "tok" / "openai_clip-vit-large-patch14" / "vocab.json").is_file()


def test_builtin_extra_run_keys_empty_and_capabilities(tmp_path):
    assert BuiltinEngine().extra_run_keys(launch(tmp_path)) == {}
    assert "tiny_models" in BuiltinEngine().capabilities()
    assert "tiny_models" not in KohyaEngine().capabilities()
    assert {"sd1", "sd2", "sdxl"} <= KohyaEngine().capabilities()


# --- registry ------------------------------------------------------------------------------

def test_registry():
    assert list_engines() == ["builtin", "kohya"]
    assert isinstance(get_engine("builtin"), BuiltinEngine)
    k = get_engine("sd-scripts", {"sd_scripts_path": "/x"})
    assert isinstance(k, KohyaEngine) and k.settings == {"sd_scripts_path": "/x"}
    for name in list_engines():
        assert isinstance(get_engine(name), Engine) and get_engine(name).name == name
    with pytest.raises(ValueError, match="unknown engine 'onetrainer'.*builtin, kohya"):
        get_engine("onetrainer")


# --- house rules ---------------------------------------------------------------------------------

def test_no_shell_strings_in_engine_code():
    assert ENGINE_SOURCES
    for path in ENGINE_SOURCES:
        text = path.read_text(encoding="utf-8")
        assert "shell=True" not in text and "os.system" not in text and "os.popen" not in text, path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("run", "Popen", "check_output"):
                assert node.args and isinstance(node.args[0], ast.List), f"{path}:{node.lineno}: argv must be a list"


def test_importing_engines_stays_light(tmp_path):
    code = ("import sys\n"
            "from pathlib import Path\n"
            "from lib_lora_trainer.engines import get_engine, JobLaunch\n"
            "j = JobLaunch(run_toml=Path('r.toml'), model_type='sdxl', job_dir=Path('.'))\n"
            "get_engine('builtin').command(j)\n"
            "get_engine('kohya').status()\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'safetensors', 'numpy', 'regex',"
            " 'peft', 'accelerate', 'lib_lora_trainer.tokenizer') if m in sys.modules))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(ROOT), HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
