"""TrainingConfig fields as form fields: which component shows a field, and how the value a
browser sends back becomes the typed value TrainingConfig accepts.

The Advanced accordion is generated from TrainingConfig.fields_info(), so a new config field
appears in the tab without UI code. Conversion errors are ConfigErrors naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.config.training_config import FieldInfo, TrainingConfig

# Shown outside the accordion (in this order, by the sections that own them). Resolution and crop
# are part of the recipe (the preset sets them), so they sit with the preset; the Dataset
# section's Check and Prepare read them from there and say which values they used.
DATASET_FIELDS = ("trigger",)
MAIN_FIELDS = ("name", "class_token", "engine", "resolution", "crop", "repeats", "epochs", "batch_size",
               "learning_rate", "lr_scheduler", "optimizer", "network_dim", "network_alpha", "mixed_precision")
# Set by other controls: the checkpoint dropdown and the preset dropdown.
NOT_A_FORM_FIELD = ("base_model", "preset")
GROUP_TITLES = {"job": "Job", "dataset": "Dataset", "training": "Length", "optimizer": "Optimizer",
                "network": "Network", "memory": "Memory and speed", "saving": "Saving", "samples": "Samples",
                "launch": "Launch"}


def field_infos() -> dict[str, FieldInfo]:
    return {f.name: f for f in TrainingConfig.fields_info()}


def advanced_fields() -> list[FieldInfo]:
    """Every field not shown elsewhere, in TrainingConfig's order (grouped by `group`)."""
    shown = set(DATASET_FIELDS) | set(MAIN_FIELDS) | set(NOT_A_FORM_FIELD)
    return [f for f in TrainingConfig.fields_info() if f.name not in shown]


def label(info: FieldInfo) -> str:
    return info.name.replace("_", " ").capitalize()


def widget_kind(info: FieldInfo) -> str:
    """checkbox | dropdown | number | text | lines: optional numbers are text (empty = None)."""
    if info.type == "bool":
        return "checkbox"
    if info.choices:
        return "dropdown"
    if info.type.removesuffix(" | None") in ("int", "float"):
        return "number"
    if info.type == "list[str]":
        return "lines"
    return "text"


def to_ui(info: FieldInfo, value: Any) -> Any:
    """A config value as the component shows it."""
    kind = widget_kind(info)
    if kind == "checkbox":
        return bool(value)
    if kind == "number" and info.type.endswith("| None"):   # a Textbox: empty = None
        return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    if kind in ("number", "dropdown"):
        return value
    if kind == "lines":
        return "\n".join(value or [])
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value) if value else ""
    return str(value)


def _number(info: FieldInfo, text: str) -> int | float:
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(info.name, f"{label(info)} ({info.name}): {text!r} is not a number; "
                                     f"enter e.g. {info.default if info.default is not None else 1}, "
                                     "or leave it empty.") from None
    return number  # TrainingConfig takes 2.0 for an int and refuses 2.5 with the fix


def from_ui(info: FieldInfo, raw: Any) -> Any:
    """The browser's value as the config value; raises ConfigError naming the field."""
    kind = widget_kind(info)
    optional = info.type.endswith("| None")
    if kind == "checkbox":
        return bool(raw)
    if kind == "dropdown":
        return raw
    if kind == "number":
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if optional:
                return None
            raise ConfigError(info.name, f"{label(info)} ({info.name}) is empty: enter a number.")
        if isinstance(raw, str):
            return _number(info, raw.strip())
        if "int" in info.type and isinstance(raw, float) and raw.is_integer():
            return int(raw)
        return raw
    text = "" if raw is None else str(raw)
    if kind == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    if info.type == "dict":
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(info.name, f"{label(info)} ({info.name}): not valid JSON ({exc.msg}); write e.g. "
                                         '{"weight_decay": 0.01}') from None
        if not isinstance(value, dict):
            raise ConfigError(info.name, f"{label(info)} ({info.name}) must be a JSON object such as "
                                         '{"weight_decay": 0.01}.')
        return value
    if info.type.startswith("int | float"):   # lr_warmup: steps or a ratio
        if not text.strip():
            return 0
        number = _number(info, text.strip())
        return int(number) if number >= 1 and float(number).is_integer() else number
    if optional and not text.strip():
        return None
    return text.strip()


def config_values(names: list[str], raw_values: list[Any]) -> dict[str, Any]:
    infos = field_infos()
    return {name: from_ui(infos[name], raw) for name, raw in zip(names, raw_values)}


def ui_values(names: list[str], config: TrainingConfig | dict) -> list[Any]:
    data = config.to_dict() if isinstance(config, TrainingConfig) else config
    infos = field_infos()
    return [to_ui(infos[n], data.get(n)) for n in names]


def make_component(info: FieldInfo, value: Any = None, **kwargs):
    """The gradio component (3.41 and 4.40 alike) for one field (elem id lora_trainer_cfg_<name>)."""
    import gradio as gr

    kind = widget_kind(info)
    shown = to_ui(info, info.default if value is None else value)
    common = {"label": label(info), "info": info.help, "elem_id": f"lora_trainer_cfg_{info.name}", **kwargs}
    if kind == "checkbox":
        return gr.Checkbox(value=shown, **common)
    if kind == "dropdown":
        return gr.Dropdown(choices=list(info.choices), value=shown, **common)
    if kind == "number" and not info.type.endswith("| None"):
        precision = 0 if info.type == "int" else None
        return gr.Number(value=shown, precision=precision, **common)
    if kind == "number":
        return gr.Textbox(value=shown, placeholder="empty = off / default", **common)
    if kind == "lines":
        return gr.Textbox(value=shown, lines=3, **common)
    return gr.Textbox(value=shown, **common)
