"""The A1111 renderer's contract with A1111 (a fake `modules`: the real check runs inside A1111)."""

import sys
import threading
import types

from PIL import Image

from lib_lora_trainer.hosts.a1111_renderer import A1111Renderer, lora_prompt


def test_lora_prompt_uses_a1111_syntax():
    assert lora_prompt("zk, portrait", [("/x/Lora/zk_v1.safetensors", 0.5), ("/x/Lora/style.safetensors", 1)]) == \
        "zk, portrait <lora:zk_v1:0.5> <lora:style:1>"


def test_renderer_runs_txt2img_per_seed_under_the_queue_lock(monkeypatch):
    lock = threading.Lock()
    calls = []

    class P:
        def __init__(self, **kw):
            self.kw = kw
            self.closed = False

        def close(self):
            self.closed = True

    def process_images(p):
        assert lock.locked(), "generation must hold A1111's queue lock"
        calls.append(p.kw)
        return types.SimpleNamespace(images=[Image.new("RGB", (8, 8), (p.kw["seed"], 0, 0))])

    modules = types.ModuleType("modules")
    modules.processing = types.SimpleNamespace(StableDiffusionProcessingTxt2Img=P, process_images=process_images)
    modules.shared = types.SimpleNamespace(sd_model="the model")
    modules.call_queue = types.SimpleNamespace(queue_lock=lock)
    for name in ("processing", "shared", "call_queue"):
        monkeypatch.setitem(sys.modules, f"modules.{name}", getattr(modules, name))
    monkeypatch.setitem(sys.modules, "modules", modules)

    images = A1111Renderer().images("zk", [3, 4], [("/L/zk.safetensors", 0.75)], sampler="Euler a", steps=12,
                                    cfg_scale=5.0, negative="blurry", width=64, height=64)
    assert [im.getpixel((0, 0))[0] for im in images] == [3, 4]
    assert [c["seed"] for c in calls] == [3, 4]
    assert calls[0]["prompt"] == "zk <lora:zk:0.75>" and calls[0]["sampler_name"] == "Euler a"
    assert calls[0]["do_not_save_samples"] and calls[0]["do_not_save_grid"] and calls[0]["sd_model"] == "the model"
