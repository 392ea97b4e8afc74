"""The sd-scripts install and engine state where users see them: the HTTP API (GET /engines,
POST /engines/kohya/install, a real background process) and the tab's status block."""

from __future__ import annotations

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient

from lib_lora_trainer.api import create_app
from lib_lora_trainer.engines.sd_scripts_install import SdScriptsInstaller
from lib_lora_trainer.jobs.service import JobService
from lib_lora_trainer.ui.engine_section import status_html

PREFIX = "/lora-trainer/v1"


def _client(tmp_path: Path, **settings) -> tuple[TestClient, JobService]:
    service = JobService(tmp_path / "data", tmp_path / "Lora", settings)
    app = create_app(service, dataset_roots=[tmp_path], upload_dir=tmp_path / "uploads", auth=None)
    return TestClient(app), service


def test_get_engines_lists_both_engines_and_the_releases(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no real ~/sd-scripts
    client, _ = _client(tmp_path)
    data = client.get(PREFIX + "/engines").json()
    assert set(data["engines"]) == {"builtin", "kohya"}
    assert not data["engines"]["kohya"]["available"] and "engines install" in data["engines"]["kohya"]["reason"]
    states = {s["version"]: s["state"] for s in data["sd_scripts_installs"]}
    assert states == {"v0.10.1": "not installed", "v0.11.1": "not installed"}


def test_install_refuses_a_release_the_extension_does_not_know(tmp_path):
    client, _ = _client(tmp_path)
    answer = client.post(PREFIX + "/engines/kohya/install", json={"version": "--upload-pack=x"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "version" and "v0.10.1" in answer.json()["fix"]


def test_install_runs_in_the_background_and_ends_broken_with_the_reason(tmp_path):
    """The URL comes from the server's settings (here a folder that is no git repository)."""
    client, service = _client(tmp_path, sd_scripts_url=str(tmp_path / "no-such-repo"))
    answer = client.post(PREFIX + "/engines/kohya/install", json={"version": "v0.10.1"})
    assert answer.status_code == 202 and answer.json()["state"] == "installing"
    installer = SdScriptsInstaller(service.settings["engines_dir"])
    deadline = time.time() + 120
    while installer.state("v0.10.1").state in ("installing", "not installed"):
        assert time.time() < deadline, installer.state("v0.10.1")
        time.sleep(0.3)
    state = client.get(PREFIX + "/engines").json()["sd_scripts_installs"][0]
    assert state["state"] == "broken" and "git clone" in state["reason"] and "no-such-repo" in state["reason"]
    assert "step 1/5" in Path(state["log"]).read_text()


def test_the_tab_shows_the_state_of_each_release(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    engines = tmp_path / "engines"
    folder = SdScriptsInstaller(engines).folder("v0.11.1")
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"version": "v0.11.1", "state": "broken",
                                                   "reason": "git clone failed: <no network>"}))
    html = status_html({"engines_dir": str(engines)})
    assert "not usable" in html and "engines install" in html
    assert "v0.10.1</td><td class='lt-install-not-installed'>not installed" in html
    assert "broken" in html and "git clone failed: &lt;no network&gt;" in html  # escaped


def test_the_install_button_answers_with_the_started_install(tmp_path, monkeypatch):
    """The answer to the click shows 'installing' at once, before the install's own process wrote
    its first state (found missing in a real A1111: the table still said 'not installed')."""
    from lib_lora_trainer.ui import engine_section

    monkeypatch.setenv("HOME", str(tmp_path))
    settings = {"engines_dir": str(tmp_path / "engines"), "sd_scripts_url": str(tmp_path / "no-such-repo")}
    html = engine_section.install(settings, "v0.10.1")
    assert "v0.10.1</td><td class='lt-install-installing'>installing" in html, html
    installer = SdScriptsInstaller(settings["engines_dir"])
    deadline = time.time() + 120
    while installer.state("v0.10.1").state in ("installing", "not installed"):
        assert time.time() < deadline, installer.state("v0.10.1")
        time.sleep(0.3)
    assert "lt-install-broken" in engine_section.status_html(settings)
