"""The Result section: the installed LoRA of the selected job, else of the newest succeeded one (so
a reload never hides a LoRA behind a newer running or failed job), with its metadata and sidecar,
the prompt that "Send to txt2img" inserts, the test's progress ("testing: n/N pictures"), a button
that (re)starts the test, and the test grid and report when the test wrote them."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from lib_lora_trainer.jobs import states as S

from . import gradio_compat as compat

# Metadata keys worth a line (A1111's Lora card shows the same ones).
SHOWN_METADATA = ("ss_output_name", "ss_base_model_version", "ss_network_dim", "ss_network_alpha",
                  "ss_num_train_images", "ss_resolution", "ss_learning_rate", "ss_max_train_steps",
                  "ss_sd_model_name", "sshs_model_hash")
EMPTY_HTML = '<p class="lt-note">The LoRA appears here when a training job finishes.</p>'
NO_RESULT = "No LoRA yet: a training job has to finish (SUCCEEDED) first."


def _has_lora(job) -> bool:
    return job is not None and job.state == S.SUCCEEDED and bool(job.installed_path)


def result_job(jobs, selected=None):
    """The job whose LoRA the section shows: the selected job when it succeeded, else the newest
    succeeded job (None when no job has succeeded yet)."""
    if _has_lora(selected):
        return selected
    done = [j for j in jobs or () if _has_lora(j)]
    return max(done, key=lambda j: (j.finished_at or j.created_at or 0.0, j.created_at or 0.0), default=None)


def test_outputs(job) -> tuple[str | None, str]:
    """(<job_dir>/test/grid_weights.png or None, report.md text), or (None, what the test is doing)
    while a test runs or after it failed (a restarted test never shows the previous one's grid)."""
    from lib_lora_trainer.evaluate.auto import test_status

    folder = Path(job.job_dir) / "test"
    status = test_status(Path(job.job_dir))
    if status.state in ("running", "failed"):
        text = {"running": f"*{status.text}*",
                "failed": f"*{status.text}* (log: {Path(job.job_dir) / 'test.log'})"}.get(status.state, "")
        return None, text
    grid = folder / "grid_weights.png"
    try:
        report = (folder / "report.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        report = ""
    return (str(grid) if grid.is_file() else None), report


def _test_line(job) -> str:
    from lib_lora_trainer.evaluate.auto import test_status

    status = test_status(Path(job.job_dir))
    text = status.text or 'not tested yet: press "Test this LoRA"'
    cls = "lt-error" if status.state == "failed" else "lt-note"
    return (f'<p class="{cls} lt-test-status" data-test-state="{escape(status.state)}" '
            f'data-test-done="{status.done}" data-test-total="{status.total}">{escape(text)}</p>')


def result_view(job, jobs=None) -> tuple[str, str, str | None, str, str]:
    """(html, prompt, grid image path, report markdown, ranking html). `job`: the selected (or
    shown) job; with `jobs` (all of them), a job that has no LoRA gives way to the newest succeeded one."""
    if jobs is not None:
        shown = result_job(jobs, job)
        if shown is None:
            return EMPTY_HTML, "", None, "", ""
        note = (f'<p class="lt-note">Showing the newest finished LoRA (job {escape(shown.id)}); job '
                f'{escape(job.id)} above is {escape(job.state)}.</p>' if job is not None and shown is not job else "")
        html, prompt, grid, report, ranking = result_view(shown)
        return note + html, prompt, grid, report, ranking
    if not _has_lora(job):
        return EMPTY_HTML, "", None, "", ""
    from lib_lora_trainer.lora_file.sidecar import read_lora_details

    path = Path(job.installed_path)
    if not path.is_file():
        return (f'<p class="lt-error">The LoRA {escape(str(path))} is no longer on disk (moved or deleted).</p>',
                "", None, "", "")
    try:
        details = read_lora_details(path)
    except Exception as exc:  # a damaged file: say so rather than break the tab
        return f'<p class="lt-error">Cannot read {escape(str(path))}: {escape(str(exc))}</p>', "", None, "", ""
    rows = [("Job", f"{job.id} {job.name}"), ("File", str(path)), ("Size", f"{details.size_bytes / 1e6:.2f} MB"),
            ("SD version", details.sd_version)]
    rows += [(k, str(details.metadata[k])) for k in SHOWN_METADATA if k in details.metadata]
    if details.sidecar:
        sc = details.sidecar
        rows += [("Activation text", sc.activation_text), ("Preferred weight", f"{sc.preferred_weight:g}"),
                 ("Notes", sc.notes)]
        rows.append(("Sidecar", str(path.with_suffix(".json"))))
    if details.preview:
        rows.append(("Preview", details.preview))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows if v)
    html = (f'<div class="lt-result" data-installed="{escape(str(path))}" data-job="{escape(job.id)}">'
            f'<h4>{escape(details.name)}</h4>{_test_line(job)}<table>{body}</table></div>')
    grid, report = test_outputs(job)
    from .ranking_table import ranking_html

    return html, details.prompt(), grid, report, (ranking_html(job, details) if grid else "")


# ---- actions ----------------------------------------------------------------------------------

_JOB_ATTR = re.compile(r'data-job="([^"]+)"')


def shown_job_id(html: str | None) -> str | None:
    """The id of the job the Result section shows (from its own html: what the user sees is what
    the button acts on)."""
    match = _JOB_ATTR.search(html or "")
    return match.group(1) if match else None


def start_test(host, html: str | None) -> str:
    """The "Test this LoRA" button: (re)start the test of the shown job with the host's tester
    (A1111's txt2img inside A1111, the trainer environment standalone). Returns a message html."""
    from lib_lora_trainer.evaluate.auto import TestStartError, tester_for

    job_id = shown_job_id(html)
    if not job_id:
        return f'<p class="lt-error">{escape(NO_RESULT)}</p>'
    service = host.job_service()
    try:
        status = tester_for(service).start_test(service.get(job_id))
    except (KeyError, TestStartError) as exc:
        return f'<p class="lt-error">Cannot test: {escape(str(exc.args[0] if exc.args else exc))}</p>'
    if status.state == "failed":
        return f'<p class="lt-error">{escape(status.text)}</p>'
    return (f'<p class="lt-note">Testing job {escape(job_id)}: {escape(status.text)}. The grid and the scores '
            f'appear below when it is done.</p>')


def install_recommended(host, html: str | None) -> str:
    """The "Install the recommended checkpoint" button: the shown job's test recommends a file and
    a weight; that file replaces the installed LoRA (same name), the weight becomes its preferred one."""
    from lib_lora_trainer.evaluate.recommend import RecommendError, install_recommended as install

    job_id = shown_job_id(html)
    if not job_id:
        return f'<p class="lt-error">{escape(NO_RESULT)}</p>'
    try:
        path, best = install(host.job_service().get(job_id))
    except (KeyError, RecommendError) as exc:
        return f'<p class="lt-error">Cannot install: {escape(str(exc.args[0] if exc.args else exc))}</p>'
    host.after_install(str(path))
    return (f'<p class="lt-note">{escape(path.name)} is now {escape(best["checkpoint"])}, preferred weight '
            f'{best["weight"]:g}.</p>')


# What the browser side (javascript/lora_trainer.js, loraTrainerSendToTxt2img) reports back.
SEND_OUTCOMES = {
    "sent": "Sent to txt2img: {prompt}",
    "no-prompt": NO_RESULT,
    "no-txt2img": "This page has no txt2img prompt to send to (the standalone app has none): copy the prompt "
                  "above into A1111's txt2img.",
}


def send_message(prompt: str, outcome: str) -> str:
    """The line under the button after "Send to txt2img": what was done, or why nothing was."""
    if not (prompt or "").strip():
        outcome = "no-prompt"
    text = SEND_OUTCOMES.get(outcome or "", "Send to txt2img did not run (the page's script is not loaded): "
                                            "reload the page, or copy the prompt above.")
    css = "lt-note" if outcome == "sent" else "lt-error"
    return f'<p class="{css}">{escape(text.format(prompt=prompt or ""))}</p>'


# ---- layout -----------------------------------------------------------------------------------

def build(host) -> dict:
    import gradio as gr

    html = gr.HTML(EMPTY_HTML, elem_id="lora_trainer_result")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", interactive=False, show_copy_button=True, scale=4,
                            elem_id="lora_trainer_result_prompt")
        send = gr.Button("Send to txt2img", elem_id="lora_trainer_send_txt2img", scale=1,
                         visible=host.txt2img_available)
        test = gr.Button("Test this LoRA", elem_id="lora_trainer_test_start", scale=1)
    # What the browser did with the prompt ("sent" / "no-prompt" / "no-txt2img"), filled by the script.
    outcome = gr.Textbox(visible=False, elem_id="lora_trainer_send_outcome")
    message = gr.HTML(elem_id="lora_trainer_result_message")
    with gr.Accordion("Test grid", open=True, elem_id="lora_trainer_test_grid"):
        with gr.Row():
            grid = gr.Image(label="LoRA weight x prompt", type="filepath", interactive=False,
                            elem_id="lora_trainer_grid", scale=3)
            with gr.Column(scale=2):
                ranking = gr.HTML(elem_id="lora_trainer_ranking")
                install = gr.Button("Install the recommended checkpoint", elem_id="lora_trainer_install_recommended")
        report = gr.Markdown(elem_id="lora_trainer_test_report")
    # javascript/lora_trainer.js puts the prompt into A1111's txt2img prompt and switches tabs; it
    # returns (prompt, outcome) for these inputs, and send_message says what happened.
    send.click(send_message, [prompt, outcome], [message], **compat.js("loraTrainerSendToTxt2img"))
    test.click(lambda shown: start_test(host, shown), [html], [message])
    install.click(lambda shown: install_recommended(host, shown), [html], [message])
    return {"html": html, "prompt": prompt, "grid": grid, "report": report, "ranking": ranking, "send": send,
            "test": test, "install": install, "message": message}
