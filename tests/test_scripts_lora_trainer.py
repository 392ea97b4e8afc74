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


def _fake_a1111(monkeypatch, tmp_path, api_auth=None, ckpts=()):
    registered = {"tabs": [], "settings": [], "app_started": []}
    calls = []
    mods = {name: types.ModuleType(name) for name in
            ("modules", "modules.script_callbacks", "modules.shared", "modules.sd_models", "modules.deepbooru",
             "modules.call_queue", "modules.devices")}
    mods["modules"].__path__ = []  # a package, so `from modules.x import y` resolves through sys.modules
    mods["modules.call_queue"].queue_lock = threading.Lock()
    mods["modules.devices"].device = types.SimpleNamespace(type="cpu", index=None)
    cb = mods["modules.script_callbacks"]
    cb.on_ui_tabs = registered["tabs"].append
    cb.on_ui_settings = registered["settings"].append
    cb.on_app_started = registered["app_started"].append
    shared = mods["modules.shared"]
    shared.cmd_opts = types.SimpleNamespace(lora_dir=str(tmp_path / "models" / "Lora"), api_auth=api_auth)
    shared.opts = _Opts(registered={})
    shared.OptionInfo = _OptionInfo
    shared.refresh_checkpoints = lambda: calls.append("refresh_checkpoints")
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
                          "lora_trainer_trainer_python", "lora_trainer_lora_dir", "lora_trainer_free_model"}
    assert all(i.section == ("lora_trainer", "Train LoRA") and i.help for i in infos.values())
    assert infos["lora_trainer_default_engine"].component_args == {"choices": ["builtin", "kohya"]}


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
        # 2 dataset + 3 novel prompts x (base + 5 weights) cells of 4 seeds, + 1 preview picture
        assert body["done"] == body["total"] == 5 * 6 * 4 + 1 and len(calls) == 5 * 6 + 1
        assert all(c["batch_size"] == len(c["seed"]) for c in calls) and calls[0]["seed"] == [1, 2, 3, 4]
    finally:
        service.stop_background()
