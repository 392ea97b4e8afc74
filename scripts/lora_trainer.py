"""A1111 entry point for sd-webui-lora-trainer: registers the "Train LoRA" tab. Thin on purpose:
the logic lives in lib_lora_trainer, which never imports A1111's modules outside hosts/."""

from modules import script_callbacks

from lib_lora_trainer.ui.dataset_panel import build_tab


def on_ui_tabs():
    return [(build_tab(), "Train LoRA", "lora_trainer")]


script_callbacks.on_ui_tabs(on_ui_tabs)
