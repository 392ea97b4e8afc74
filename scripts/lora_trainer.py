"""A1111 entry point for sd-webui-lora-trainer: registers the "Train LoRA" tab and the HTTP API
(/lora-trainer/v1). Thin on purpose: the logic lives in lib_lora_trainer; only
lib_lora_trainer/hosts/a1111.py imports A1111's modules beside this file."""

from modules import script_callbacks

from lib_lora_trainer.hosts import a1111 as host
from lib_lora_trainer.ui.dataset_panel import build_tab


def on_ui_tabs():
    return [(build_tab(), "Train LoRA", "lora_trainer")]


def on_app_started(demo, app):
    host.mount_api(app)


script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_app_started(on_app_started)
