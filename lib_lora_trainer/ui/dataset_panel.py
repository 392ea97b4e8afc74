"""The Dataset section of the Train LoRA tab: check a folder or .zip and show the report.

Built with gradio 3.41 APIs (A1111 1.10's version); the same Blocks runs standalone.
"""

from __future__ import annotations

from lib_lora_trainer.dataset.check import check_dataset
from lib_lora_trainer.dataset.source import open_source

from .report_html import report_to_html


def run_check(src: str, trigger: str, resolution: float) -> str:
    """Gradio handler: never raises, a bad input becomes a red message in the report area."""
    from html import escape

    if not (src or "").strip():
        return '<p class="lt-error">Enter the path of a folder of images or a .zip.</p>'
    try:
        with open_source(src.strip()) as root:
            # workers=1: never fork the web UI's process (it may hold a GPU context).
            report = check_dataset(root, int(resolution), (trigger or "").strip() or None, workers=1,
                                   display_root=src.strip())
    except (ValueError, OSError) as exc:
        return f'<p class="lt-error">{escape(str(exc))}</p>'
    return report_to_html(report)


def build_dataset_panel():
    import gradio as gr

    with gr.Row():
        src = gr.Textbox(label="Dataset folder or .zip", elem_id="lora_trainer_dataset_src",
                         placeholder="/path/to/photos")
        trigger = gr.Textbox(label="Trigger word", elem_id="lora_trainer_trigger", placeholder="VadymPanchenko")
        resolution = gr.Number(label="Resolution", value=512, precision=0, elem_id="lora_trainer_resolution")
    check = gr.Button("Check dataset", elem_id="lora_trainer_check", variant="primary")
    report = gr.HTML(elem_id="lora_trainer_dataset_report")
    check.click(run_check, inputs=[src, trigger, resolution], outputs=[report])
    return {"src": src, "trigger": trigger, "resolution": resolution, "check": check, "report": report}


def build_tab():
    import gradio as gr

    with gr.Blocks(analytics_enabled=False) as blocks:
        with gr.Tab("Dataset", elem_id="lora_trainer_tab_dataset"):
            build_dataset_panel()
    return blocks
