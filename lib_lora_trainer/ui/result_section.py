"""The Result section: the installed LoRA with its metadata and sidecar, the prompt that
"Send to txt2img" inserts, and the test grid when the evaluation wrote one."""

from __future__ import annotations

from html import escape
from pathlib import Path

from lib_lora_trainer.jobs import states as S

# Metadata keys worth a line (A1111's Lora card shows the same ones).
SHOWN_METADATA = ("ss_output_name", "ss_base_model_version", "ss_network_dim", "ss_network_alpha",
                  "ss_num_train_images", "ss_resolution", "ss_learning_rate", "ss_max_train_steps",
                  "ss_sd_model_name", "sshs_model_hash")


def test_outputs(job) -> tuple[str | None, str]:
    """(<job_dir>/test/grid_weights.png or None, report.md text or "")."""
    folder = Path(job.job_dir) / "test"
    grid = folder / "grid_weights.png"
    try:
        report = (folder / "report.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        from lib_lora_trainer.evaluate.auto import test_state

        report = {"running": "*Testing the LoRA: generating the grids and scores...*",
                  "failed": f"*The test did not finish; see {Path(job.job_dir) / 'test.log'}*"}.get(
            test_state(Path(job.job_dir)), "")
    return (str(grid) if grid.is_file() else None), report


def result_view(job) -> tuple[str, str, str | None, str]:
    """(html, prompt, grid image path, report markdown) for a job."""
    if job is None or job.state != S.SUCCEEDED or not job.installed_path:
        return '<p class="lt-note">The LoRA appears here when a training job finishes.</p>', "", None, ""
    from lib_lora_trainer.lora_file.sidecar import read_lora_details

    path = Path(job.installed_path)
    if not path.is_file():
        return (f'<p class="lt-error">The LoRA {escape(str(path))} is no longer on disk (moved or deleted).</p>',
                "", None, "")
    try:
        details = read_lora_details(path)
    except Exception as exc:  # a damaged file: say so rather than break the tab
        return f'<p class="lt-error">Cannot read {escape(str(path))}: {escape(str(exc))}</p>', "", None, ""
    rows = [("File", str(path)), ("Size", f"{details.size_bytes / 1e6:.2f} MB"), ("SD version", details.sd_version)]
    rows += [(k, str(details.metadata[k])) for k in SHOWN_METADATA if k in details.metadata]
    if details.sidecar:
        sc = details.sidecar
        rows += [("Activation text", sc.activation_text), ("Preferred weight", f"{sc.preferred_weight:g}"),
                 ("Notes", sc.notes)]
        rows.append(("Sidecar", str(path.with_suffix(".json"))))
    if details.preview:
        rows.append(("Preview", details.preview))
    body = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows if v)
    html = (f'<div class="lt-result" data-installed="{escape(str(path))}"><h4>{escape(details.name)}</h4>'
            f'<table>{body}</table></div>')
    grid, report = test_outputs(job)
    return html, details.prompt(), grid, report


# ---- layout -----------------------------------------------------------------------------------

def build(host) -> dict:
    import gradio as gr

    html = gr.HTML('<p class="lt-note">The LoRA appears here when a training job finishes.</p>',
                   elem_id="lora_trainer_result")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", interactive=False, show_copy_button=True, scale=4,
                            elem_id="lora_trainer_result_prompt")
        send = gr.Button("Send to txt2img", elem_id="lora_trainer_send_txt2img", scale=1,
                         visible=host.txt2img_available)
    with gr.Accordion("Test grid", open=False, elem_id="lora_trainer_test_grid"):
        grid = gr.Image(label="LoRA weight x prompt", type="filepath", interactive=False,
                        elem_id="lora_trainer_grid")
        report = gr.Markdown(elem_id="lora_trainer_test_report")
    # javascript/lora_trainer.js puts the prompt into A1111's txt2img prompt and switches tabs.
    send.click(None, [prompt], None, _js="loraTrainerSendToTxt2img")
    return {"html": html, "prompt": prompt, "grid": grid, "report": report}
