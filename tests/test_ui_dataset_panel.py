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


def test_script_registers_the_tab(monkeypatch):
    registered = []
    fake_modules = types.ModuleType("modules")
    callbacks = types.ModuleType("modules.script_callbacks")
    callbacks.on_ui_tabs = registered.append
    fake_modules.script_callbacks = callbacks
    monkeypatch.setitem(sys.modules, "modules", fake_modules)
    monkeypatch.setitem(sys.modules, "modules.script_callbacks", callbacks)
    runpy.run_path(str(ROOT / "scripts" / "lora_trainer.py"))
    assert len(registered) == 1
    [(blocks, title, elem_id)] = registered[0]()
    import gradio as gr
    assert isinstance(blocks, gr.Blocks) and title == "Train LoRA" and elem_id == "lora_trainer"
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"lora_trainer_dataset_src", "lora_trainer_check", "lora_trainer_dataset_report"} <= ids
