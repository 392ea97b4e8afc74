"""Web UI entry point for sd-webui-lora-trainer (A1111 1.10.x and Forge Neo): registers the
"Train LoRA" tab, its settings section and the HTTP API (/lora-trainer/v1). Thin on purpose: the
logic lives in lib_lora_trainer; only lib_lora_trainer/hosts/a1111.py imports the host's modules
beside this file.

Startup cost: importing this file imports only hosts/a1111.py (standard library beside it, a few
ms); gradio sections, the job service and the API are imported when the host calls the callbacks.
That one import must happen here: the host puts the extension folder on sys.path only while this
file runs, and later imports find `lib_lora_trainer` through sys.modules.
The callbacks are registered with this file's name: the public `on_ui_tabs` & co. find the caller
with `inspect.stack()`, which looks every frame's module up in sys.modules and cost 0.1-0.3 s per
call in A1111 1.10.1 (measured: nearly all of what this file added to "load scripts").
"""

import inspect

from modules import script_callbacks

from lib_lora_trainer.hosts import a1111 as host_module


def on_ui_tabs():
    from lib_lora_trainer.ui.tab import ELEM_ID, TITLE, build_tab
    return [(build_tab(host_module.host()), TITLE, ELEM_ID)]


def on_ui_settings():
    import gradio as gr
    from modules import shared

    from lib_lora_trainer.ui.settings_spec import SECTION, SETTINGS
    for s in SETTINGS:
        component, args = (gr.Radio, {"choices": list(s.choices)}) if s.choices else (None, None)
        shared.opts.add_option(s.key, shared.OptionInfo(s.default, s.label, component, args,
                                                        section=SECTION).info(s.help))


def on_app_started(demo, app):
    host_module.mount_api(app)


def register(kind: str, callback) -> None:
    """script_callbacks.add_callback(callback_map["callbacks_<kind>"], ..., filename=<this file>)
    where the host has that signature (A1111 1.10.x, its dev branch and Forge Neo all do), else the
    public on_<kind>. The callback's name is the same either way ("<extension>/lora_trainer.py/<kind>")."""
    add = getattr(script_callbacks, "add_callback", None)
    callbacks = getattr(script_callbacks, "callback_map", {}).get(f"callbacks_{kind}")
    try:
        named = add is not None and callbacks is not None and "filename" in inspect.signature(add).parameters
    except (TypeError, ValueError):
        named = False
    if named:
        add(callbacks, callback, category=kind, filename=__file__)
    else:
        getattr(script_callbacks, f"on_{kind}")(callback)


register("ui_tabs", on_ui_tabs)
register("ui_settings", on_ui_settings)
register("app_started", on_app_started)
