"""Reproduce a run from a LoRA: rebuild the TrainingConfig a kohya-format LoRA (ours or one made
by kohya sd-scripts) was trained with, from its `ss_*` metadata and its tensor shapes.

    r = reproduce("Lora/vadym_v1.safetensors", checkpoints=[...], dataset_roots=[...])
    r.config            # TrainingConfig fields (base_model None when no checkpoint matched)
    r.not_recovered     # [NotRecovered(field, reason, key, value)]: what cannot be carried over
    r.training_config() # the TrainingConfig, when the base model was found
    r.train_command(dataset)  # `python -m lib_lora_trainer train ...` that trains it again

mode "again" trains the same recipe from scratch; "continue" starts from the LoRA's own weights
(TrainingConfig.network_weights, sd-scripts' --network_weights).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from lib_lora_trainer.config.errors import ConfigError
from lib_lora_trainer.config.training_config import BUILTIN_SCHEDULERS, TrainingConfig

from . import reproduce_keys as K
from .reproduce_dataset import DatasetInfoGuess, dataset
from .reproduce_keys import NotRecovered, Recovery, raw
from .weights_check import network_shape, network_weights_problem

__all__ = ["Reproduction", "NotRecovered", "reproduce", "reproduce_metadata", "MODES"]

MODES = ("again", "continue")
_PLACEHOLDER_BASE = "<base model>"
_SAVE_PRECISION = {"F16": "fp16", "BF16": "bf16", "F32": "float"}
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
MAX_HASHED_CANDIDATES = 500   # legacy hashes read 64 KiB per checkpoint


@dataclass
class Reproduction:
    source: str                          # the LoRA file (or "<metadata>")
    mode: str
    config: dict                         # every TrainingConfig field; base_model None when not found
    recovered: dict[str, str]            # field -> where its value came from (a metadata key)
    not_recovered: list[NotRecovered]
    notes: list[str]
    defaults: list[str]                  # fields the metadata does not record: TrainingConfig defaults
    dataset: DatasetInfoGuess
    model_type: str | None               # sd1 / sd2 / sdxl, from ss_base_model_version
    made_by: str                         # "sd-scripts <commit>" / "lib_lora_trainer-<version>" / "unknown"

    @property
    def base_model(self) -> str | None:
        return self.config.get("base_model")

    def training_config(self, **changes) -> TrainingConfig | None:
        """The TrainingConfig (with `changes`), or None while the base model is unknown."""
        data = {**self.config, **changes}
        return TrainingConfig.from_dict(data) if data.get("base_model") else None

    def to_dict(self) -> dict:
        return {"source": self.source, "mode": self.mode, "config": self.config, "recovered": self.recovered,
                "not_recovered": [m.to_dict() for m in self.not_recovered], "notes": self.notes,
                "defaults": self.defaults, "dataset": self.dataset.to_dict(), "model_type": self.model_type,
                "made_by": self.made_by}

    def train_command(self, dataset_path: str | None = None, preset: str | None = None,
                      program: Sequence[str] = ("python", "-m", "lib_lora_trainer")) -> list[str]:
        """The `train` command line (jobs/cli.py) that trains this config: the identity options,
        then `--set key=<json>` for every field that differs from `preset` (whose id is only a label)."""
        from lib_lora_trainer.config.presets import resolve_config

        cfg = self.config
        preset = preset or default_preset(self.model_type)
        ident = {"name": cfg["name"], "trigger": cfg["trigger"], "base_model": cfg["base_model"] or _PLACEHOLDER_BASE,
                 "engine": cfg["engine"]}
        if cfg.get("class_token"):
            ident["class_token"] = cfg["class_token"]
        base = resolve_config(preset, ident).to_dict()
        argv = [*program, "train", dataset_path or self.dataset.found or "<dataset folder>",
                "--trigger", cfg["trigger"], "--base", cfg["base_model"] or _PLACEHOLDER_BASE, "--name", cfg["name"],
                "--preset", preset, "--engine", cfg["engine"]]
        if cfg.get("class_token"):
            argv += ["--class-token", cfg["class_token"]]
        for key, value in cfg.items():
            if key not in ident and key != "preset" and base.get(key) != value:
                argv += ["--set", f"{key}={json.dumps(value)}"]
        return argv


def _model_type(md: Mapping[str, str], out: Recovery) -> str | None:
    version = raw(md, "ss_base_model_version") or ""
    if version.startswith("sdxl"):
        kind = "sdxl"
    elif version.startswith("sd_v2") or raw(md, "ss_v2") == "True":
        kind = "sd2"
    elif version.startswith("sd_v1"):
        kind = "sd1"
    else:
        return None
    if version.endswith("_v"):
        out.notes.append("The LoRA was trained with v-parameterization: the trainer detects it from the base "
                         "model (a v-prediction checkpoint), there is no field for it.")
    return kind


def _made_by(md: Mapping[str, str]) -> str:
    commit = raw(md, "ss_sd_scripts_commit_hash")
    if commit and commit.startswith("lib_lora_trainer"):
        return commit
    return f"sd-scripts {commit[:10]}" if commit else "unknown"


def _from_tensors(entries: Mapping[str, tuple[Sequence[int], str]], out: Recovery) -> None:
    shape = network_shape(entries)
    if shape.rank is not None:
        if "network_dim" in out.values and out.values["network_dim"] != shape.rank:
            out.notes.append(f"ss_network_dim says {out.values['network_dim']} but the tensors have rank "
                             f"{shape.rank} (a resized LoRA?): the tensors' rank is used.")
        out.set("network_dim", shape.rank, "tensor shapes")
    if shape.conv_rank is not None and "conv_dim" not in out.values:
        out.set("conv_dim", shape.conv_rank, "tensor shapes")
    if shape.conv_rank is None and "conv_dim" not in out.values:
        out.set("conv_dim", None, "tensor shapes (no 3x3 conv modules)")
    if shape.has_unet:
        out.set("train_unet_only", not shape.has_text_encoder, "tensor keys (text-encoder modules or not)")
    if shape.has_text_encoder and not shape.has_unet:
        out.miss("network_train_text_encoder_only", "only the text encoder was trained; TrainingConfig has no "
                                                    "field for that (the U-Net would be trained too)", None)
    if shape.dtype in _SAVE_PRECISION:
        out.set("save_precision", _SAVE_PRECISION[shape.dtype], f"tensor dtype {shape.dtype}")


def _legacy_hash(path: str) -> str | None:
    from .hashes import model_hash_legacy
    try:
        return model_hash_legacy(path)
    except OSError:
        return None


def find_base_model(md: Mapping[str, str], checkpoints: Iterable[str | os.PathLike]) -> tuple[str | None, str]:
    """(the checkpoint file, how it was matched) among `checkpoints`, or (None, why not). By file
    name first, confirmed by A1111's short hash (ss_sd_model_hash, 64 KiB read); then by that
    hash alone (a renamed file). The full sha256 (ss_new_sd_model_hash) would read GBs: not used."""
    name = raw(md, "ss_sd_model_name")
    short = raw(md, "ss_sd_model_hash")
    files = [str(p) for p in checkpoints if os.path.isfile(p)]
    if not name:
        return None, "the metadata names no base model (ss_sd_model_name)"
    base = os.path.basename(name.replace("\\", "/"))
    named = [p for p in files if os.path.basename(p).lower() == base.lower()]
    for p in named:
        if not short or _legacy_hash(p) == short:
            return p, "file name" + (" and hash" if short else "")
    if short:
        for p in files[:MAX_HASHED_CANDIDATES]:
            if p not in named and _legacy_hash(p) == short:
                return p, f"hash {short} (the file was renamed from {base})"
    if named:
        return named[0], f"file name only: its hash differs from the LoRA's ({short}), so it may be another version"
    where = f"among the {len(files)} checkpoints searched" if files else "(no checkpoint list to search)"
    return None, f"no checkpoint named {base!r}" + (f" or with hash {short}" if short else "") + f" {where}"


def _settle(values: dict, out: Recovery) -> TrainingConfig:
    """A TrainingConfig from the recovered values: a field the others contradict is dropped (and
    listed) until TrainingConfig accepts the rest."""
    data = {**values, "base_model": values.get("base_model") or _PLACEHOLDER_BASE}
    for _ in range(len(data) + 1):
        try:
            return TrainingConfig.from_dict(data)
        except ConfigError as exc:
            bad = exc.field if exc.field in data and exc.field not in ("name", "base_model") else None
            if bad is None:   # a contradiction no single field explains: keep only what is safe
                out.notes.append(f"The recovered values do not make a valid config ({exc}); defaults are used.")
                keep = {k: data[k] for k in ("name", "base_model")}
                out.values = {k: v for k, v in out.values.items() if k in keep}
                out.sources = {k: v for k, v in out.sources.items() if k in keep}
                return TrainingConfig.from_dict(keep)
            out.miss(bad, f"TrainingConfig does not accept it with the other values: {exc}",
                     out.sources.get(bad), data[bad])
            data.pop(bad)
            out.values.pop(bad, None)
            out.sources.pop(bad, None)
    raise AssertionError("unreachable")


def reproduce_metadata(md: Mapping[str, str], entries: Mapping[str, tuple[Sequence[int], str]] | None = None, *,
                       source: str = "<metadata>", mode: str = "again", lora_path: str | None = None,
                       checkpoints: Iterable[str | os.PathLike] = (), base_model: str | None = None,
                       dataset_roots: Sequence[str | os.PathLike] = ()) -> Reproduction:
    """The reproduction from a metadata dict (+ read_lora_header's key -> (shape, dtype), if known).
    `base_model` given: used as is; else looked up in `checkpoints`. `dataset_roots` are searched
    for the image folders by name. mode "continue" needs `lora_path` (the weights to start from)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    md = {str(k): str(v) for k, v in md.items()}
    out = Recovery()
    if not any(k.startswith("ss_") for k in md):
        out.notes.append("The file has no ss_* training metadata (saved with --no_metadata or by another tool): "
                         "only the network shape could be read.")
    model_type = _model_type(md, out)
    K.simple_keys(md, out, folder_layout="ss_datasets" not in md)
    K.adafactor_schedule(md, out)
    K.text_encoder_lr(md, out)
    K.optimizer(md, out)
    K.network(md, out)
    guess = dataset(md, out, dataset_roots)
    K.steps_and_epochs(md, out)
    if entries:
        _from_tensors(entries, out)
    name = raw(md, "ss_output_name") or (Path(source).stem if source != "<metadata>" else None)
    if not name or not out.set("name", name, "ss_output_name" if raw(md, "ss_output_name") else "file name"):
        out.values["name"] = "reproduced"
    if out.values.get("lr_scheduler") and out.values["lr_scheduler"] not in BUILTIN_SCHEDULERS:
        out.set("engine", "kohya", "ss_lr_scheduler")
        out.notes.append(f"lr_scheduler {out.values['lr_scheduler']!r} is sd-scripts only: engine set to kohya.")
    if base_model:
        out.set("base_model", base_model, "given")
    else:
        found, how = find_base_model(md, checkpoints)
        if found:
            out.set("base_model", found, f"ss_sd_model_name ({how})")
            if how.startswith("file name only"):
                out.notes.append(f"Base model {found}: matched by {how}.")
        else:
            out.miss("base_model", how, "ss_sd_model_name", raw(md, "ss_sd_model_name"))
    if mode == "continue":
        _continue(out, lora_path)
    cfg = _settle(out.values, out)
    config = cfg.to_dict()
    if "base_model" not in out.values:
        config["base_model"] = None
    skip = {"base_model", "preset", "name"}
    defaults = [f.name for f in dataclasses.fields(TrainingConfig) if f.name not in out.values and f.name not in skip]
    return Reproduction(source=source, mode=mode, config=config, recovered=dict(out.sources),
                        not_recovered=out.missing, notes=out.notes, defaults=defaults, dataset=guess,
                        model_type=model_type, made_by=_made_by(md))


def _continue(out: Recovery, lora_path: str | None) -> None:
    if not lora_path:
        out.miss("network_weights", "continuing needs the LoRA file itself (not only its metadata)", None)
        return
    if any(m.field == "network_module" for m in out.missing):
        out.miss("network_weights", "the LoRA is not a networks.lora network: its weights cannot be loaded",
                 "ss_network_module")
        return
    path = str(Path(lora_path).resolve())
    problem = network_weights_problem(path, out.values.get("network_dim", 32), out.values.get("conv_dim"))
    if problem:
        out.miss("network_weights", problem, None, path)
        return
    out.set("network_weights", path, "this file")
    out.notes.append("Continue: training starts from this LoRA's weights with its rank and alpha; the learning "
                     "rate schedule starts again (lower learning_rate or max_train_steps for a short top-up).")


def hints_from_jobs(jobs: Iterable[Any], lora_path: str | os.PathLike) -> tuple[list[Path], list[str]]:
    """From the job store (jobs.store.Job-like objects): the prepared image folders of the job that
    installed `lora_path` (searched first for its dataset) and the base models jobs trained on."""
    real = os.path.realpath(lora_path)
    roots: list[Path] = []
    bases: list[str] = []
    for job in reversed(list(jobs)):
        installed = getattr(job, "installed_path", None)
        if installed and os.path.realpath(installed) == real:
            roots.append(Path(job.job_dir) / "dataset" / "img")
        base = (getattr(job, "config", None) or {}).get("base_model")
        if isinstance(base, str) and base not in bases:
            bases.append(base)
    return roots, bases


def scan_checkpoints(folders: Iterable[str | os.PathLike], limit: int = 5000) -> list[str]:
    """Every .safetensors / .ckpt under `folders` (hidden folders and links to folders skipped)."""
    out: list[str] = []
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            out += [os.path.join(dirpath, n) for n in sorted(filenames) if n.lower().endswith(CHECKPOINT_SUFFIXES)]
            if len(out) >= limit:
                return out[:limit]
    return out


def default_preset(model_type: str | None) -> str:
    """The preset a `train` command line names (only a label there: every differing field is --set)."""
    from lib_lora_trainer.config.presets import list_presets

    for p in list_presets():
        if model_type in p.model_types and p.for_gpu:
            return p.id
    return "sd15-portrait"


def reproduce(path: str | os.PathLike, *, mode: str = "again", checkpoints: Iterable[str | os.PathLike] = (),
              base_model: str | None = None, dataset_roots: Sequence[str | os.PathLike] = ()) -> Reproduction:
    """The reproduction of the LoRA file at `path` (its header only is read)."""
    from .io import read_lora_header

    entries, md = read_lora_header(path)
    return reproduce_metadata(md, entries, source=str(path), mode=mode, lora_path=str(path),
                              checkpoints=checkpoints, base_model=base_model, dataset_roots=dataset_roots)
