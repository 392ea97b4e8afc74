"""Build the Train LoRA tab and the standalone app with whatever gradio this Python has, and print a
JSON summary of what a browser gets: the gradio version, every `lora_trainer_*` element with its
component type, every event (trigger element, event name, inputs, outputs, browser function, Python
function or not, progress display), what the app's page and /config answer, and which trainer
libraries got imported on the way (none should).

tests/test_ui_gradio_compat.py runs it in this environment (gradio 3.41) and in .venv-ui4 (gradio
4.40) and compares the two: one code base, the same tab. Usage: python tests/gradio_tab_summary.py"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _target(t):
    """(block id, event name) from a dependency target: gradio 4 [id, "click"], gradio 3 an id."""
    return (t[0], t[1]) if isinstance(t, (list, tuple)) else (t, None)


def summary(blocks) -> dict:
    import gradio

    cfg = blocks.get_config_file()
    names = {c["id"]: c["props"].get("elem_id") for c in cfg["components"]}
    types = {c["props"].get("elem_id"): c["type"] for c in cfg["components"] if c["props"].get("elem_id")}
    deps = cfg["dependencies"]
    by_id = {dep.get("id", i): dep for i, dep in enumerate(deps)}
    events = []
    for dep in deps:
        for t in dep["targets"]:
            block, trigger = _target(t)
            trigger = trigger or dep.get("trigger")
            if trigger == "then":   # gradio 4 names no block for .then(): the event it follows has it
                block = _target(by_id[dep["trigger_after"]]["targets"][0])[0]
            events.append({
                "target": names.get(block) or f"#{block}", "trigger": trigger,
                "inputs": [names.get(i) or "?" for i in dep["inputs"]],
                "outputs": [names.get(i) or "?" for i in dep["outputs"]],
                "js": dep.get("js"), "backend_fn": bool(dep.get("backend_fn")),
                "show_progress": dep.get("show_progress")})
    return {"gradio": gradio.__version__, "elements": types, "events": events}


def main() -> int:
    from fastapi.testclient import TestClient

    from lib_lora_trainer.hosts.standalone import StandaloneHost
    from lib_lora_trainer.ui import gradio_compat as compat
    from lib_lora_trainer.ui.standalone_app import create_app
    from lib_lora_trainer.ui.tab import build_tab

    base = Path(tempfile.mkdtemp(prefix="tab-summary-"))
    host = StandaloneHost(lora_dir=base / "Lora", data_dir=base / "data")
    try:
        out = summary(build_tab(host))
        out["compat"] = {"major": compat.major(), "js": compat.js("f")}
        with TestClient(create_app(host)) as client:
            page = client.get("/")
            config = client.get("/config")
            out["app"] = {"page": page.status_code, "title": "Train LoRA" in page.text,
                          "config": config.status_code, "init_script": "loraTrainerInit" in config.text}
    finally:
        host.job_service().stop_background()
    # The UI process imports none of the trainer's libraries (Forge Neo's and .venv-ui4 have none of ours).
    out["heavy_modules"] = sorted(m for m in ("torch", "diffusers", "transformers", "peft", "accelerate")
                                  if m in sys.modules)
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
