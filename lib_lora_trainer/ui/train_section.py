"""The Train section: Start, Stop (the trainer saves), Resume, the job list, and the live view
(progress, loss chart, samples, log tail, failure banner) refreshed from the job service.

The browser script (javascript/lora_trainer.js) clicks the hidden refresh button every ~1.5 s
while the tab is visible; everything shown is read from the job service's SQLite store and the
job's files, so reloading the page or opening it twice shows the same job.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.hosts.base import checkpoint_path, confined_folder
from lib_lora_trainer.jobs import states as S

from . import gradio_compat as compat
from . import job_view as V
from .params_section import build_config
from .reproduce_section import confined_weights
from .result_section import result_view


def _msg_error(text: str) -> str:
    return f'<p class="lt-error">{escape(str(text))}</p>'


def start(host, folder: str, checkpoint_title: str, preset_id: str, names: list[str], values: list):
    """Submit a job (check -> prepare -> queue). Returns (message html, job label or None)."""
    from lib_lora_trainer.jobs.service import SubmitError

    if not (folder or "").strip():
        return _msg_error("Dataset folder: load a dataset first (Dataset section)."), None
    try:
        folder = confined_folder(host, folder)  # an exposed server trains only from the dataset roots
        base = checkpoint_path(host, checkpoint_title)
        cfg = confined_weights(host, build_config(names, values, preset_id, base))   # network_weights
    except (ConfigError, ValueError) as exc:
        return _msg_error(exc), None
    service = host.job_service()
    try:
        job = service.submit(folder, cfg, crop=cfg.crop)
    except SubmitError as exc:
        return _msg_error(f"The job was not queued: {exc}"), None
    service.tick()   # start it now rather than at the next loop turn
    total = (job.progress or {}).get("total")
    return (f"<p>Queued job {escape(job.id)} ({escape(job.name)}): {total} steps.</p>", V.job_label(job))


def stop(host, label: str) -> str:
    job_id = V.job_id_of(label)
    if not job_id:
        return _msg_error("Stop: no job selected.")
    try:
        job = host.job_service().cancel(job_id, wait=False)
    except (KeyError, S.TransitionError) as exc:
        return _msg_error(exc.args[0] if exc.args else exc)
    if job.state == S.RUNNING:
        return f"<p>Stopping {escape(job.id)}: the trainer saves its state, then stops.</p>"
    return f"<p>{escape(job.id)} is {escape(job.state)}.</p>"


def resume(host, label: str) -> str:
    job_id = V.job_id_of(label)
    if not job_id:
        return _msg_error("Resume: no job selected.")
    service = host.job_service()
    try:
        job = service.resume(job_id)
    except (KeyError, S.TransitionError) as exc:
        return _msg_error(exc.args[0] if exc.args else exc)
    service.tick()
    where = f"step state {Path(job.resume_from).name}" if job.resume_from else "the start (no saved state)"
    return f"<p>Resumed {escape(job.id)} from {escape(where)}.</p>"


class InstallNotifier:
    """Calls host.after_install once per installed LoRA (this process), when the tab first sees it."""

    def __init__(self, host):
        self.host = host
        self.seen: set[str] = set()

    def __call__(self, job) -> None:
        if job is not None and job.state == S.SUCCEEDED and job.installed_path and job.installed_path not in self.seen:
            self.seen.add(job.installed_path)
            try:
                self.host.after_install(job.installed_path)
            except Exception as exc:  # a refresh failure must not break the view
                print(f"[lora-trainer] refreshing the Lora list failed: {exc}", flush=True)


def view(host, selected: str | None, notify=None) -> dict:
    """Everything the Train and Result sections show, from the job service."""
    service = host.job_service()
    jobs = service.list()
    job = V.pick_job(jobs, selected)
    if notify:
        notify(job)
    html, prompt, grid, report, ranking = result_view(job, jobs)  # a newer running/failed job never hides a LoRA
    return {
        "choices": [V.job_label(j) for j in reversed(jobs)],
        "selected": V.job_label(job) if job else None,
        "progress": V.progress_html(job),
        "loss": V.loss_svg((job.progress or {}).get("loss_history") if job else [],
                           validation=(job.progress or {}).get("val_loss_history") if job else []),
        "banner": V.banner_html(job),
        "log": V.log_tail(job),
        "queue": V.queue_html(jobs, job.id if job else None),
        "samples": V.sample_images(job),
        "result": html, "prompt": prompt, "grid": grid, "report": report, "ranking": ranking,
    }


# ---- layout -----------------------------------------------------------------------------------

def build(host) -> dict:
    import gradio as gr

    with gr.Row():
        start_btn = gr.Button("Start training", variant="primary", elem_id="lora_trainer_start")
        stop_btn = gr.Button("Stop (saves)", variant="stop", elem_id="lora_trainer_stop")
        resume_btn = gr.Button("Resume", elem_id="lora_trainer_resume")
    message = gr.HTML(elem_id="lora_trainer_train_message")
    banner = gr.HTML(elem_id="lora_trainer_banner")
    with gr.Row():
        job = gr.Dropdown(label="Job", choices=[], value=None, elem_id="lora_trainer_job", scale=4)
        refresh = gr.Button("Refresh", elem_id="lora_trainer_refresh", scale=1)
    progress = gr.HTML(V.progress_html(None), elem_id="lora_trainer_progress")
    loss = gr.HTML(elem_id="lora_trainer_loss")
    samples = gr.Gallery(label="Samples", columns=6, height=200, allow_preview=True, elem_id="lora_trainer_samples")
    log = gr.Textbox(label="Log (last lines)", lines=10, max_lines=10, interactive=False, elem_id="lora_trainer_log")
    with gr.Accordion("Queue", open=False, elem_id="lora_trainer_queue_box"):
        queue = gr.HTML(elem_id="lora_trainer_queue")
    return {"start": start_btn, "stop": stop_btn, "resume": resume_btn, "message": message, "banner": banner,
            "job": job, "refresh": refresh, "progress": progress, "loss": loss, "samples": samples, "log": log,
            "queue": queue}


def wire(host, parts: dict, result: dict, start_inputs: list, names: list[str]) -> None:
    """Start/Stop/Resume and the refresh; `start_inputs` = [folder, checkpoint, preset, *form fields]."""
    import gradio as gr

    notify = InstallNotifier(host)
    sigs = gr.State({})

    def on_refresh(selected, memo):
        v = view(host, selected, notify)
        memo = dict(memo or {})

        def changed(key, value):
            if memo.get(key) == value:
                return False
            memo[key] = value
            return True
        choices = compat.dropdown_update(v["choices"], v["selected"], fallback_first=False) \
            if changed("choices", (v["choices"], v["selected"])) else gr.update()
        samples = v["samples"] if changed("samples", v["samples"]) else gr.update()
        grid = v["grid"] if changed("grid", v["grid"]) else gr.update()
        return [choices, v["progress"], v["loss"], v["banner"], v["log"], v["queue"], samples,
                v["result"], v["prompt"], grid, v["report"], v["ranking"], memo]

    outputs = [parts["job"], parts["progress"], parts["loss"], parts["banner"], parts["log"], parts["queue"],
               parts["samples"], result["html"], result["prompt"], result["grid"], result["report"], result["ranking"],
               sigs]
    parts["refresh"].click(on_refresh, [parts["job"], sigs], outputs, show_progress=compat.HIDDEN)
    parts["job"].select(on_refresh, [parts["job"], sigs], outputs, show_progress=compat.HIDDEN)

    def on_start(folder, title, preset_id, *values):
        text, label = start(host, folder, title, preset_id, names, list(values))
        if not label:
            return text, gr.update()
        # the new job with the list it is in (gradio 4 wants a Dropdown's value among its choices)
        return text, compat.dropdown_update([V.job_label(j) for j in reversed(host.job_service().list())], label)
    parts["start"].click(on_start, start_inputs, [parts["message"], parts["job"]]).then(
        on_refresh, [parts["job"], sigs], outputs, show_progress=compat.HIDDEN)
    parts["stop"].click(lambda label: stop(host, label), [parts["job"]], [parts["message"]])
    parts["resume"].click(lambda label: resume(host, label), [parts["job"]], [parts["message"]]).then(
        on_refresh, [parts["job"], sigs], outputs, show_progress=compat.HIDDEN)
