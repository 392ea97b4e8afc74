"""Evaluation pictures inside A1111: its own txt2img (processing.process_images) with
`<lora:name:weight>` in the prompt, under A1111's queue lock, so a grid shows exactly what the
user gets in the txt2img tab and never races a user's generation for the GPU.

All seeds of a cell are one txt2img call: batch_size = number of seeds and `seed` = the list of
seeds (A1111 1.10.1's process_images_inner takes a list seed as all_seeds as it is, and its
ImageRNG draws each picture's noise from its own seed, so a picture does not depend on its batch).

Like hosts/a1111.py, this module imports A1111's `modules` (only when it runs)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

MAX_BATCH = 8   # pictures per txt2img call; more seeds are split into several calls


def lora_prompt(prompt: str, loras) -> str:
    """A1111's extra-network syntax appended to the prompt; the name is the file's stem, which is
    what the Lora tab lists (the LoRA was installed into A1111's Lora folder)."""
    tags = "".join(f" <lora:{Path(path).stem}:{float(w):g}>" for path, w in loras)
    return prompt + tags


A1111_LATENT_FACTOR = 8  # processing.py's opt_f: A1111 makes latents of width / 8, whatever the VAE


def size_scale(sd_model) -> int:
    """How much bigger to ask A1111 for a picture so it comes out at the asked size: A1111 sizes
    latents with a fixed factor 8, and a model whose VAE downsamples by 4 (the demo model) would
    render half the size (measured: 128 asked gave 64 px)."""
    try:
        factor = 2 ** (int(sd_model.first_stage_model.encoder.num_resolutions) - 1)
    except (AttributeError, TypeError, ValueError):
        return 1
    return A1111_LATENT_FACTOR // factor if 0 < factor < A1111_LATENT_FACTOR else 1


class A1111Renderer:
    def __init__(self, max_batch: int = MAX_BATCH):
        self.max_batch = max(1, int(max_batch))

    def images(self, prompt, seeds, loras, *, sampler, steps, cfg_scale, negative="", width=None, height=None):
        from modules import processing, shared
        from modules.call_queue import queue_lock

        seeds = [int(s) for s in seeds]
        scale = size_scale(shared.sd_model)
        out = []
        for start in range(0, len(seeds), self.max_batch):
            chunk = seeds[start:start + self.max_batch]
            p = processing.StableDiffusionProcessingTxt2Img(
                sd_model=shared.sd_model, prompt=lora_prompt(prompt, loras), negative_prompt=negative or "",
                seed=list(chunk), subseed=-1, sampler_name=sampler, steps=int(steps), cfg_scale=float(cfg_scale),
                width=int(width or 512) * scale, height=int(height or 512) * scale, n_iter=1, batch_size=len(chunk),
                do_not_save_samples=True, do_not_save_grid=True)
            try:
                with queue_lock:
                    processed = processing.process_images(p)
            finally:
                p.close()
            first = int(getattr(processed, "index_of_first_image", 0) or 0)  # a grid may come first
            images = list(processed.images[first:first + len(chunk)])
            if len(images) != len(chunk):
                raise RuntimeError(f"A1111's txt2img returned {len(images)} pictures for {len(chunk)} seeds "
                                   "(interrupted?)")
            out.extend(images)
        return out


class A1111AutoTest:
    """Job hook and tester inside A1111: after a job succeeds (or on request, `start_test`), test it
    in a background thread with A1111's own txt2img (register it after the VRAM hand-off hook, so
    A1111's model is back first). Its progress and errors are in `<job>/test/` like the subprocess
    tester's (evaluate/progress.py), its log lines in `<job>/test.log` and A1111's console."""

    def __init__(self, renderer: A1111Renderer | None = None, allow_downloads=lambda: False, **evaluate_kwargs):
        self.renderer = renderer or A1111Renderer()
        self.allow_downloads = allow_downloads    # asked at each test: the user may turn the setting on
        self.evaluate_kwargs = evaluate_kwargs   # e.g. seeds=, steps= (tests)
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}

    def before_start(self, job) -> None:
        pass

    def after_end(self, job) -> None:
        from lib_lora_trainer.evaluate.auto import TestStartError, wants_test

        if wants_test(job):
            try:
                self.start_test(job)
            except TestStartError as exc:
                logging.getLogger("lora_trainer.test").warning("not testing job %s: %s", job.id, exc)

    def start_test(self, job, sweep: str | None = None):
        from lib_lora_trainer.evaluate import progress as P
        from lib_lora_trainer.evaluate.auto import check_testable, default_sweep, test_status
        from lib_lora_trainer.evaluate.job_eval import REPORT_DIR
        from lib_lora_trainer.evaluate.plan import parse_sweeps

        check_testable(job)
        sweep = sweep or default_sweep(job)
        sweeps = parse_sweeps(sweep)
        job_dir = Path(job.job_dir)
        with self._lock:
            thread = self._running.get(job.id)
            if thread is not None and thread.is_alive():
                return test_status(job_dir)
            folder = job_dir / REPORT_DIR
            P.reset(folder)
            P.mark_launch(folder, os.getpid(), sweep, "thread")
            thread = threading.Thread(target=self._run, args=(job, sweeps), daemon=True,
                                      name=f"lora-trainer-test-{job.id}")
            self._running[job.id] = thread
            thread.start()
        return test_status(job_dir)

    def wait(self, job_id: str, timeout: float | None = None) -> None:
        thread = self._running.get(job_id)
        if thread is not None:
            thread.join(timeout)

    def _run(self, job, sweeps) -> None:
        from lib_lora_trainer.evaluate.job_eval import evaluate_subject, subject_for_job
        from lib_lora_trainer.evaluate.progress import LOG

        log = logging.getLogger("lora_trainer.test")
        log_path = Path(job.job_dir) / LOG

        def say(line: str) -> None:
            log.info(line)
            try:
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            except OSError:
                pass

        try:
            say(f"[lora-trainer] testing job {job.id} with A1111's txt2img ({', '.join(sorted(sweeps))})")
            kwargs = {"allow_downloads": bool(self.allow_downloads()), **self.evaluate_kwargs}
            result, _, md_path = evaluate_subject(subject_for_job(job), sweeps, renderer=self.renderer, say=say,
                                                  **kwargs)
            say(f"[lora-trainer] test done in {result.seconds} s ({result.pictures} pictures): {md_path}")
        except BaseException as exc:  # a failed test must never take the web UI down; the job stays succeeded
            # evaluate_subject wrote the error into running.json; one written here covers what came before it
            from lib_lora_trainer.evaluate.auto import test_state
            from lib_lora_trainer.evaluate.job_eval import REPORT_DIR
            from lib_lora_trainer.evaluate.progress import mark_failed

            if test_state(Path(job.job_dir)) == "running":
                mark_failed(Path(job.job_dir) / REPORT_DIR, f"{type(exc).__name__}: {exc}")
            say(f"[lora-trainer] test failed: {type(exc).__name__}: {exc}")
            log.exception("testing job %s failed", job.id)
