"""Where evaluation pictures come from. A Renderer turns (prompt, seeds, LoRAs, sampler, steps)
into pictures; standalone it is diffusers (this module), inside A1111 it is A1111's own txt2img
(hosts/a1111.py), so the grid shows what the user will get there."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

from PIL import Image


class Renderer(Protocol):
    def images(self, prompt: str, seeds: Sequence[int], loras: Sequence[tuple[Path, float]], *, sampler: str,
               steps: int, cfg_scale: float, negative: str, width: int | None,
               height: int | None) -> list[Image.Image]: ...

    # Optional, same arguments but `prompts`: out[i] is images(prompts[i], ...). A renderer that can
    # put several prompts in one batch has it (Evaluation falls back to one images() call per prompt).
    # def images_many(self, prompts, seeds, loras, **same) -> list[list[Image.Image]]: ...


class DiffusersRenderer:
    """One model loaded once; LoRA files loaded once per set and re-weighted in place."""

    def __init__(self, model_path: Path, pipeline=None):
        self.model_path = Path(model_path)
        self._pipe = pipeline
        self._loaded: tuple[Path, ...] = ()
        self._names: list[str] = []

    @property
    def pipe(self):
        if self._pipe is None:
            from lib_lora_trainer.generation.pipeline import load_model_pipeline

            self._pipe = load_model_pipeline(self.model_path)
            self._pipe.set_progress_bar_config(disable=True)
        return self._pipe

    def _set_loras(self, loras: Sequence[tuple[Path, float]]) -> None:
        from lib_lora_trainer.generation.pipeline import apply_loras

        paths = tuple(Path(p) for p, _ in loras)
        if paths != self._loaded:
            self._names = apply_loras(self.pipe, loras)
            self._loaded = paths
        elif self._names:
            self.pipe.set_adapters(self._names, adapter_weights=[float(w) for _, w in loras])

    def images(self, prompt, seeds, loras, *, sampler, steps, cfg_scale, negative="", width=None, height=None):
        return self.images_many([prompt], seeds, loras, sampler=sampler, steps=steps, cfg_scale=cfg_scale,
                                negative=negative, width=width, height=height)[0]

    def images_many(self, prompts, seeds, loras, *, sampler, steps, cfg_scale, negative="", width=None,
                    height=None):
        from lib_lora_trainer.generation.pipeline import generate_grid

        self._set_loras(loras)
        return generate_grid(self.pipe, list(prompts), list(seeds), negative=negative or None, steps=steps,
                             width=width, height=height, cfg_scale=cfg_scale, sampler=sampler)
