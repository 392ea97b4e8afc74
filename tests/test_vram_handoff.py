"""VRAM hand-off: unload before a job on A1111's GPU, reload after it on every exit path,
refcounted, a keep-loaded setting, the GPU check, and generations waiting on A1111's queue lock.
The A1111 glue (hosts/a1111.py) is tested against a small stand-in `modules` package."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pytest

from lib_lora_trainer.hosts.vram_handoff import VramHandoff, VramHandoffHooks, job_gpus


class Gpu:
    """Where the model is, as the callables see it."""

    def __init__(self, loaded: bool = True, fail_unload: bool = False, fail_reload: bool = False):
        self.where = "cuda" if loaded else None
        self.events: list[str] = []
        self.fail_unload, self.fail_reload = fail_unload, fail_reload

    def unload(self) -> bool:
        self.events.append("unload")
        if self.fail_unload:
            raise RuntimeError("cannot move")
        if self.where is None:
            return False
        self.where = "cpu"
        return True

    def reload(self) -> None:
        self.events.append("reload")
        if self.fail_reload:
            raise RuntimeError("cannot move back")
        self.where = "cuda"


def handoff(gpu: Gpu, **kw) -> VramHandoff:
    return VramHandoff(gpu.unload, gpu.reload, **kw)


@pytest.mark.parametrize("exit_kind", ["success", "failure", "cancel"])
def test_context_manager_restores_on_every_exit(exit_kind):
    gpu = Gpu()
    h = handoff(gpu)
    raised = {"failure": RuntimeError("training failed"), "cancel": KeyboardInterrupt()}.get(exit_kind)
    with pytest.raises(type(raised)) if raised else _nothing():
        with h.handed_off("job1", ["0"]) as held:
            assert held and gpu.where == "cpu" and h.state().holders == ("job1",)
            if raised:
                raise raised
    assert gpu.where == "cuda" and gpu.events == ["unload", "reload"]
    assert h.state().holders == () and not h.state().model_out


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_refcounted_over_several_jobs():
    gpu = Gpu()
    h = handoff(gpu)
    assert h.acquire("a", ["0"]) and h.acquire("b", ["all"])
    assert h.acquire("a", ["0"])  # the same job twice counts once
    assert gpu.events == ["unload"]
    assert h.release("a") and gpu.where == "cpu"
    assert not h.release("a")
    assert h.release("b") and gpu.events == ["unload", "reload"] and gpu.where == "cuda"
    assert "trains" not in h.state().message()


def test_keep_loaded_setting_and_other_gpus_leave_the_model_alone():
    gpu = Gpu()
    keep = {"value": True}
    h = handoff(gpu, keep_loaded=lambda: keep["value"], host_gpu=lambda: "1")
    assert not h.acquire("a", ["1"])  # setting on
    keep["value"] = False
    assert not h.acquire("b", ["0"])  # job on GPU 0, A1111 on GPU 1
    assert not h.release("b") and gpu.events == []
    assert h.acquire("c", ["0", "1"]) and gpu.events == ["unload"]
    h.release("c")
    cpu_host = handoff(gpu, host_gpu=lambda: None)  # A1111 on CPU (--use-cpu all): nothing to free
    assert not cpu_host.acquire("d", ["0"])


def test_no_model_loaded_means_no_reload_but_the_queue_is_still_held():
    gpu = Gpu(loaded=False)
    lock = threading.Lock()
    h = handoff(gpu, lock=lock)
    with h.handed_off("a"):
        assert lock.locked()  # a txt2img now would load the model onto the training GPU: it waits
    assert gpu.events == ["unload"] and not lock.locked()


def test_failed_unload_releases_the_lock_and_holds_nothing():
    gpu = Gpu(fail_unload=True)
    lock = threading.Lock()
    h = handoff(gpu, lock=lock)
    with pytest.raises(RuntimeError, match="cannot move"):
        h.acquire("a")
    assert not lock.locked() and h.state().holders == ()


def test_failed_reload_still_releases_the_lock():
    gpu = Gpu(fail_reload=True)
    lock = threading.Lock()
    h = handoff(gpu, lock=lock)
    h.acquire("a")
    with pytest.raises(RuntimeError, match="cannot move back"):
        h.release("a")
    assert not lock.locked() and h.state().holders == ()


def test_generation_waits_for_the_job_then_runs_with_the_model_back():
    """The documented behaviour: a txt2img during training waits on A1111's queue lock."""
    gpu = Gpu()
    lock = threading.Lock()  # stands for modules.call_queue.queue_lock
    h = handoff(gpu, lock=lock)
    h.acquire("job")
    seen = {}

    def txt2img():
        with lock:  # what wrap_gradio_gpu_call and /sdapi/v1/txt2img do
            seen["model_at"] = gpu.where
            seen["t"] = time.monotonic()

    thread = threading.Thread(target=txt2img)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive() and "model_at" not in seen
    released_at = time.monotonic()
    h.release("job")
    thread.join(5)
    assert seen["model_at"] == "cuda" and seen["t"] >= released_at


def test_hooks_use_the_job_gpus():
    gpu = Gpu()
    hooks = VramHandoffHooks(handoff(gpu, host_gpu=lambda: "1"))
    job = SimpleNamespace(id="j", gpu="0", config={"gpu_ids": "0, 1"})
    assert job_gpus(job) == ["0", "1"]
    hooks.before_start(job)
    assert gpu.where == "cpu"
    hooks.after_end(job)
    assert gpu.where == "cuda"
    assert job_gpus(SimpleNamespace(id="k", gpu="2", config={})) == ["2"]


# ---- the A1111 glue against a stand-in `modules` package -----------------------------------

FAKE_MODULES = {
    "__init__.py": "",
    "shared.py": """
        from types import SimpleNamespace
        cmd_opts = SimpleNamespace(lora_dir=None, ckpt_dir=None, skip_install=False, api_auth=None)
        class _Opts(SimpleNamespace):
            pass
        opts = _Opts()
        """,
    "devices.py": """
        class _Device:
            def __init__(self, type, index=None):
                self.type, self.index = type, index
        device = _Device("cuda")
        cpu = _Device("cpu")
        """,
    "sd_models.py": """
        from types import SimpleNamespace
        model_path = "/models/Stable-diffusion"
        calls = []
        class _Model:
            where = "cuda"
        model_data = SimpleNamespace(sd_model=_Model())
        def unload_model_weights(sd_model=None, info=None):
            calls.append(("unload", sd_model))
            sd_model.where = "cpu"
        def send_model_to_device(m):
            calls.append(("to_device", m))
            m.where = "cuda"
        """,
    "call_queue.py": """
        import threading
        queue_lock = threading.Lock()
        """,
}


@pytest.fixture
def fake_a1111(tmp_path, monkeypatch):
    package = tmp_path / "a1111" / "modules"
    package.mkdir(parents=True)
    for name, text in FAKE_MODULES.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(package.parent))
    for name in [m for m in sys.modules if m == "modules" or m.startswith("modules.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("LORA_TRAINER_DATA_DIR", str(tmp_path / "data"))
    import modules.call_queue
    import modules.devices
    import modules.sd_models
    import modules.shared
    yield SimpleNamespace(sd_models=modules.sd_models, devices=modules.devices, shared=modules.shared,
                          call_queue=modules.call_queue)
    for name in [m for m in sys.modules if m == "modules" or m.startswith("modules.")]:
        sys.modules.pop(name, None)


def test_a1111_glue_moves_the_real_model_object_and_holds_the_queue(fake_a1111):
    from lib_lora_trainer.hosts import a1111

    assert a1111.handoff_method() == "a1111"
    hooks = a1111.vram_handoff_hooks()
    model = fake_a1111.sd_models.model_data.sd_model
    job = SimpleNamespace(id="j1", gpu="0", config={})
    hooks.before_start(job)
    assert model.where == "cpu" and fake_a1111.call_queue.queue_lock.locked()
    hooks.after_end(job)
    assert model.where == "cuda" and not fake_a1111.call_queue.queue_lock.locked()
    assert [c[0] for c in fake_a1111.sd_models.calls] == ["unload", "to_device"]
    assert all(c[1] is model for c in fake_a1111.sd_models.calls)


def test_a1111_glue_settings_gpu_and_unloaded_model(fake_a1111, monkeypatch):
    from lib_lora_trainer.hosts import a1111

    assert a1111.sd_model_gpu() == "0"
    fake_a1111.devices.device = fake_a1111.devices._Device("cuda", 1)
    assert a1111.sd_model_gpu() == "1"
    fake_a1111.devices.device = fake_a1111.devices.cpu
    assert a1111.sd_model_gpu() is None

    assert a1111.keep_model_loaded() is False
    fake_a1111.shared.opts.lora_trainer_free_model = False  # ui/settings_spec.py's key
    assert a1111.keep_model_loaded() is True
    fake_a1111.shared.opts.lora_trainer_free_model = True
    assert a1111.keep_model_loaded() is False
    monkeypatch.setenv("LORA_TRAINER_KEEP_MODEL_LOADED", "1")
    assert a1111.keep_model_loaded() is True

    fake_a1111.sd_models.model_data.sd_model = None  # --skip-load-model-at-start: nothing to move
    assert a1111.unload_sd_model() is False
    a1111.reload_sd_model()
    assert fake_a1111.sd_models.calls == []


def test_a1111_trainer_settings_honour_skip_install_and_ckpt_dir(fake_a1111, tmp_path):
    from lib_lora_trainer.hosts import a1111

    settings = a1111.trainer_settings()
    assert settings["trainer_python"] == "" and settings["trainer_env_install"] is True
    assert settings["trainer_env_dir"] == str(tmp_path / "data" / "trainer-env")
    fake_a1111.shared.cmd_opts.skip_install = True
    fake_a1111.shared.opts.lora_trainer_trainer_python = "/opt/trainer/bin/python"
    settings = a1111.trainer_settings()
    assert settings["trainer_env_install"] is False and settings["trainer_python"] == "/opt/trainer/bin/python"
    fake_a1111.shared.cmd_opts.ckpt_dir = "/big/ckpts"
    assert [str(p) for p in a1111.checkpoint_dirs()] == ["/big/ckpts", "/models/Stable-diffusion"]


# ---- the same glue against a stand-in shaped like Forge Neo ---------------------------------------
# Neo (modules/sd_models.py, backend/memory_management.py): no send_model_to_device; model_data.sd_model
# is never None (a FakeInitialModel); unload_model_weights swaps in a new FakeInitialModel (the model is
# read from disk again at the next generation); its memory management unloads what is in VRAM and its
# sampling loads it back (load_models_gpu). Shapes only: tests/test_host_real.py runs the real modules.

FAKE_NEO = {
    "modules/__init__.py": "",
    "modules/shared.py": FAKE_MODULES["shared.py"].replace("ckpt_dir=None", "ckpt_dirs=[]"),
    "modules/devices.py": FAKE_MODULES["devices.py"],
    "modules/call_queue.py": FAKE_MODULES["call_queue.py"],
    "modules/sd_models.py": """
        from types import SimpleNamespace
        from backend import memory_management
        model_path = "/models/Stable-diffusion"
        calls = []
        class FakeInitialModel:
            pass
        class SdModelData:
            def __init__(self):
                self.sd_model = FakeInitialModel()
        model_data = SdModelData()
        def unload_model_weights(*args, **kwargs):
            calls.append("unload_model_weights")
            memory_management.unload_all_models()
            model_data.sd_model = FakeInitialModel()
        """,
    "backend/__init__.py": "",
    "backend/memory_management.py": """
        calls = []
        current_loaded_models = []
        def unload_all_models():
            calls.append("unload_all_models")
            for m in current_loaded_models:
                m.where = "cpu"
            current_loaded_models.clear()
        def soft_empty_cache(force=False):
            calls.append("soft_empty_cache")
        def load_models_gpu(models, *a, **kw):
            calls.append("load_models_gpu")
            for m in models:
                m.where = "cuda"
                if m not in current_loaded_models:
                    current_loaded_models.append(m)
        """,
}


@pytest.fixture
def fake_neo(tmp_path, monkeypatch):
    root = tmp_path / "neo"
    for name, text in FAKE_NEO.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(root))
    stale = [m for m in sys.modules if m.split(".")[0] in ("modules", "backend")]
    for name in stale:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setenv("LORA_TRAINER_DATA_DIR", str(tmp_path / "data"))
    import backend.memory_management
    import modules.call_queue
    import modules.sd_models
    import modules.shared
    yield SimpleNamespace(sd_models=modules.sd_models, mm=backend.memory_management, shared=modules.shared,
                          call_queue=modules.call_queue)
    for name in [m for m in sys.modules if m.split(".")[0] in ("modules", "backend")]:
        sys.modules.pop(name, None)


def test_neo_glue_unloads_through_its_memory_management_and_keeps_the_model(fake_neo):
    from lib_lora_trainer.hosts import a1111

    class Patcher:
        where = "cuda"
    unet = Patcher()
    fake_neo.mm.current_loaded_models.append(unet)
    model = fake_neo.sd_models.model_data.sd_model
    assert a1111.handoff_method() == "forge"
    hooks = a1111.vram_handoff_hooks()
    job = SimpleNamespace(id="j1", gpu="0", config={})
    hooks.before_start(job)
    assert unet.where == "cpu" and fake_neo.call_queue.queue_lock.locked()
    assert fake_neo.mm.calls == ["unload_all_models", "soft_empty_cache"]
    hooks.after_end(job)
    assert not fake_neo.call_queue.queue_lock.locked()
    # the model object stays (unload_model_weights would have thrown it away); Neo's next generation
    # loads what it needs back itself
    assert fake_neo.sd_models.model_data.sd_model is model and fake_neo.sd_models.calls == []
    fake_neo.mm.load_models_gpu([unet])
    assert unet.where == "cuda"


def test_neo_glue_with_nothing_in_vram_moves_nothing(fake_neo):
    from lib_lora_trainer.hosts import a1111

    assert a1111.unload_sd_model() is False      # a FakeInitialModel, nothing loaded: no model to bring back
    a1111.reload_sd_model()
    assert fake_neo.sd_models.calls == [] and fake_neo.mm.calls == ["unload_all_models", "soft_empty_cache"]


def test_neo_checkpoint_dirs_is_a_list(fake_neo):
    from lib_lora_trainer.hosts import a1111

    fake_neo.shared.cmd_opts.ckpt_dirs = ["/big/a", "/big/b", "/big/a"]
    assert [str(p) for p in a1111.checkpoint_dirs()] == ["/big/a", "/big/b", "/models/Stable-diffusion"]


def test_a_host_with_no_way_to_move_the_model_holds_the_queue_only(fake_a1111):
    from lib_lora_trainer.hosts import a1111

    del fake_a1111.sd_models.send_model_to_device
    assert a1111.handoff_method() == "none"
    model = fake_a1111.sd_models.model_data.sd_model
    assert a1111.unload_sd_model() is False and model.where == "cuda" and fake_a1111.sd_models.calls == []
