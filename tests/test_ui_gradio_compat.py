"""One tab code base on two gradio majors: gradio 3.41 (A1111 1.10, this environment) and gradio
4.40 (Forge Neo; .venv-ui4 from requirements/ui-gradio4.txt, built by `make ui4-env`). The few API
differences live in lib_lora_trainer/ui/gradio_compat.py; the browser walks both in tests/ui."""

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from lib_lora_trainer.ui import gradio_compat as compat

ROOT = Path(__file__).resolve().parents[1]
UI4_PYTHON = Path(os.environ.get("LORA_TRAINER_UI4_PYTHON") or ROOT / ".venv-ui4" / "bin" / "python")
SUMMARY = ROOT / "tests" / "gradio_tab_summary.py"


def test_event_and_queue_keywords_follow_the_installed_gradio():
    import gradio

    major = int(gradio.__version__.split(".")[0])
    assert compat.major() == major
    assert compat.js("loraTrainerSendToTxt2img") == ({"js": "loraTrainerSendToTxt2img"} if major >= 4
                                                     else {"_js": "loraTrainerSendToTxt2img"})

    class Blocks:
        def queue(self, **kwargs):
            self.kwargs = kwargs
    blocks = compat.queue(Blocks(), 8)
    assert blocks.kwargs == ({"default_concurrency_limit": 8} if major >= 4 else {"concurrency_count": 8})


def test_a_refreshed_dropdown_keeps_its_value_only_while_it_is_listed():
    assert compat.choice("b", ["a", "b"]) == "b"
    assert compat.choice("gone", ["a", "b"]) == "a"
    assert compat.choice("gone", ["a", "b"], fallback_first=False) is None
    assert compat.choice("gone", []) is None and compat.choice(None, ["a"], fallback_first=False) is None
    update = compat.dropdown_update(("x.safetensors", "y.safetensors"), "deleted.safetensors")
    assert update["choices"] == ["x.safetensors", "y.safetensors"] and update["value"] == "x.safetensors"
    assert compat.dropdown_update([], "z")["value"] is None


def test_uploaded_files_become_paths_whatever_gradio_passes(tmp_path):
    class TempfileWrapper:   # gradio 3 File: a NamedTemporaryFile-like object with .name
        def __init__(self, name):
            self.name = name
    a, b = tmp_path / "a.png", tmp_path / "b.txt"
    with tempfile.NamedTemporaryFile(dir=tmp_path, suffix=".zip") as real:
        assert compat.file_paths([TempfileWrapper(str(a)), str(b), b, {"path": str(a), "url": "/file=x"},
                                  {"name": str(b), "data": None, "is_file": True}, None, "", real]) == \
            [str(a), str(b), str(b), str(a), str(b), real.name]
    assert compat.file_paths(None) == [] and compat.file_paths(str(a)) == [str(a)]
    assert compat.file_path({"url": "https://x"}) is None


def test_ui_modules_use_no_gradio_call_that_only_one_major_accepts():
    """Everything that differs goes through gradio_compat; calls removed in gradio 4 stay out."""
    banned = {
        r"\b_js\s*=": "_js= (gradio 3 only): **compat.js(...)",
        r"\bjs\s*=": "js= (gradio 4 only): **compat.js(...)",
        r"concurrency_count|default_concurrency_limit": "compat.queue(blocks, n)",
        r"\.style\(": ".style() (removed in gradio 4): constructor arguments",
        r"\bgr\.Box\b": "gr.Box (removed in gradio 4): gr.Group",
        r"\bgr\.[A-Z]\w*\.update\(": "Component.update (removed in gradio 4): gr.update",
        r"show_progress\s*=\s*(True|False)": "show_progress: the string both take (compat.HIDDEN)",
        r"\bevery\s*=": "every= (polling differs): the browser script clicks the refresh button",
    }
    found = []
    for path in sorted((ROOT / "lib_lora_trainer" / "ui").glob("*.py")):
        if path.name == "gradio_compat.py":
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            found += [f"{path.name}:{n}: {why}" for pattern, why in banned.items() if re.search(pattern, code)]
    assert not found, "\n".join(found)


def _summary(python: Path) -> dict:
    r = subprocess.run([str(python), str(SUMMARY)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_tab_is_the_same_on_gradio_3_and_4():
    """The same elements, the same events with the same inputs and outputs, the browser function
    with a Python function after it (its values feed send_message), on both majors; the standalone
    app serves the page and its script on both."""
    if not UI4_PYTHON.is_file():
        pytest.skip(f"{UI4_PYTHON} is missing: `make ui4-env` builds the gradio-4 UI environment")
    g3, g4 = _summary(Path(sys.executable)), _summary(UI4_PYTHON)
    assert g3["gradio"].startswith("3.41.") and g4["gradio"] == "4.40.0"
    assert g3["compat"] == {"major": 3, "js": {"_js": "f"}} and g4["compat"] == {"major": 4, "js": {"js": "f"}}
    assert g3["elements"] == g4["elements"] and len(g3["elements"]) > 60
    key = lambda e: json.dumps(e, sort_keys=True)  # noqa: E731
    assert sorted(map(key, g3["events"])) == sorted(map(key, g4["events"]))
    [send] = [e for e in g4["events"] if e["target"] == "lora_trainer_send_txt2img"]
    assert send["js"] == "loraTrainerSendToTxt2img" and send["backend_fn"] and len(send["inputs"]) == 2
    for s in (g3, g4):
        assert s["app"] == {"page": 200, "title": True, "config": 200, "init_script": True}, s["gradio"]
        assert s["heavy_modules"] == [], s["gradio"]   # the tab and the app import no trainer library


def test_the_gradio4_ui_environment_has_every_command_and_says_where_trainer_ones_run():
    """.venv-ui4 has no torch: `ui`, `dataset`, `jobs` work there; `demo` names the trainer's Python."""
    if not UI4_PYTHON.is_file():
        pytest.skip(f"{UI4_PYTHON} is missing: `make ui4-env` builds the gradio-4 UI environment")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = lambda *args: subprocess.run([str(UI4_PYTHON), "-m", "lib_lora_trainer", *args], cwd=ROOT, env=env,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    r = run("--help")
    assert r.returncode == 0 and "demo-model" in r.stdout and " ui " in r.stdout
    r = run("demo", "--out", "nowhere")
    assert r.returncode == 2 and "`demo` needs torch" in r.stderr and "trainer environment" in r.stderr
    assert not (ROOT / "nowhere").exists()
    r = run("ui", "--help")
    assert r.returncode == 0 and "--ckpt-dir" in r.stdout
