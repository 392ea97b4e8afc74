"""A1111's user-metadata sidecar `<stem>.json` beside a LoRA, and reading any LoRA's details.

A1111 writes it with json.dump(indent=4, ensure_ascii=False); keys "description", "sd version",
"activation text" (added after the <lora:...> tag), "preferred weight" (0 means A1111's default),
"negative text", "notes". Forge Neo reads the same file.

"sd version" is what each host's Lora page filters on, and the two spell it differently:
- A1111 1.10 (extensions-builtin/Lora): SdVersion names SD1 / SD2 / SDXL / Unknown; any other value
  makes it use the version it detects from the file's metadata (ss_base_model_version "sdxl_*" ->
  SDXL, ss_v2 "True" -> SD2, else SD1), which our files always carry.
- Forge Neo (sd_forge_lora): its preset names "sd", "xl", "flux", ... / "Unknown"; any other value
  counts as Unknown, which is never filtered out.
So we write Neo's "sd" / "xl": Neo filters them by its preset, and A1111 falls back to the
metadata, which says the same. SD2 keeps A1111's "SD2" (Neo has no SD2 models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from lib_lora_trainer import atomic

SD_VERSIONS = {"sd1": "sd", "sd2": "SD2", "sdxl": "xl"}   # model type -> sidecar "sd version"


@dataclass
class Sidecar:
    description: str = ""
    sd_version: str = "Unknown"
    activation_text: str = ""
    preferred_weight: float = 0.0
    negative_text: str = ""
    notes: str = ""
    extra: dict = field(default_factory=dict)  # keys written by other tools are kept

    def to_json(self) -> dict:
        return {**self.extra, "description": self.description, "sd version": self.sd_version,
                "activation text": self.activation_text, "preferred weight": self.preferred_weight,
                "negative text": self.negative_text, "notes": self.notes}

    @classmethod
    def from_json(cls, data: dict) -> "Sidecar":
        known = {"description", "sd version", "activation text", "preferred weight", "negative text", "notes"}
        try:
            weight = float(data.get("preferred weight") or 0.0)
        except (TypeError, ValueError):
            weight = 0.0
        return cls(description=str(data.get("description", "")), sd_version=str(data.get("sd version", "Unknown")),
                   activation_text=str(data.get("activation text", "")), preferred_weight=weight,
                   negative_text=str(data.get("negative text", "")), notes=str(data.get("notes", "")),
                   extra={k: v for k, v in data.items() if k not in known})


def sidecar_path(lora_path: str | Path) -> Path:
    return Path(lora_path).with_suffix(".json")


def write_sidecar(lora_path: str | Path, sidecar: Sidecar) -> Path:
    path = sidecar_path(lora_path)
    atomic.write_text(path, json.dumps(sidecar.to_json(), indent=4, ensure_ascii=False))
    return path


def read_sidecar(lora_path: str | Path) -> Sidecar | None:
    path = sidecar_path(lora_path)
    try:
        return Sidecar.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return Sidecar(notes=f"(unreadable sidecar {path.name})")


def detect_sd_version(metadata: dict) -> str:
    """A1111's rule: sdxl_* base version -> SDXL; ss_v2 True -> SD2; other metadata -> SD1."""
    if str(metadata.get("ss_base_model_version", "")).startswith("sdxl_"):
        return "SDXL"
    if str(metadata.get("ss_v2", "")) == "True":
        return "SD2"
    return "SD1" if metadata else "Unknown"


@dataclass
class LoraDetails:
    path: str
    name: str
    size_bytes: int
    metadata: dict
    sidecar: Sidecar | None
    sd_version: str
    preview: str | None

    def to_dict(self) -> dict:
        return {"path": self.path, "name": self.name, "size_bytes": self.size_bytes, "sd_version": self.sd_version,
                "metadata": self.metadata, "sidecar": self.sidecar.to_json() if self.sidecar else None,
                "preview": self.preview, "prompt": self.prompt()}

    def prompt(self) -> str:
        """What "Send to txt2img" inserts: `<lora:name:weight>, activation text`."""
        weight = self.sidecar.preferred_weight if self.sidecar and self.sidecar.preferred_weight else 1.0
        text = f"<lora:{self.name}:{weight:g}>"
        if self.sidecar and self.sidecar.activation_text:
            text += f", {self.sidecar.activation_text}"
        return text


def read_lora_details(path: str | Path) -> LoraDetails:
    """Metadata (header only) + sidecar + preview of any kohya-style LoRA file."""
    from .io import read_lora_header

    path = Path(path)
    metadata: dict = {}
    if path.suffix.lower() == ".safetensors":
        _, metadata = read_lora_header(path)
    sidecar = read_sidecar(path)
    version = sidecar.sd_version if sidecar and sidecar.sd_version in ("SD1", "SD2", "SDXL") \
        else detect_sd_version(metadata)
    preview = next((str(p) for ext in ("png", "jpg", "jpeg", "webp")
                    for p in (path.with_suffix(f".{ext}"), path.with_suffix(f".preview.{ext}")) if p.is_file()), None)
    return LoraDetails(str(path), path.stem, path.stat().st_size, metadata, sidecar, version, preview)
