"""The dataset section's handler and the A1111 registration (A1111's `modules` faked, as allowed
for unit tests; the real check is inside A1111)."""

import runpy
import sys
import types
from pathlib import Path

from imagegen import write_dataset
from lib_lora_trainer.ui.dataset_panel import run_check

ROOT = Path(__file__).resolve().parent.parent


def test_run_check_renders_problems_escaped(tmp_path):
    ds = write_dataset(tmp_path / "ds", n=3)
    (ds / "<script>evil.txt").write_text("orphan")
    html = run_check(str(ds), "zkperson", 512)
    assert "too_few_images" in html and "caption_orphan" in html
    assert "&lt;script&gt;evil.txt" in html and "<script>" not in html


def test_run_check_bad_input_is_a_message_not_an_exception(tmp_path):
    assert "Enter the path" in run_check("", "", 512)
    assert "no such file" in run_check(str(tmp_path / "missing"), "", 512)


def _fake_a1111(monkeypatch, tmp_path, api_auth=None):
    """A1111's `modules`, faked (allowed for unit tests of scripts/; the real check is inside A1111)."""
    registered = {"tabs": [], "app_started": []}
    fake_modules = types.ModuleType("modules")
    callbacks = types.ModuleType("modules.script_callbacks")
    callbacks.on_ui_tabs = registered["tabs"].append
    callbacks.on_app_started = registered["app_started"].append
    shared = types.ModuleType("modules.shared")
    shared.cmd_opts = types.SimpleNamespace(lora_dir=str(tmp_path / "models" / "Lora"), api_auth=api_auth)
    fake_modules.script_callbacks, fake_modules.shared = callbacks, shared
    for name, mod in (("modules", fake_modules), ("modules.script_callbacks", callbacks), ("modules.shared", shared)):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setenv("LORA_TRAINER_DATA_DIR", str(tmp_path / "data"))
    from lib_lora_trainer.hosts import a1111
    monkeypatch.setattr(a1111, "_service", None)
    runpy.run_path(str(ROOT / "scripts" / "lora_trainer.py"))
    return registered


def test_script_mounts_the_api_with_a1111s_api_auth(monkeypatch, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_lora_trainer.hosts import a1111

    registered = _fake_a1111(monkeypatch, tmp_path, api_auth="alice:s3cret")
    app = FastAPI()
    [started] = registered["app_started"]
    started(None, app)
    try:
        client = TestClient(app)
        assert client.get("/lora-trainer/v1/presets").status_code == 401
        ok = client.get("/lora-trainer/v1/presets", auth=("alice", "s3cret"))
        assert ok.status_code == 200 and any(p["id"] == "sd15-portrait" for p in ok.json()["presets"])
        assert a1111.job_service().lora_dir == tmp_path / "models" / "Lora"
    finally:
        a1111.job_service().stop_background()


def test_script_registers_the_tab(monkeypatch, tmp_path):
    registered = _fake_a1111(monkeypatch, tmp_path)["tabs"]
    assert len(registered) == 1
    [(blocks, title, elem_id)] = registered[0]()
    import gradio as gr
    assert isinstance(blocks, gr.Blocks) and title == "Train LoRA" and elem_id == "lora_trainer"
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"lora_trainer_dataset_src", "lora_trainer_check", "lora_trainer_dataset_report"} <= ids
