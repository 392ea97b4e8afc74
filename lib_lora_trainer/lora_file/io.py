"""Reading and writing kohya-format LoRA .safetensors files.

Writing follows networks/lora.py save_weights: optional cast of every tensor, then the two
additional-networks hashes (sshs_*) computed from a serialisation that carries only the ss_*
metadata, then the real file. The file appears at its path atomically or not at all.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from lib_lora_trainer import atomic

from .hashes import addnet_hash_legacy, addnet_hash_safetensors

if TYPE_CHECKING:  # torch is imported where tensors are handled: reading a header needs no torch,
    import torch   # so the UI process (e.g. a gradio-4 UI environment without torch) can show a LoRA

# A LoRA header is a few hundred KB; refuse absurd lengths before allocating them.
MAX_HEADER_BYTES = 100 * 1024 * 1024


def _prepare(tensors: Mapping[str, torch.Tensor], save_dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    out = {}
    for key, t in tensors.items():
        t = t.detach().to("cpu")
        if save_dtype is not None:
            # sd-scripts casts every entry, the int64 `.alpha` scalars included.
            t = t.to(save_dtype)
        out[key] = t.contiguous()
    return out


def addnet_hashes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> tuple[str, str]:
    """(sshs_model_hash, sshs_legacy_hash) as sd-scripts' precalculate_safetensors_hashes.

    Only ss_* metadata goes into the hashed serialisation, so user-editable keys (modelspec.*,
    sshs_*) never change it. The legacy hash depends on that header's length, so it generally
    differs from the legacy hash of the final file; that is how sd-scripts does it.
    """
    import safetensors.torch

    ss_only = {k: v for k, v in metadata.items() if k.startswith("ss_")}
    data = safetensors.torch.save(dict(tensors), ss_only)
    return addnet_hash_safetensors(data), addnet_hash_legacy(data)


def _check_metadata(metadata: Mapping[str, str]) -> None:
    bad = [k for k, v in metadata.items() if not isinstance(k, str) or not isinstance(v, str)]
    if bad:
        raise TypeError(f"metadata keys and values must be str: {bad[:5]}")


def save_lora(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor],
              metadata: Mapping[str, str], save_dtype: torch.dtype | None = None) -> None:
    import safetensors.torch

    _check_metadata(metadata)
    state = _prepare(tensors, save_dtype)
    md = dict(metadata)
    md["sshs_model_hash"], md["sshs_legacy_hash"] = addnet_hashes(state, md)
    data = safetensors.torch.save(state, md)
    atomic.write_bytes(path, data)


def _read_header(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
            if len(head) < 8:
                raise ValueError(f"{path}: not a safetensors file (only {len(head)} bytes)")
            (n,) = struct.unpack("<Q", head)
            if n < 2 or n > MAX_HEADER_BYTES or 8 + n > size:
                raise ValueError(f"{path}: not a safetensors file (bad header length {n})")
            raw = f.read(n)
    except IsADirectoryError:
        raise ValueError(f"{path}: is a folder, not a safetensors file") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (header is not a JSON object)")
    return header


def _is_lora_key(key: str) -> bool:
    # kohya names every module lora_unet_* / lora_te_* / lora_te1_* / lora_te2_*.
    return key.startswith("lora_") or ".lora_down." in key or ".lora_up." in key


def read_lora_header(path: str | os.PathLike) -> tuple[dict[str, tuple[list[int], str]], dict[str, str]]:
    """key -> (shape, dtype code such as "F32"), and the metadata; reads no tensor data."""
    path = Path(path)
    header = _read_header(path)
    metadata = header.pop("__metadata__", None) or {}
    entries: dict[str, tuple[list[int], str]] = {}
    for key, info in header.items():
        if not isinstance(info, dict) or "dtype" not in info or "shape" not in info:
            raise ValueError(f"{path}: not a safetensors file (bad entry for {key!r})")
        entries[key] = (list(info["shape"]), str(info["dtype"]))
    if not any(_is_lora_key(k) for k in entries):
        raise ValueError(f"{path}: a safetensors file but not a LoRA (no lora_* tensors)")
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: bad __metadata__ in safetensors header")
    return entries, metadata


def load_lora(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    import safetensors.torch

    _, metadata = read_lora_header(path)  # clear errors before safetensors' own
    try:
        tensors = safetensors.torch.load_file(os.fspath(path), device="cpu")
    except Exception as e:  # safetensors raises its own error type for truncated files
        raise ValueError(f"{path}: unreadable safetensors file ({e})") from e
    return tensors, metadata
