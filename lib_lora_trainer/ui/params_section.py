"""The Model and parameters section: base checkpoint (from the host), preset, the main
settings, an Advanced accordion generated from TrainingConfig, and the live step arithmetic."""

from __future__ import annotations

from html import escape
from typing import Any

from lib_lora_trainer.config.arithmetic import describe_plan
from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.config.presets import KEEP_ON_PRESET_CHANGE, get_preset, list_presets, resolve_config
from lib_lora_trainer.config.training_config import TrainingConfig

from . import fields as F
from . import gradio_compat as compat

DEFAULT_PRESET = "sd15-portrait"
# Fields that change the step count or its sentence.
ARITHMETIC_FIELDS = ("repeats", "epochs", "batch_size", "grad_accum", "max_train_steps", "num_processes",
                     "lr_warmup")
_PLACEHOLDER = {"name": "plan", "base_model": "plan"}  # lets an unfinished form be priced
# How F.MAIN_FIELDS are laid out: identity; images and length; optimizer; network.
MAIN_ROWS = (("name", "class_token", "engine"), ("resolution", "crop", "repeats", "epochs", "batch_size"),
             ("learning_rate", "lr_scheduler", "optimizer"), ("network_dim", "network_alpha", "mixed_precision"))


def form_names() -> list[str]:
    """Every config field the form shows, in a fixed order (the order of handler arguments)."""
    return [*F.DATASET_FIELDS, *F.MAIN_FIELDS, *(f.name for f in F.advanced_fields())]


def preset_config(preset_id: str | None, keep: dict | None = None) -> TrainingConfig:
    values = dict(_PLACEHOLDER)
    values.update({k: v for k, v in (keep or {}).items() if v not in (None, "")})
    return resolve_config(preset_id or None, values)


def preset_description(preset_id: str | None) -> str:
    if not preset_id:
        return "No preset: TrainingConfig's defaults."
    try:
        p = get_preset(preset_id)
    except ConfigError as exc:
        return str(exc)
    return f"**{p.name}**: {p.description}"


def apply_preset(preset_id: str, names: list[str], values: list[Any]) -> tuple[list[Any], str]:
    """New form values for a preset switch: the preset's recipe, keeping what the user typed for
    identity fields (name, trigger, class token, engine, samples...). Returns (values, description)."""
    current = {}
    for name, raw in zip(names, values):
        if name in KEEP_ON_PRESET_CHANGE:
            try:
                current[name] = F.from_ui(F.field_infos()[name], raw)
            except ConfigError:
                pass
    try:
        cfg = preset_config(preset_id, current)
    except ConfigError:   # a kept value the preset cannot take: start from the preset alone
        cfg = preset_config(preset_id)
    out = F.ui_values(names, cfg)
    typed = dict(zip(names, values))
    for i, name in enumerate(names):   # an empty name stays empty (not the placeholder)
        if name in _PLACEHOLDER and not str(typed.get(name) or "").strip():
            out[i] = ""
    return out, preset_description(preset_id)


def build_config(names: list[str], values: list[Any], preset_id: str | None, base_model: str) -> TrainingConfig:
    """The TrainingConfig the form describes; ConfigError naming the field otherwise."""
    data = F.config_values(names, values)
    if not str(data.get("name") or "").strip():
        raise ConfigError("name", "LoRA name (name) is empty: enter the file name for the LoRA, e.g. zyrette_v1.")
    data["base_model"] = base_model
    return resolve_config(preset_id or None, data)


def plan_text(names: list[str], values: list[Any], preset_id: str | None, num_images: float | None,
              rate_it_s: float | None) -> str:
    """The live arithmetic line, or the first problem of the form (in red, naming the field)."""
    try:
        data = F.config_values(names, values)
        data.update({k: v for k, v in _PLACEHOLDER.items() if not str(data.get(k) or "").strip()})
        cfg = resolve_config(preset_id or None, data)
    except ConfigError as exc:
        return f'<p class="lt-error">{escape(str(exc))}</p>'
    text = describe_plan(cfg, int(num_images or 0), rate_it_s)
    return f'<p class="lt-plan">{escape(text)}</p>'


def last_measured_rate(service) -> float | None:
    """it/s of the most recent job that measured one (the speed this machine trains at)."""
    for job in reversed(service.list()):
        rate = (job.progress or {}).get("rate_it_s")
        if rate:
            return float(rate)
    return None


def refresh_checkpoints(host) -> list[str]:
    host.refresh_checkpoints()
    return [t for t, _ in host.checkpoints()]


# ---- layout -----------------------------------------------------------------------------------

def build(host, fields: dict, default_preset: str = DEFAULT_PRESET):
    import gradio as gr

    infos = F.field_infos()
    cfg = preset_config(default_preset)
    titles = [t for t, _ in host.checkpoints()]
    with gr.Row():
        checkpoint = gr.Dropdown(choices=titles, value=titles[0] if titles else None, label="Base checkpoint",
                                 elem_id="lora_trainer_checkpoint", scale=4)
        refresh = gr.Button("Refresh list", elem_id="lora_trainer_checkpoint_refresh", scale=1)
        preset = gr.Dropdown(choices=[p.id for p in list_presets()], value=default_preset, label="Preset",
                             elem_id="lora_trainer_preset", scale=3)
    preset_info = gr.Markdown(preset_description(default_preset), elem_id="lora_trainer_preset_info")
    for row in MAIN_ROWS:
        with gr.Row():
            for name in row:
                value = "" if name == "name" else cfg.to_dict()[name]
                if name == "engine":
                    value = host.settings().get("default_engine") or value
                fields[name] = F.make_component(infos[name], value)
    with gr.Accordion("Advanced", open=False, elem_id="lora_trainer_advanced"):
        groups: dict[str, list] = {}
        for info in F.advanced_fields():
            groups.setdefault(info.group, []).append(info)
        for group, infos_in_group in groups.items():
            gr.Markdown(f"**{F.GROUP_TITLES.get(group, group)}**")
            for i in range(0, len(infos_in_group), 3):
                with gr.Row():
                    for info in infos_in_group[i:i + 3]:
                        fields[info.name] = F.make_component(info, cfg.to_dict()[info.name])
    plan = gr.HTML(elem_id="lora_trainer_plan")
    refresh.click(lambda current: compat.dropdown_update(refresh_checkpoints(host), current), [checkpoint],
                  [checkpoint])
    return {"checkpoint": checkpoint, "preset": preset, "preset_info": preset_info, "plan": plan}


def wire(host, fields: dict, parts: dict, num_images) -> None:
    """Events that need every section's fields (called by tab.py once all are laid out)."""
    names = form_names()
    comps = [fields[n] for n in names]
    preset = parts["preset"]

    def on_preset(preset_id, *values):
        new, info = apply_preset(preset_id, names, list(values))
        return [*new, info]
    preset.change(on_preset, [preset, *comps], [*comps, parts["preset_info"]])

    def on_change(preset_id, count, *values):
        return plan_text(names, list(values), preset_id, count, last_measured_rate(host.job_service()))
    inputs = [preset, num_images, *comps]
    for trigger in [num_images, preset, *(fields[n] for n in ARITHMETIC_FIELDS)]:
        trigger.change(on_change, inputs, [parts["plan"]])
