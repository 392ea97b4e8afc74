"""The A1111 renderer's contract with A1111 (a fake `modules`: the real check runs inside A1111)."""

import sys
import threading
import types

from PIL import Image

from lib_lora_trainer.hosts.a1111_renderer import A1111Renderer, lora_prompt


def test_lora_prompt_uses_a1111_syntax():
    assert lora_prompt("zk, portrait", [("/x/Lora/zk_v1.safetensors", 0.5), ("/x/Lora/style.safetensors", 1)]) == \
        "zk, portrait <lora:zk_v1:0.5> <lora:style:1>"


def _fake_modules(monkeypatch, process_images, lock):
    class P:
        def __init__(self, **kw):
            self.kw = kw
            self.closed = False

        def close(self):
            self.closed = True

    modules = types.ModuleType("modules")
    modules.processing = types.SimpleNamespace(StableDiffusionProcessingTxt2Img=P, process_images=process_images)
    modules.shared = types.SimpleNamespace(sd_model="the model")
    modules.call_queue = types.SimpleNamespace(queue_lock=lock)
    for name in ("processing", "shared", "call_queue"):
        monkeypatch.setitem(sys.modules, f"modules.{name}", getattr(modules, name))
    monkeypatch.setitem(sys.modules, "modules", modules)


def test_renderer_renders_all_seeds_of_a_cell_in_one_txt2img_call_under_the_queue_lock(monkeypatch):
    """One call per cell: batch_size = number of seeds and `seed` = the list (A1111 1.10.1's
    process_images_inner uses a list seed as all_seeds); a grid A1111 puts first is skipped."""
    lock = threading.Lock()
    calls = []

    def process_images(p):
        assert lock.locked(), "generation must hold A1111's queue lock"
        calls.append(p.kw)
        seeds = p.kw["seed"]
        assert isinstance(seeds, list) and p.kw["batch_size"] == len(seeds) and p.kw["n_iter"] == 1
        grid = Image.new("RGB", (16, 8))
        return types.SimpleNamespace(images=[grid] + [Image.new("RGB", (8, 8), (s, 0, 0)) for s in seeds],
                                     index_of_first_image=1)

    _fake_modules(monkeypatch, process_images, lock)
    images = A1111Renderer().images("zk", [3, 4, 5, 6], [("/L/zk.safetensors", 0.75)], sampler="Euler a", steps=12,
                                    cfg_scale=5.0, negative="blurry", width=64, height=64)
    assert [im.getpixel((0, 0))[0] for im in images] == [3, 4, 5, 6]
    assert len(calls) == 1 and calls[0]["seed"] == [3, 4, 5, 6]
    assert calls[0]["prompt"] == "zk <lora:zk:0.75>" and calls[0]["sampler_name"] == "Euler a"
    assert calls[0]["do_not_save_samples"] and calls[0]["do_not_save_grid"] and calls[0]["sd_model"] == "the model"
    # more seeds than one batch holds: consecutive calls, seeds in order
    calls.clear()
    images = A1111Renderer(max_batch=3).images("zk", [1, 2, 3, 4, 5], [], sampler="Euler a", steps=2, cfg_scale=5.0)
    assert [c["seed"] for c in calls] == [[1, 2, 3], [4, 5]] and len(images) == 5


def test_renderer_says_when_a1111_returned_too_few_pictures(monkeypatch):
    import pytest

    _fake_modules(monkeypatch, lambda p: types.SimpleNamespace(images=[], index_of_first_image=0), threading.Lock())
    with pytest.raises(RuntimeError, match="0 pictures for 2 seeds"):
        A1111Renderer().images("zk", [1, 2], [], sampler="Euler a", steps=2, cfg_scale=5.0)


def test_renderer_asks_a1111_for_the_size_a_small_vae_factor_needs(monkeypatch):
    """A1111 divides by 8 whatever the VAE: for the demo model (VAE factor 4, an LDM encoder with 3
    resolutions) it is asked for twice the size, so the pictures come out at the asked size."""
    from lib_lora_trainer.hosts.a1111_renderer import size_scale

    calls = []

    def process_images(p):
        calls.append(p.kw)
        return types.SimpleNamespace(images=[Image.new("RGB", (64, 64))], index_of_first_image=0)

    _fake_modules(monkeypatch, process_images, threading.Lock())
    vae4 = types.SimpleNamespace(first_stage_model=types.SimpleNamespace(encoder=types.SimpleNamespace(num_resolutions=3)))
    sys.modules["modules.shared"].sd_model = vae4
    A1111Renderer().images("zk", [1], [], sampler="Euler a", steps=2, cfg_scale=5.0, width=64, height=64)
    assert (calls[0]["width"], calls[0]["height"]) == (128, 128)
    sd15 = types.SimpleNamespace(first_stage_model=types.SimpleNamespace(encoder=types.SimpleNamespace(num_resolutions=4)))
    assert size_scale(sd15) == 1 and size_scale("no vae here") == 1
