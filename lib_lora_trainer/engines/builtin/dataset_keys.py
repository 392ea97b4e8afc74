"""The keys of sd-scripts' dataset config and run config that the builtin engine reads, their
types, and the checks shared by the blueprint (dataset_config.py) and the data builder (data.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from lib_lora_trainer.dataset.inspect_image import KOHYA_EXTENSIONS


class DatasetConfigError(ValueError):
    """A dataset setting that cannot be trained; the message says what to change."""


# --- the keys -------------------------------------------------------------------------------
# type tags: "bool", "int", "float" (int accepted), "str", "reso" (int or [w, h])
DATASET_LEVEL = {"batch_size": "int", "resolution": "reso", "enable_bucket": "bool",
                 "min_bucket_reso": "int", "max_bucket_reso": "int", "bucket_reso_steps": "int",
                 "bucket_no_upscale": "bool", "validation_split": "float", "validation_seed": "int"}
ANY_LEVEL = {"num_repeats": "int", "shuffle_caption": "bool", "keep_tokens": "int",
             "caption_dropout_rate": "float", "flip_aug": "bool", "caption_extension": "str",
             "class_tokens": "str"}
SUBSET_ONLY = {"image_dir": "str", "is_reg": "bool"}
# sd-scripts (config_util.ConfigSanitizer) reads these; the builtin engine does not.
NOT_IMPLEMENTED = (
    "color_aug", "random_crop", "face_crop_aug_range", "caption_prefix", "caption_suffix",
    "token_warmup_min", "token_warmup_step", "keep_tokens_separator", "secondary_separator",
    "enable_wildcard", "caption_separator", "caption_tag_dropout_rate",
    "caption_dropout_every_n_epochs", "metadata_file", "conditioning_data_dir", "alpha_mask",
    "cache_info", "custom_attributes", "resize_interpolation", "network_multiplier", "debug_dataset")
# run-config values of those keys that change nothing (argparse defaults / off)
_INERT_RUN_VALUES = {"caption_separator": ",", "token_warmup_min": 1, "network_multiplier": 1.0}
_ALWAYS_INERT_RUN_KEYS = {"debug_dataset"}
# run.toml (argparse) names that differ from the dataset-config names
_RUN_NAMES = {"batch_size": "train_batch_size", "num_repeats": "dataset_repeats"}
DEFAULTS: dict[str, Any] = {
    "batch_size": 1, "enable_bucket": False, "min_bucket_reso": 256, "max_bucket_reso": 1024,
    "bucket_reso_steps": 64, "bucket_no_upscale": False, "validation_split": 0.0, "validation_seed": None,
    "num_repeats": 1,
    "shuffle_caption": False, "keep_tokens": 0, "caption_dropout_rate": 0.0, "flip_aug": False,
    "caption_extension": ".caption", "class_tokens": None, "is_reg": False}
_TYPE_WORDS = {"bool": "true or false", "int": "an integer", "float": "a number",
               "str": "a quoted string", "reso": "an integer such as 512 or a pair [width, height]"}


def list_images(folder: Path) -> list[Path]:
    """kohya's glob_images: the direct files with an image extension (lower or upper case),
    no dotfiles (glob's `*` skips them), sorted."""
    upper = {e.upper() for e in KOHYA_EXTENSIONS}
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    out = [Path(e.path) for e in entries
           if not e.name.startswith(".") and os.path.splitext(e.name)[1] in KOHYA_EXTENSIONS | upper
           and e.is_file()]
    return sorted(out, key=lambda p: p.name)


def check_type(key: str, value: Any, tag: str, where: str) -> Any:
    ok = {"bool": isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "str": isinstance(value, str),
          "reso": (isinstance(value, int) and not isinstance(value, bool)) or (
              isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))}[tag]
    if not ok:
        raise DatasetConfigError(f"{where}: `{key}` must be {_TYPE_WORDS[tag]}, got {value!r} "
                                 f"({type(value).__name__}).")
    if tag == "float":
        return float(value)
    if tag == "reso":
        return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))
    return value


def check_table(table: Any, allowed: dict[str, str], where: str, extra: tuple[str, ...] = ()) -> dict:
    if not isinstance(table, Mapping):
        raise DatasetConfigError(f"{where} must be a table of key = value, got {type(table).__name__}.")
    out = {}
    for key, value in table.items():
        if key in extra or value is None:  # JSON null: unset, as sd-scripts' fallback search
            continue
        if key in NOT_IMPLEMENTED:
            raise DatasetConfigError(
                f"{where}: `{key}` is known to sd-scripts but not implemented by the builtin engine: "
                "remove it, or train with the sd-scripts engine.")
        if key not in allowed:
            places = [name for name, keys in (("[general]", DATASET_LEVEL | ANY_LEVEL),
                                              ("[[datasets]]", DATASET_LEVEL | ANY_LEVEL),
                                              ("[[datasets.subsets]]", ANY_LEVEL | SUBSET_ONLY))
                      if key in keys]
            if places:
                raise DatasetConfigError(f"{where}: `{key}` is not allowed here; sd-scripts reads it "
                                         f"only in {' or '.join(places)}: move it there.")
            raise DatasetConfigError(f"{where}: unknown key `{key}` (sd-scripts would not use it "
                                     "either): check the spelling or remove it.")
        out[key] = check_type(key, value, allowed[key], where)
    return out


def parse_run_resolution(value: Any) -> tuple[int, int] | None:
    """run.toml `resolution`: 512, "512", "512,768" or [512, 768]."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parts = [int(p) for p in value.split(",")]
        except ValueError:
            parts = []
        if len(parts) not in (1, 2):
            raise DatasetConfigError(f"run config: `resolution` {value!r} is not \"512\" or "
                                     "\"512,768\": write it like that.")
        return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    return check_type("resolution", value, "reso", "run config")


def run_layer(run_args: Mapping[str, Any]) -> dict:
    """The run config values that act as the last fallback, under dataset-config names."""
    layer: dict[str, Any] = {}
    for key in NOT_IMPLEMENTED:
        value = run_args.get(key)
        if key in _ALWAYS_INERT_RUN_KEYS or value in (None, False, 0, "") or \
                _INERT_RUN_VALUES.get(key, object()) == value:
            continue
        raise DatasetConfigError(
            f"run config: `{key} = {value!r}` is known to sd-scripts but not implemented by the "
            "builtin engine: remove it, or train with the sd-scripts engine.")
    for key, tag in (DATASET_LEVEL | ANY_LEVEL).items():
        if key == "class_tokens":  # no such sd-scripts option: only folders/config set it
            continue
        value = run_args.get(_RUN_NAMES.get(key, key))
        if value is None:
            continue
        if key == "resolution":
            layer[key] = parse_run_resolution(value)
        else:
            layer[key] = check_type(_RUN_NAMES.get(key, key), value, tag, "run config")
    return {k: v for k, v in layer.items() if v is not None}
