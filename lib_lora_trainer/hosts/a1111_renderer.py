"""Evaluation pictures inside A1111: its own txt2img (processing.process_images) with
`<lora:name:weight>` in the prompt, under A1111's queue lock, so a grid shows exactly what the
user gets in the txt2img tab and never races a user's generation for the GPU.

Like hosts/a1111.py, this module imports A1111's `modules` (only when it runs)."""

from __future__ import annotations

from pathlib import Path


def lora_prompt(prompt: str, loras) -> str:
    """A1111's extra-network syntax appended to the prompt; the name is the file's stem, which is
    what the Lora tab lists (the LoRA was installed into A1111's Lora folder)."""
    tags = "".join(f" <lora:{Path(path).stem}:{float(w):g}>" for path, w in loras)
    return prompt + tags


class A1111Renderer:
    def images(self, prompt, seeds, loras, *, sampler, steps, cfg_scale, negative="", width=None, height=None):
        from modules import processing, shared
        from modules.call_queue import queue_lock

        out = []
        for seed in seeds:
            p = processing.StableDiffusionProcessingTxt2Img(
                sd_model=shared.sd_model, prompt=lora_prompt(prompt, loras), negative_prompt=negative or "",
                seed=int(seed), subseed=-1, sampler_name=sampler, steps=int(steps), cfg_scale=float(cfg_scale),
                width=int(width or 512), height=int(height or 512), n_iter=1, batch_size=1,
                do_not_save_samples=True, do_not_save_grid=True)
            try:
                with queue_lock:
                    processed = processing.process_images(p)
            finally:
                p.close()
            out.append(processed.images[0])
        return out


class A1111AutoTest:
    """Job hook: after a job succeeds, test it in a background thread with A1111's own txt2img
    (register it after the VRAM hand-off hook, so A1111's model is back first)."""

    def __init__(self, renderer: A1111Renderer | None = None):
        self.renderer = renderer or A1111Renderer()

    def before_start(self, job) -> None:
        pass

    def after_end(self, job) -> None:
        import threading

        from lib_lora_trainer.evaluate.auto import wants_test

        if wants_test(job):
            threading.Thread(target=self._run, args=(job,), daemon=True, name=f"lora-trainer-test-{job.id}").start()

    def _run(self, job) -> None:
        import logging

        from lib_lora_trainer.evaluate.job_eval import evaluate_subject, subject_for_job

        log = logging.getLogger("lora_trainer.test")
        try:
            evaluate_subject(subject_for_job(job), {"weights"}, renderer=self.renderer, say=log.info)
        except Exception:  # a failed test must never take the web UI down; the job stays succeeded
            log.exception("testing job %s failed", job.id)
