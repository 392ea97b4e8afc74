"""What a LoRA file's tensors say about the network that made it: ranks, conv ranks, the model
family. Header only (no torch), so the UI process can check a `network_weights` file before a job
is written; used by config.check_for_model and by reproduce."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

_SDXL_UNET = ("lora_unet_input_blocks", "lora_unet_middle_block", "lora_unet_output_blocks")
_SD_UNET = ("lora_unet_down_blocks", "lora_unet_mid_block", "lora_unet_up_blocks")


@dataclass(frozen=True)
class NetworkShape:
    rank: int | None           # the most common rank of linear / 1x1 modules (network_dim)
    conv_rank: int | None      # the most common rank of 3x3 conv modules (conv_dim, LoCon); None: none
    ranks: tuple[int, ...]     # every distinct linear / 1x1 rank (more than one: a resized or odd file)
    has_unet: bool
    has_text_encoder: bool
    family: str | None         # "sdxl" | "sd" (SD1/SD2) | None (cannot tell)
    dtype: str | None          # the safetensors dtype code of the lora_down weights (F16, BF16, F32)


def network_shape(entries: Mapping[str, tuple[Sequence[int], str]]) -> NetworkShape:
    """From read_lora_header's key -> (shape, dtype)."""
    ranks: Counter = Counter()
    conv: Counter = Counter()
    dtypes: Counter = Counter()
    for key, (shape, dtype) in entries.items():
        if not key.endswith(".lora_down.weight") or not shape:
            continue
        dtypes[dtype] += 1
        if len(shape) == 4 and tuple(shape[2:]) != (1, 1):
            conv[int(shape[0])] += 1
        else:
            ranks[int(shape[0])] += 1
    keys = list(entries)
    te1 = any(k.startswith(("lora_te1_", "lora_te2_")) for k in keys)
    te = any(k.startswith("lora_te_") for k in keys)
    if te1 or any(k.startswith(_SDXL_UNET) for k in keys):
        family = "sdxl"
    elif te or any(k.startswith(_SD_UNET) for k in keys):
        family = "sd"
    else:
        family = None
    return NetworkShape(
        rank=ranks.most_common(1)[0][0] if ranks else None,
        conv_rank=conv.most_common(1)[0][0] if conv else None,
        ranks=tuple(sorted(ranks)), has_unet=any(k.startswith("lora_unet_") for k in keys),
        has_text_encoder=te or te1, family=family,
        dtype=dtypes.most_common(1)[0][0] if dtypes else None)


def network_weights_problem(path: str | os.PathLike, network_dim: int, conv_dim: int | None,
                            model_type: str | None = None) -> str | None:
    """Why `path` cannot be the starting weights of a network_dim / conv_dim LoRA for
    `model_type` (sd1 / sd2 / sdxl), or None when it can."""
    from .io import read_lora_header

    p = Path(path)
    if not p.is_file():
        return f"network_weights {str(path)!r} does not exist (or is not a file): give an existing LoRA " \
               ".safetensors, or leave it empty to start fresh."
    try:
        entries, _ = read_lora_header(p)
    except (OSError, ValueError) as exc:
        return f"network_weights: {exc}"
    shape = network_shape(entries)
    if shape.rank is None and shape.conv_rank is None:
        return f"network_weights {p.name}: no lora_down weights in the file (not a kohya LoRA?)."
    if len(shape.ranks) > 1:
        return (f"network_weights {p.name} has modules of several ranks ({', '.join(map(str, shape.ranks))}); "
                f"a network of one rank cannot start from it.")
    if shape.rank is not None and shape.rank != network_dim:
        return (f"network_weights {p.name} has rank {shape.rank} but network_dim is {network_dim}: set "
                f"network_dim to {shape.rank} (the rank the LoRA was trained with).")
    if shape.conv_rank is not None and conv_dim is None:
        return (f"network_weights {p.name} has 3x3 conv modules of rank {shape.conv_rank} (LoCon) but conv_dim "
                f"is empty: set conv_dim to {shape.conv_rank}.")
    if shape.conv_rank is not None and conv_dim is not None and shape.conv_rank != conv_dim:
        return (f"network_weights {p.name} has conv rank {shape.conv_rank} but conv_dim is {conv_dim}: set "
                f"conv_dim to {shape.conv_rank}.")
    if model_type and shape.family and (shape.family == "sdxl") != (model_type == "sdxl"):
        made = "an SDXL" if shape.family == "sdxl" else "an SD1/SD2"
        return (f"network_weights {p.name} is {made} LoRA but the base model is {model_type.upper()}: pick a "
                f"base model of the LoRA's family.")
    return None
