"""sd-scripts installed by the extension: a real `git clone --branch` of a local repository made
here, a real venv and pip, the state a UI shows, the managed checkout found by the kohya engine,
and a user's own checkout winning over it untouched. The stand-in's requirements are empty and
its venv reuses this interpreter's torch (the no-download path A1111 users get)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib_lora_trainer.engines.kohya import KohyaEngine
from lib_lora_trainer.engines.sd_scripts_install import (DEFAULT_VERSION, RELEASES, InstallError, SdScriptsInstaller,
                                                         check_ref, check_url, start_install)
from sd_scripts_standin import git, make_checkout, make_origin, written_keys

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    keys = written_keys()
    return make_origin(tmp_path_factory.mktemp("origin") / "sd-scripts",
                       {"v0.9.9": [k for k in keys if k != "noise_offset"], "v0.10.1": None})


@pytest.fixture(scope="module")
def installed(tmp_path_factory, origin):
    """One real install of v0.10.1, shared by the tests that only read it."""
    engines = tmp_path_factory.mktemp("data") / "engines"
    installer = SdScriptsInstaller(engines, {"sd_scripts_url": str(origin)})
    lines: list[str] = []
    state = installer.install("v0.10.1", progress=lines.append)
    return installer, state, lines


def test_the_default_release_is_the_newest_verified_one():
    assert DEFAULT_VERSION == "v0.10.1"
    verified = [r.tag for r in RELEASES if r.verified]
    assert DEFAULT_VERSION == verified[-1] and "v0.11.1" in [r.tag for r in RELEASES]


def test_install_clones_the_tag_makes_its_venv_and_is_ready(installed, origin):
    installer, state, lines = installed
    assert state.state == "ready", state.reason
    assert state.commit == git(origin, "rev-parse", "--short=7", "v0.10.1")
    steps = [line for line in lines if "step " in line]
    assert [s.split("step ")[1][:3] for s in steps] == ["1/5", "2/5", "3/5", "4/5", "5/5"]
    assert "reusing torch==" in " ".join(lines)  # this interpreter's torch: nothing downloaded
    checkout = installer.checkout("v0.10.1")
    assert git(checkout, "describe", "--tags") == "v0.10.1"
    # the venv runs the checkout's code with torch visible
    done = subprocess.run([str(installer.python("v0.10.1")), "-c", "import torch, train_network; print('ok')"],
                          cwd=checkout, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
    saved = json.loads((installer.folder("v0.10.1") / "state.json").read_text())
    assert saved["state"] == "ready" and saved["pid"] is None and saved["finished_at"] >= saved["started_at"]
    assert installer.install("v0.10.1").started_at == state.started_at  # ready: nothing done again


def test_the_kohya_engine_uses_the_managed_install(installed):
    installer, _, _ = installed
    engine = KohyaEngine({"engines_dir": str(installer.root.parent)})
    found = engine.locate()
    assert found.checkout == installer.checkout("v0.10.1") and found.how == "installed by the extension"
    assert Path(found.python) == installer.python("v0.10.1")
    status = engine.status(refresh=True)
    assert status.available, status.reason
    assert status.version == "v0.10.1"


def test_a_version_not_installed_is_not_used(installed):
    installer, _, _ = installed
    engine = KohyaEngine({"engines_dir": str(installer.root.parent), "sd_scripts_version": "v0.11.1"})
    found = engine.locate()
    assert found.checkout is None and "engines install" in found.reason


def test_a_users_own_checkout_wins_and_is_never_modified(installed, tmp_path):
    installer, _, _ = installed
    own = make_checkout(tmp_path / "my-sd-scripts")
    before = {p: p.stat().st_mtime_ns for p in own.rglob("*")}
    engine = KohyaEngine({"engines_dir": str(installer.root.parent), "sd_scripts_path": str(own),
                          "sd_scripts_python": sys.executable})
    assert engine.locate().checkout == own
    installer.install("v0.10.1")  # ready already; and never looks at the user's folder
    assert {p: p.stat().st_mtime_ns for p in own.rglob("*")} == before


def test_a_missing_tag_leaves_the_install_broken_with_the_reason(tmp_path, origin):
    installer = SdScriptsInstaller(tmp_path / "engines", {"sd_scripts_url": str(origin)})
    state = installer.install("v9.9.9")
    assert state.state == "broken"
    assert "git clone" in state.reason and "v9.9.9" in state.reason
    assert installer.state("v9.9.9").state == "broken"
    assert "v9.9.9" in [s.version for s in installer.states()]


def test_a_repository_that_is_not_sd_scripts_is_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("not sd-scripts\n")
    git(other, "init", "-q")
    git(other, "add", "-A")
    git(other, "commit", "-q", "-m", "x")
    git(other, "tag", "v1.0.0")
    state = SdScriptsInstaller(tmp_path / "engines", {"sd_scripts_url": str(other)}).install("v1.0.0")
    assert state.state == "broken" and "is not sd-scripts" in state.reason and "train_network.py" in state.reason


def test_an_install_whose_process_died_reads_as_broken(tmp_path):
    installer = SdScriptsInstaller(tmp_path / "engines")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = installer.folder("v0.10.1")
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"version": "v0.10.1", "state": "installing", "pid": dead.pid,
                                                   "step": "step 4/5: pip install"}))
    state = installer.state("v0.10.1")
    assert state.state == "broken" and "step 4/5" in state.reason and "install again" in state.reason


@pytest.mark.parametrize("bad", ["--upload-pack=touch /tmp/x", "../../etc", "v1 v2", "", "-v"])
def test_version_names_that_could_be_options_or_paths_are_refused(bad):
    with pytest.raises(InstallError, match="not a tag name"):
        check_ref(bad)


def test_a_url_that_could_be_an_option_is_refused():
    with pytest.raises(InstallError, match="give a git URL"):
        check_url("--upload-pack=evil")


def test_two_installs_at_once_share_one_and_both_end_ready(tmp_path, origin):
    """Two processes (a double click, the API and the tab) ask for the same release at once."""
    engines = tmp_path / "engines"
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]);"
            "from lib_lora_trainer.engines.sd_scripts_install import SdScriptsInstaller as I;"
            "s = I(sys.argv[2], {'sd_scripts_url': sys.argv[3]}).install('v0.10.1');"
            "print(json.dumps([s.state, s.started_at]))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(engines), str(origin)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    results = [json.loads(p.communicate(timeout=600)[0]) for p in procs]
    assert [r[0] for r in results] == ["ready", "ready"]
    assert results[0][1] == results[1][1]  # the second waited for the first and did not clone again
    assert (engines / "sd-scripts" / "v0.10.1" / "install.log").read_text().count("step 1/5") == 1


def test_start_install_runs_in_the_background_and_the_cli_reports_it(tmp_path, origin):
    engines = tmp_path / "data" / "engines"
    state = start_install(engines, "v0.10.1", {"sd_scripts_url": str(origin)})
    assert state.state == "installing" and state.pid
    installer = SdScriptsInstaller(engines)
    deadline = time.time() + 600
    while installer.state("v0.10.1").state == "installing" or not (installer.folder("v0.10.1") /
                                                                   "state.json").exists():
        assert time.time() < deadline
        time.sleep(0.5)
    assert installer.state("v0.10.1").state == "ready", installer.state("v0.10.1").reason
    done = subprocess.run([sys.executable, "-m", "lib_lora_trainer", "engines", "status", "--json", "--data-dir",
                           str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    data = json.loads(done.stdout)
    states = {s["version"]: s["state"] for s in data["sd_scripts_installs"]}
    assert states["v0.10.1"] == "ready" and states["v0.11.1"] == "not installed"
    assert data["engines"]["kohya"]["available"], data["engines"]["kohya"]["reason"]
