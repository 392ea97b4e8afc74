"""Putting a finished LoRA where the host lists it (A1111: cmd_opts.lora_dir) with its sidecar."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from lib_lora_trainer import atomic
from lib_lora_trainer.lora_file.sidecar import SD_VERSIONS, Sidecar, write_sidecar

_NAME = re.compile(r"^[^/\\\x00:*?\"<>|]+$")


class InstallError(ValueError):
    pass


def validate_lora_name(name: str) -> str:
    """A LoRA name becomes a file name and a `<lora:name:w>` tag: keep it plain."""
    if not isinstance(name, str) or not name.strip():
        raise InstallError("the LoRA name is empty: give a name such as 'VadymPanchenko_v1'.")
    name = name.strip()
    if "\x00" in name or "/" in name or "\\" in name or ".." in name or not _NAME.match(name):
        raise InstallError(f"the LoRA name {name!r} contains characters that are not allowed in a file name "
                           "(/ \\ .. : * ? \" < > | NUL): use letters, digits, '-' and '_'.")
    if name.startswith(".") or len(name) > 100:
        raise InstallError(f"the LoRA name {name!r} must not start with '.' and must be under 100 characters.")
    if any(c in name for c in ",>"):
        raise InstallError(f"the LoRA name {name!r} contains ',' or '>', which break A1111's <lora:...> tags.")
    return name


def free_name(lora_dir: Path, name: str) -> str:
    """`name`, or `name_v2`, `name_v3`... : an existing LoRA is never overwritten silently."""
    if not (lora_dir / f"{name}.safetensors").exists():
        return name
    base = re.sub(r"_v\d+$", "", name)
    n = 2
    while (lora_dir / f"{base}_v{n}.safetensors").exists():
        n += 1
    return f"{base}_v{n}"


def install_lora(src: str | Path, lora_dir: str | Path, name: str, *, model_type: str, trigger: str | None,
                 preferred_weight: float = 1.0, notes: str = "", overwrite: bool = False,
                 description: str = "") -> Path:
    """Copy atomically as `<lora_dir>/<name>.safetensors` (or the next free `_vN` name) + sidecar."""
    name = validate_lora_name(name)
    lora_dir = Path(lora_dir)
    lora_dir.mkdir(parents=True, exist_ok=True)
    final_name = name if overwrite else free_name(lora_dir, name)
    dest = lora_dir / f"{final_name}.safetensors"
    if dest.resolve().parent != lora_dir.resolve():
        raise InstallError(f"{dest} would be outside the Lora folder {lora_dir}")
    with atomic.atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    write_sidecar(dest, Sidecar(description=description, sd_version=SD_VERSIONS.get(model_type, "Unknown"),
                                activation_text=trigger or "", preferred_weight=preferred_weight, notes=notes))
    return dest


def install_notes(*, base_model: str, steps: int, images: int, engine: str, when: float | None = None) -> str:
    return (f"Trained with sd-webui-lora-trainer ({engine} engine) on {Path(base_model).name}: {steps} steps, "
            f"{images} images, {time.strftime('%Y-%m-%d %H:%M', time.localtime(when or time.time()))}.")
