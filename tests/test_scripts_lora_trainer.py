"""scripts/lora_trainer.py and hosts/a1111.py against a fake A1111 `modules` (allowed for unit
tests of scripts/; the real check is inside A1111)."""

import runpy
import threading
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class _Opts(types.SimpleNamespace):
    def add_option(self, key, info):
        self.registered[key] = info
        if not hasattr(self, key):
            setattr(self, key, info.default)


class _OptionInfo:
    def __init__(self, default=None, label="", component=None, component_args=None, section=None, **_):
        self.default, self.label, self.component, self.component_args, self.section = \
            default, label, component, component_args, section
        self.help = ""

    def info(self, text):
        self.help = text
        return self

    def needs_restart(self):
        return self


def _fake_a1111(monkeypatch, tmp_path, api_auth=None, ckpts=(), neo=False, exposed=False, add_callback=False):
    """A1111 1.10.1's shape, or with neo=True Forge Neo's (no modules.deepbooru, no shared.interrogator,
    cmd_opts.ckpt_dirs, modules_forge.forge_version "neo"). exposed: cmd_opts.disable_extension_access.
    add_callback: script_callbacks also has add_callback(..., filename=) and callback_map, as both hosts do."""
    registered = {"tabs": [], "settings": [], "app_started": [], "add_callback": []}
    calls = []
    names = ["modules", "modules.script_callbacks", "modules.shared", "modules.sd_models", "modules.call_queue",
             "modules.devices"] + ([] if neo else ["modules.deepbooru"])
    mods = {name: types.ModuleType(name) for name in names}
    mods["modules"].__path__ = []  # a package, so `from modules.x import y` resolves through sys.modules
    mods["modules.call_queue"].queue_lock = threading.Lock()
    mods["modules.devices"].device = types.SimpleNamespace(type="cpu", index=None)
    cb = mods["modules.script_callbacks"]
    cb.on_ui_tabs = registered["tabs"].append
    cb.on_ui_settings = registered["settings"].append
    cb.on_app_started = registered["app_started"].append
    if add_callback:
        cb.callback_map = {"callbacks_ui_tabs": registered["tabs"], "callbacks_ui_settings": registered["settings"],
                           "callbacks_app_started": registered["app_started"]}

        def add(callbacks, fun, *, name=None, category="unknown", filename=None):
            registered["add_callback"].append((category, filename))
            callbacks.append(fun)
        cb.add_callback = add
        cb.on_ui_tabs = cb.on_ui_settings = cb.on_app_started = None   # must not be used
    shared = mods["modules.shared"]
    shared.cmd_opts = types.SimpleNamespace(lora_dir=str(tmp_path / "models" / "Lora"), api_auth=api_auth,
                                            disable_extension_access=exposed)
    if neo:
        shared.cmd_opts.ckpt_dirs = [str(tmp_path / "more-ckpts")]
    else:
        shared.cmd_opts.ckpt_dir = None
    shared.opts = _Opts(registered={})
    shared.OptionInfo = _OptionInfo
    shared.refresh_checkpoints = lambda: calls.append("refresh_checkpoints")
    if neo:
        forge = types.ModuleType("modules_forge")
        forge.__path__ = []
        version = types.ModuleType("modules_forge.forge_version")
        version.version = "neo"
        forge.forge_version = version
        monkeypatch.setitem(sys.modules, "modules_forge", forge)
        monkeypatch.setitem(sys.modules, "modules_forge.forge_version", version)
    else:
        monkeypatch.delitem(sys.modules, "modules_forge", raising=False)
        shared.interrogator = types.SimpleNamespace(interrogate=lambda im: "a photo of a woman")
        mods["modules.deepbooru"].model = types.SimpleNamespace(tag=lambda im: "1girl, pink hair")
    sd = mods["modules.sd_models"]
    sd.checkpoints_list = {title: types.SimpleNamespace(filename=path) for title, path in ckpts}
    sd.model_data = types.SimpleNamespace(sd_model=object())
    sd.model_path = str(tmp_path / "models" / "Stable-diffusion")
    sd.unload_model_weights = lambda m=None: calls.append("unload")
    sd.send_model_to_device = lambda m: calls.append("to_device")
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
        if "." in name:
            setattr(mods["modules"], name.split(".")[1], mod)
    networks = types.ModuleType("networks")
    networks.list_available_networks = lambda: calls.append("list_available_networks")
    monkeypatch.setitem(sys.modules, "networks", networks)
    monkeypatch.setenv("LORA_TRAINER_DATA_DIR", str(tmp_path / "data"))
    from lib_lora_trainer.hosts import a1111
    monkeypatch.setattr(a1111, "_service", None)
    monkeypatch.setattr(a1111, "_host", None)
    runpy.run_path(str(ROOT / "scripts" / "lora_trainer.py"))
    return registered, shared, calls


def test_script_mounts_the_api_with_a1111s_api_auth(monkeypatch, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_lora_trainer.hosts import a1111

    registered, _, _ = _fake_a1111(monkeypatch, tmp_path, api_auth="alice:s3cret")
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


def test_script_registers_the_settings_section(monkeypatch, tmp_path):
    registered, shared, _ = _fake_a1111(monkeypatch, tmp_path)
    [settings] = registered["settings"]
    settings()
    infos = shared.opts.registered
    assert set(infos) == {"lora_trainer_sd_scripts_path", "lora_trainer_default_engine",
                          "lora_trainer_trainer_python", "lora_trainer_lora_dir", "lora_trainer_free_model",
                          "lora_trainer_sd_scripts_version", "lora_trainer_sd_scripts_url",
                          "lora_trainer_sd_scripts_torch", "lora_trainer_scorer_downloads"}
    assert all(i.section == ("lora_trainer", "Train LoRA") and i.help for i in infos.values())
    assert infos["lora_trainer_default_engine"].component_args == {"choices": ["builtin", "kohya"]}
    assert infos["lora_trainer_sd_scripts_version"].component_args == {"choices": ["default", "v0.10.1", "v0.11.1"]}


def test_script_registers_the_tab_built_on_the_a1111_host(monkeypatch, tmp_path):
    import gradio as gr

    ckpt = tmp_path / "sd15.safetensors"
    registered, shared, calls = _fake_a1111(monkeypatch, tmp_path, ckpts=[("sd15.safetensors [abc]", str(ckpt))])
    from lib_lora_trainer.hosts import a1111
    try:
        [(blocks, title, elem_id)] = registered["tabs"][0]()
        assert isinstance(blocks, gr.Blocks) and title == "Train LoRA" and elem_id == "lora_trainer"
        ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
        assert {"lora_trainer_dataset_src", "lora_trainer_check", "lora_trainer_dataset_report", "lora_trainer_start",
                "lora_trainer_stop", "lora_trainer_refresh", "lora_trainer_send_txt2img", "lora_trainer_checkpoint",
                "lora_trainer_cfg_optimizer_args", "lora_trainer_result", "lora_trainer_test_start",
                "lora_trainer_result_message"} <= ids
        assert all(i.startswith("lora_trainer") for i in ids if i)
        checkpoint = next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "lora_trainer_checkpoint")
        assert checkpoint.choices == ["sd15.safetensors [abc]"]
        host = a1111.host()
        assert set(host.captioners()) == {"BLIP (interrogate)", "DeepBooru"}
        host.refresh_checkpoints()
        host.after_install(tmp_path / "x.safetensors")
        assert calls == ["refresh_checkpoints", "list_available_networks"]
        assert host.captioners()["DeepBooru"](None) == "1girl, pink hair"
        shared.opts.lora_trainer_lora_dir = str(tmp_path / "override")
        shared.opts.lora_trainer_sd_scripts_path = "/opt/sd-scripts"
        service = host.job_service()
        assert service.lora_dir == tmp_path / "override" and service.settings["sd_scripts_path"] == "/opt/sd-scripts"
    finally:
        a1111.job_service().stop_background()


def test_test_inside_a1111_renders_with_a1111s_txt2img_in_a_thread(monkeypatch, tmp_path):
    """Issue 12 items 3 and 4: inside A1111, POST /jobs/{id}/test (and the Result section's button)
    run the in-process tester with A1111's own txt2img - never a subprocess in A1111's Python, which
    has no diffusers - one txt2img call per cell with all its seeds, and report pictures done."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from PIL import Image

    from eval_helpers import succeeded_job
    from lib_lora_trainer.evaluate.auto import tester_for
    from lib_lora_trainer.hosts import a1111
    from lib_lora_trainer.hosts.a1111_renderer import A1111AutoTest

    registered, shared, _ = _fake_a1111(monkeypatch, tmp_path)
    calls = []

    class P:
        def __init__(self, **kw):
            self.kw = kw

        def close(self):
            pass

    def process_images(p):
        calls.append(p.kw)
        return types.SimpleNamespace(images=[Image.new("RGB", (16, 16), (s % 256, 9, 9)) for s in p.kw["seed"]],
                                     index_of_first_image=0)

    processing = types.ModuleType("modules.processing")
    processing.StableDiffusionProcessingTxt2Img, processing.process_images = P, process_images
    monkeypatch.setitem(sys.modules, "modules.processing", processing)
    monkeypatch.setattr(sys.modules["modules"], "processing", processing, raising=False)
    shared.sd_model = "the model"
    app = FastAPI()
    [started] = registered["app_started"]
    started(None, app)
    service = a1111.job_service()
    try:
        tester = tester_for(service)
        assert isinstance(tester, A1111AutoTest)
        job = succeeded_job(service, tmp_path)
        client = TestClient(app)
        r = client.post(f"/lora-trainer/v1/jobs/{job.id}/test")
        assert r.status_code == 202, r.text
        tester.wait(job.id, timeout=120)
        body = client.get(f"/lora-trainer/v1/jobs/{job.id}/test").json()
        assert body["state"] == "done", body
        # 2 dataset + 3 novel prompts x (base + 5 weights) cells of 4 seeds, + 1 preview picture; weight 0
        # is rendered for the first prompt only (bit-identical to the base, which stands in for it after)
        assert body["done"] == body["total"] == (5 * 6 - 4) * 4 + 1 and len(calls) == 5 * 6 + 1 - 4
        assert all(c["batch_size"] == len(c["seed"]) for c in calls) and calls[0]["seed"] == [1, 2, 3, 4]
    finally:
        service.stop_background()


# ---- issue 15: Forge Neo's shape, registration cost, exposed servers ---------------------------------

def _tab_config(registered):
    [(blocks, _, _)] = registered["tabs"][0]()
    return blocks.get_config_file()


def _component(cfg, elem_id):
    return next(c for c in cfg["components"] if c["props"].get("elem_id") == elem_id)


def test_callbacks_are_registered_with_the_file_name_not_a_stack_walk(monkeypatch, tmp_path):
    """Both hosts' add_callback takes filename=; the public on_* helpers would call inspect.stack()."""
    import inspect

    def no_stack(*a, **kw):
        raise AssertionError("inspect.stack() called at registration")
    monkeypatch.setattr(inspect, "stack", no_stack)
    registered, _, _ = _fake_a1111(monkeypatch, tmp_path, add_callback=True)
    script = str(ROOT / "scripts" / "lora_trainer.py")
    assert registered["add_callback"] == [("ui_tabs", script), ("ui_settings", script), ("app_started", script)]
    assert [len(registered[k]) for k in ("tabs", "settings", "app_started")] == [1, 1, 1]


def test_importing_the_script_imports_no_gradio_section_job_service_or_api(tmp_path):
    """Load the script in a fresh interpreter (a bare stand-in `modules`) and list what it imported."""
    import json
    import subprocess
    import textwrap

    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "__init__.py").write_text("")
    (tmp_path / "modules" / "script_callbacks.py").write_text(
        "on_ui_tabs = on_ui_settings = on_app_started = lambda fn, **kw: None\n")
    code = textwrap.dedent(f"""
        import json, runpy, sys
        sys.path[:0] = [{str(tmp_path)!r}, {str(ROOT)!r}]
        before = set(sys.modules)
        runpy.run_path({str(ROOT / "scripts" / "lora_trainer.py")!r})
        print(json.dumps(sorted(set(sys.modules) - before)))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "LORA_TRAINER_DATA_DIR": str(tmp_path / "data")})
    assert out.returncode == 0, out.stderr
    new = json.loads(out.stdout.strip().splitlines()[-1])
    ours = [m for m in new if m.startswith("lib_lora_trainer")]
    assert set(ours) <= {"lib_lora_trainer", "lib_lora_trainer.hosts", "lib_lora_trainer.hosts.a1111",
                         "lib_lora_trainer.paths", "lib_lora_trainer.trainer_env",
                         "lib_lora_trainer.trainer_env.host_deps"}, ours
    heavy = [m for m in new if m.split(".")[0] in ("gradio", "torch", "numpy", "PIL", "fastapi", "pydantic", "sqlite3")]
    assert heavy == [], heavy


def test_in_forge_neo_the_tab_builds_without_captioners_and_says_why(monkeypatch, tmp_path):
    from lib_lora_trainer.hosts import a1111

    registered, shared, calls = _fake_a1111(monkeypatch, tmp_path, neo=True)
    try:
        host = a1111.host()
        assert host.captioners() == {} and a1111.host_label() == "Forge Neo"
        assert [str(p) for p in a1111.checkpoint_dirs()] == [str(tmp_path / "more-ckpts"),
                                                            str(tmp_path / "models" / "Stable-diffusion")]
        cfg = _tab_config(registered)
        note = _component(cfg, "lora_trainer_autocaption_note")["props"]["value"]
        assert "Forge Neo has no captioning model" in note
        button = _component(cfg, "lora_trainer_autocaption")
        row = next(c for c in cfg["components"] if c["id"] == _parent_id(cfg, button["id"]))
        assert row["props"].get("visible") is False   # the action is hidden, the note says why
        host.after_install(tmp_path / "x.safetensors")
        assert calls == ["list_available_networks"]
    finally:
        a1111.job_service().stop_background()


def _parent_id(cfg, child_id):
    def walk(node, parent):
        if node["id"] == child_id:
            return parent
        for c in node.get("children", []):
            found = walk(c, node["id"])
            if found is not None:
                return found
        return None
    return walk(cfg["layout"], None)


def test_in_a1111_the_auto_caption_action_shows(monkeypatch, tmp_path):
    from lib_lora_trainer.hosts import a1111

    registered, _, _ = _fake_a1111(monkeypatch, tmp_path)
    try:
        cfg = _tab_config(registered)
        assert not [c for c in cfg["components"] if c["props"].get("elem_id") == "lora_trainer_autocaption_note"]
        assert a1111.host_label() == "A1111"
    finally:
        a1111.job_service().stop_background()


def test_a_local_a1111_keeps_path_settings_and_any_folder(monkeypatch, tmp_path):
    from lib_lora_trainer.hosts import a1111

    _, shared, _ = _fake_a1111(monkeypatch, tmp_path)
    shared.opts.lora_trainer_trainer_python = "/opt/py/bin/python"
    shared.opts.lora_trainer_lora_dir = str(tmp_path / "elsewhere")
    host = a1111.host()
    assert host.folder_limit() is None and a1111.exposed() is False
    assert a1111.trainer_settings()["trainer_python"] == "/opt/py/bin/python"
    assert host.lora_dir() == tmp_path / "elsewhere"


def test_an_exposed_a1111_confines_folders_ignores_path_settings_and_model_paths(monkeypatch, tmp_path):
    """--listen/--share/--server-name/--ngrok without --enable-insecure-extension-access."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from imagegen import write_dataset
    from lib_lora_trainer.api import app as api_app
    from lib_lora_trainer.hosts import a1111

    registered, shared, _ = _fake_a1111(monkeypatch, tmp_path, exposed=True)
    shared.opts.lora_trainer_trainer_python = "/tmp/evil/python"
    shared.opts.lora_trainer_sd_scripts_path = str(tmp_path / "datasets-upload" / "fake-sd-scripts")
    shared.opts.lora_trainer_lora_dir = "/etc"
    host = a1111.host()
    try:
        limit = host.folder_limit()
        assert a1111.exposed() and limit.roots == (tmp_path / "data" / "datasets",)
        assert "--enable-insecure-extension-access" in limit.lift and "A1111 is reachable" in limit.reason
        assert a1111.trainer_settings()["trainer_python"] == "" and "sd_scripts_path" not in host.settings()
        assert host.lora_dir() == tmp_path / "models" / "Lora"
        # the tab's Load button
        outside = write_dataset(tmp_path / "private", n=2, size=(96, 96))
        [(blocks, _, _)] = registered["tabs"][0]()
        cfg = blocks.get_config_file()
        load_id = _component(cfg, "lora_trainer_load")["id"]
        i = next(i for i, d in enumerate(cfg["dependencies"]) if load_id in [t[0] if isinstance(t, (list, tuple))
                                                                             else t for t in d["targets"]])
        out = blocks.fns[i].fn(str(outside), "", 64)
        assert "outside the dataset folders" in out[1] and str(tmp_path / "data" / "datasets") in out[1]
        assert "--enable-insecure-extension-access" in out[1] and out[4] == 0
        # the API: base_model confined to the checkpoint folders as well
        seen = {}
        real_mount = api_app.mount

        def spy(app, service, **kw):
            seen.update(kw)
            return real_mount(app, service, **kw)
        monkeypatch.setattr(api_app, "mount", spy)
        app = FastAPI()
        [started] = registered["app_started"]
        started(None, app)
        assert seen["model_roots"] == a1111.checkpoint_dirs()
        r = TestClient(app).post("/lora-trainer/v1/datasets/check", json={"path": str(outside)})
        assert r.status_code == 403
    finally:
        a1111.job_service().stop_background()
    shared.cmd_opts.disable_extension_access = False   # --enable-insecure-extension-access
    assert host.folder_limit() is None


def test_exposure_is_recomputed_where_the_attribute_is_missing(monkeypatch, tmp_path):
    from lib_lora_trainer.hosts import a1111

    _, shared, _ = _fake_a1111(monkeypatch, tmp_path)
    del shared.cmd_opts.disable_extension_access
    assert a1111.exposed() is False
    shared.cmd_opts.listen = True
    assert a1111.exposed() is True
    shared.cmd_opts.enable_insecure_extension_access = True
    assert a1111.exposed() is False
