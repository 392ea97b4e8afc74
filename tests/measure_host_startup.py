"""Measure what the extension adds to a web UI's startup, outside a running server (issue 15 item 4).

Run in the host's own Python with cwd = its checkout (not a test module: no test_ prefix):

    cd /work/hosts/a1111 && venv/bin/python <repo>/tests/measure_host_startup.py a1111 [<extension dir>]
    cd /work/hosts/forge-neo && venv/bin/python <repo>/tests/measure_host_startup.py neo [<extension dir>]

It imports the host the way its webui.py does, registers a dummy callback first (the builtin
extensions' scripts pay script_callbacks' first-call cost before ours in a real start), then loads
our scripts/lora_trainer.py the way load_scripts() does and calls our on_ui_tabs and on_app_started
callbacks; it prints wall and CPU milliseconds of each (CPU time is the stable one on a shared
machine). Point <extension dir> at a copy holding an older scripts/ to compare. Set
PYTHONPYCACHEPREFIX to a writable folder when PYTHONDONTWRITEBYTECODE is set, or every run
compiles our sources again, which a real install does not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def timed(fn, *args):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return result, (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def main(kind: str, ext: str) -> None:
    os.environ.setdefault("IGNORE_CMD_ARGS_ERRORS", "1")
    os.environ.setdefault("LORA_TRAINER_DATA_DIR", tempfile.mkdtemp(prefix="lt-startup-"))
    sys.argv = [sys.argv[0], "--cpu", "--skip-python-version-check"] if kind == "neo" else \
        [sys.argv[0], "--skip-torch-cuda-test", "--use-cpu", "all", "--no-half", "--skip-load-model-at-start"]
    sys.path.insert(0, os.getcwd())
    if kind == "neo":
        from modules_forge.initialization import initialize_forge
        initialize_forge()
    from modules import initialize
    _, host_ms, _ = timed(initialize.imports)
    from modules import extensions, script_callbacks, script_loading
    extensions.list_extensions()
    script_callbacks.on_script_unloaded(lambda: None)
    script_callbacks.clear_callbacks()

    before = set(sys.modules)
    sys.path.insert(0, ext)
    _, load_wall, load_cpu = timed(script_loading.load_module, os.path.join(ext, "scripts", "lora_trainer.py"))
    sys.path.remove(ext)   # as load_scripts() does after each script file
    ours = sorted(m for m in set(sys.modules) - before if m.startswith("lib_lora_trainer"))
    print(f"host imports {host_ms / 1000:.1f} s; load scripts/lora_trainer.py: {load_wall:.0f} ms wall, "
          f"{load_cpu:.0f} ms cpu; modules: {ours}", flush=True)

    def ours_only(category):
        return [c for c in script_callbacks.callback_map[f"callbacks_{category}"] if "lora_trainer" in c.script]

    from fastapi import FastAPI
    _, tabs_wall, tabs_cpu = timed(lambda: [c.callback() for c in ours_only("ui_tabs")])
    app = FastAPI()
    _, app_wall, app_cpu = timed(lambda: [c.callback(None, app) for c in ours_only("app_started")])
    print(f"on_ui_tabs: {tabs_wall:.0f} ms wall, {tabs_cpu:.0f} ms cpu; on_app_started: {app_wall:.0f} ms wall, "
          f"{app_cpu:.0f} ms cpu", flush=True)
    from lib_lora_trainer.hosts import a1111
    if a1111._service is not None:
        a1111._service.stop_background()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os._exit(0)
