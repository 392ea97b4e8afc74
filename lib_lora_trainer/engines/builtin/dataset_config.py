"""The dataset part of an sd-scripts run, read the way train_network.py reads it.

Two sources, one result (a list of DatasetSpec):
- a dataset config (`--dataset_config`, already parsed TOML): [general], [[datasets]] and
  [[datasets.subsets]], every value looked up subset -> dataset -> general -> run config -> default;
- without one, the folder convention: each direct subfolder `<repeats>_<class tokens>` of
  `train_data_dir` (and of `reg_data_dir`, as regularisation subsets) is one subset.

Stricter than sd-scripts on purpose: unknown keys, keys in the wrong table, wrong types and options
this engine does not implement are refused with a message that names the key and the fix, instead
of being dropped or failing later in training.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from lib_lora_trainer.dataset.layout import parse_folder_name

from .dataset_keys import (ANY_LEVEL, DATASET_LEVEL, DEFAULTS, KOHYA_EXTENSIONS, NOT_IMPLEMENTED,
                           SUBSET_ONLY, DatasetConfigError, check_table, check_type, list_images,
                           parse_run_resolution, run_layer)

__all__ = ["DatasetConfigError", "SubsetSpec", "DatasetSpec", "DatasetBlueprint", "NOT_IMPLEMENTED",
           "load_dataset_blueprint", "verify_bucket_reso_steps", "list_images", "parse_run_resolution"]

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SubsetSpec:
    image_dir: Path
    num_repeats: int = 1
    class_tokens: str | None = None
    caption_extension: str = ".caption"
    shuffle_caption: bool = False
    keep_tokens: int = 0
    caption_dropout_rate: float = 0.0
    flip_aug: bool = False
    is_reg: bool = False


@dataclass(frozen=True)
class DatasetSpec:
    resolution: tuple[int, int]
    batch_size: int = 1
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    validation_split: float = 0.0          # this share of each train subset is held out for validation
    validation_seed: int | None = None
    prior_loss_weight: float = 1.0
    subsets: tuple[SubsetSpec, ...] = ()


class DatasetBlueprint(list):
    """list[DatasetSpec] plus the warnings met while reading (skipped folders, adjusted values)."""

    def __init__(self, specs=(), warnings: list[str] | None = None):
        super().__init__(specs)
        self.warnings: list[str] = list(warnings or [])


def _lookup(key: str, layers: list[dict]) -> Any:
    for layer in layers:
        if layer.get(key) is not None:
            return layer[key]
    return DEFAULTS.get(key)


def _check_resolution(reso: tuple[int, int] | None, where: str) -> tuple[int, int]:
    if reso is None:
        raise DatasetConfigError(f"{where}: resolution is required: set `resolution = 512` (or "
                                 "[width, height]) in [general] or the dataset, or in the run config.")
    for side in reso:
        if side <= 0 or side % 64:
            raise DatasetConfigError(
                f"{where}: resolution {reso[0]}x{reso[1]} is not a multiple of 64: use 512, 768 or "
                "1024 (512 for SD 1.x, 1024 for SDXL).")
    return reso


def _make_dataset(ds: dict, general: dict, run: dict, subsets: list[tuple[dict, str]],
                  prior_loss_weight: float, where: str, warnings: list[str]) -> DatasetSpec:
    layers = [ds, general, run]
    reso = _check_resolution(_lookup("resolution", layers), where)
    values = {k: _lookup(k, layers) for k in DATASET_LEVEL if k != "resolution"}
    if not 0.0 <= values["validation_split"] <= 1.0:  # sd-scripts warns and trains without validation
        warnings.append(f"{where}: validation_split {values['validation_split']} is not between 0 and 1; "
                        "no validation pictures are split off.")
        values["validation_split"] = 0.0
    if values["batch_size"] < 1:
        raise DatasetConfigError(f"{where}: batch_size must be >= 1, got {values['batch_size']}.")
    steps = values["bucket_reso_steps"]
    if steps < 8 or steps % 8:
        raise DatasetConfigError(f"{where}: bucket_reso_steps must be a multiple of 8 (the VAE "
                                 f"scale), got {steps}: use 64 (SD 1.x) or 32/64 (SDXL).")
    lo, hi = values["min_bucket_reso"], values["max_bucket_reso"]
    if lo > hi:
        raise DatasetConfigError(f"{where}: min_bucket_reso {lo} is larger than max_bucket_reso "
                                 f"{hi}: swap them, e.g. 256 and 1024.")
    if values["enable_bucket"]:
        if lo < 1:
            raise DatasetConfigError(f"{where}: min_bucket_reso must be > 0, got {lo}.")
        # sd-scripts rounds them onto the step grid (min down, max up) with a warning
        given_lo, given_hi = lo, hi
        if lo % steps:
            warnings.append(f"{where}: min_bucket_reso {lo} rounded down to {lo - lo % steps} "
                            f"(a multiple of bucket_reso_steps {steps}).")
            lo -= lo % steps
        if hi % steps:
            warnings.append(f"{where}: max_bucket_reso {hi} rounded up to {hi + steps - hi % steps} "
                            f"(a multiple of bucket_reso_steps {steps}).")
            hi += steps - hi % steps
        if min(reso) < lo:
            raise DatasetConfigError(f"{where}: min_bucket_reso {given_lo} is larger than the resolution's "
                                     f"shorter side {min(reso)}: lower min_bucket_reso (e.g. 256).")
        if max(reso) > hi:
            raise DatasetConfigError(f"{where}: max_bucket_reso {given_hi} is smaller than the resolution's "
                                     f"longer side {max(reso)}: raise max_bucket_reso to at least "
                                     f"{max(reso)}.")
        values["min_bucket_reso"], values["max_bucket_reso"] = lo, hi
    specs = [_make_subset(sub, layers, sub_where) for sub, sub_where in subsets]
    for spec in specs:
        if not list_images(spec.image_dir):
            warnings.append(f"{where}: no images ({', '.join(sorted(KOHYA_EXTENSIONS))}) in "
                            f"{spec.image_dir}; that subset is skipped.")
    if not any(list_images(s.image_dir) for s in specs if not s.is_reg):
        dirs = ", ".join(str(s.image_dir) for s in specs if not s.is_reg) or "none"
        raise DatasetConfigError(
            f"{where}: the dataset has no training images (train folders: {dirs}). Put .png/.jpg/"
            ".jpeg/.webp/.bmp files directly inside the image folder (subfolders are not read).")
    return DatasetSpec(resolution=reso, prior_loss_weight=prior_loss_weight,
                       subsets=tuple(specs), **values)


def _make_subset(sub: dict, outer: list[dict], where: str) -> SubsetSpec:
    layers = [sub] + outer
    if "image_dir" not in sub:
        raise DatasetConfigError(f"{where}: `image_dir` is required: the folder with this subset's "
                                 "images, e.g. image_dir = \"/data/img/100_name\".")
    image_dir = Path(sub["image_dir"]).expanduser()
    if not image_dir.is_dir():
        raise DatasetConfigError(f"{where}: image_dir {str(image_dir)!r} is not a folder: fix the path.")
    values = {k: _lookup(k, layers) for k in ANY_LEVEL}
    if values["num_repeats"] < 1:
        raise DatasetConfigError(f"{where}: num_repeats must be >= 1, got {values['num_repeats']}.")
    if values["keep_tokens"] < 0:
        raise DatasetConfigError(f"{where}: keep_tokens must be >= 0, got {values['keep_tokens']}.")
    if not 0.0 <= values["caption_dropout_rate"] <= 1.0:
        raise DatasetConfigError(f"{where}: caption_dropout_rate must be between 0 and 1, got "
                                 f"{values['caption_dropout_rate']}.")
    ext = values["caption_extension"]
    if not ext or "." not in ext:
        raise DatasetConfigError(f"{where}: caption_extension {ext!r} is appended to the image name "
                                 "as is: write it with the dot, e.g. \".txt\".")
    return SubsetSpec(image_dir=image_dir, is_reg=bool(sub.get("is_reg", False)), **values)


def _folder_subsets(parent: Any, is_reg: bool, warnings: list[str]) -> list[tuple[dict, str]]:
    key = "reg_data_dir" if is_reg else "train_data_dir"
    if not isinstance(parent, (str, os.PathLike)):
        raise DatasetConfigError(f"run config: `{key}` must be a path string, got {parent!r}.")
    base = Path(parent).expanduser()
    if not base.is_dir():
        raise DatasetConfigError(f"run config: {key} {str(base)!r} is not a folder: fix the path.")
    found, skipped = [], []
    for child in sorted(base.iterdir(), key=lambda p: p.name):
        if not child.is_dir():
            continue
        parsed = parse_folder_name(child.name)
        if parsed is None:
            skipped.append(child.name)
            warnings.append(f"{key}: folder {child.name!r} is skipped: its name does not start with "
                            "`<repeats>_` (e.g. `100_name`).")
            continue
        found.append(({"image_dir": str(child), "num_repeats": parsed.repeats, "is_reg": is_reg,
                       "class_tokens": parsed.class_tokens}, f"{key} folder {child.name!r}"))
    if not found and not is_reg:
        loose = len(list_images(base))
        seen = (f"subfolders {', '.join(repr(s) for s in skipped[:10])}" if skipped
                else "no subfolders")
        if loose:
            seen += f" and {loose} images directly inside it (they are not read)"
        raise DatasetConfigError(
            f"No data found in train_data_dir {str(base)!r}: it must be the parent of image folders "
            f"named like `100_name` (repeats, underscore, class tokens), e.g. {base / '10_vadym man'}; "
            f"found {seen}.")
    if not found:
        warnings.append(f"reg_data_dir {str(base)!r} has no `<repeats>_<name>` folders: no "
                        "regularisation images are used.")
    return found


def load_dataset_blueprint(dataset_config: dict | None, run_args: Mapping[str, Any], *,
                           source: str = "dataset config") -> DatasetBlueprint:
    """Resolve every dataset and subset setting; `source` names the file in messages.
    Relative image_dir paths are taken from the current directory, as sd-scripts does."""
    warnings: list[str] = []
    run = run_layer(run_args)
    plw = run_args.get("prior_loss_weight")
    prior_loss_weight = 1.0 if plw is None else check_type("prior_loss_weight", plw, "float",
                                                            "run config")
    specs: list[DatasetSpec] = []
    if dataset_config is not None:
        if not isinstance(dataset_config, Mapping):
            raise DatasetConfigError(f"{source}: expected a table with [general] and [[datasets]].")
        for key in dataset_config:
            if key not in ("general", "datasets"):
                raise DatasetConfigError(f"{source}: unknown top-level key `{key}`: only [general] "
                                         "and [[datasets]] are read.")
        ignored = [k for k in ("train_data_dir", "reg_data_dir", "in_json") if run_args.get(k)]
        if ignored:
            warnings.append(f"{', '.join(ignored)} ignored because a dataset config is used.")
        general = check_table(dataset_config.get("general", {}), DATASET_LEVEL | ANY_LEVEL,
                               f"{source} [general]")
        datasets = dataset_config.get("datasets")
        if not isinstance(datasets, list) or not datasets:
            raise DatasetConfigError(f"{source}: no [[datasets]]: add one with at least one "
                                     "[[datasets.subsets]] that has image_dir.")
        for i, raw in enumerate(datasets):
            where = f"{source} [[datasets]] #{i + 1}"
            ds = check_table(raw, DATASET_LEVEL | ANY_LEVEL, where, extra=("subsets",))
            raw_subsets = raw.get("subsets")
            if not isinstance(raw_subsets, list) or not raw_subsets:
                raise DatasetConfigError(f"{where}: no [[datasets.subsets]]: add one with image_dir.")
            subsets = []
            for j, sub in enumerate(raw_subsets):
                sub_where = f"{where} subset #{j + 1}"
                subsets.append((check_table(sub, ANY_LEVEL | SUBSET_ONLY, sub_where), sub_where))
            specs.append(_make_dataset(ds, general, run, subsets, prior_loss_weight, where, warnings))
    else:
        train_dir = run_args.get("train_data_dir")
        if not train_dir:
            raise DatasetConfigError("No dataset: give a dataset config, or `train_data_dir` (the "
                                     "parent of folders named like `100_name`) in the run config.")
        subsets = _folder_subsets(train_dir, False, warnings)
        if run_args.get("reg_data_dir"):
            subsets += _folder_subsets(run_args["reg_data_dir"], True, warnings)
        subsets = [(check_table(s, ANY_LEVEL | SUBSET_ONLY, w), w) for s, w in subsets]
        specs.append(_make_dataset({}, {}, run, subsets, prior_loss_weight, "run config", warnings))
    for w in warnings:
        log.warning(w)
    return DatasetBlueprint(specs, warnings)


def verify_bucket_reso_steps(specs: list[DatasetSpec], multiple: int) -> None:
    """sd-scripts checks this per model: 64 for SD 1.x/2.x (train_network), 32 for SDXL."""
    for i, spec in enumerate(specs):
        if spec.enable_bucket and spec.bucket_reso_steps % multiple:
            raise DatasetConfigError(
                f"dataset #{i + 1}: bucket_reso_steps is {spec.bucket_reso_steps}; this model needs "
                f"a multiple of {multiple}: set bucket_reso_steps = {multiple}.")
