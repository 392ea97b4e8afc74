"""A1111 entry point for sd-webui-lora-trainer: registers the "Train LoRA" tab, its settings
section and the HTTP API (/lora-trainer/v1). Thin on purpose: the logic lives in
lib_lora_trainer; only lib_lora_trainer/hosts/a1111.py imports A1111's modules beside this file."""

from modules import script_callbacks, shared

from lib_lora_trainer.hosts import a1111 as host_module
from lib_lora_trainer.ui.settings_spec import SECTION, SETTINGS


def on_ui_tabs():
    from lib_lora_trainer.ui.tab import ELEM_ID, TITLE, build_tab
    return [(build_tab(host_module.host()), TITLE, ELEM_ID)]


def on_ui_settings():
    import gradio as gr
    for s in SETTINGS:
        component, args = (gr.Radio, {"choices": list(s.choices)}) if s.choices else (None, None)
        shared.opts.add_option(s.key, shared.OptionInfo(s.default, s.label, component, args,
                                                        section=SECTION).info(s.help))


def on_app_started(demo, app):
    host_module.mount_api(app)


script_callbacks.on_ui_tabs(on_ui_tabs)
script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(on_app_started)
