"""LoRA on the UNet and text encoders with peft, named and saved exactly as sd-scripts' networks.lora.

Module choice mirrors networks.lora: every Linear and 1x1 Conv2d inside Transformer2DModel
(UNet) and CLIPAttention / CLIPMLP (text encoders); with conv_dim also the 3x3 convs (and the
Linear / 1x1 layers) of ResnetBlock2D, Downsample2D and Upsample2D. peft's LoRA equals kohya's:
down = kaiming-uniform, up = zeros, scale = alpha / rank (alpha 0 means alpha = rank, as there).
network_dropout goes where networks.lora puts it: on the down projection's output, in training
only (peft's own lora_dropout would act on the input, so it stays 0 and a hook does it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

UNET_TARGETS = ("Transformer2DModel",)
UNET_CONV_TARGETS = ("ResnetBlock2D", "Downsample2D", "Upsample2D")
TE_TARGETS = ("CLIPAttention", "CLIPSdpaAttention", "CLIPMLP")
ADAPTER = "default"


@dataclass(frozen=True)
class LoraModule:
    path: str        # module path inside our torch model
    kohya_name: str  # e.g. lora_unet_down_blocks_0_attentions_0_proj_in
    rank: int
    alpha: int | float
    is_conv3x3: bool


def _candidates(model: nn.Module, targets: tuple[str, ...]):
    seen = set()
    for name, module in model.named_modules():
        if type(module).__name__ not in targets:
            continue
        for child_name, child in module.named_modules():
            path = f"{name}.{child_name}" if child_name else name
            if path in seen or not isinstance(child, (nn.Linear, nn.Conv2d)):
                continue
            seen.add(path)
            yield path, child


def kohya_alpha(alpha, rank: int):
    """networks.lora's rule: an alpha of 0 (or none) is the rank itself, i.e. scale 1, not scale 0
    (which would train nothing). The file's .alpha tensor then holds the rank."""
    return rank if alpha is None or alpha == 0 else alpha


def select_modules(model: nn.Module, prefix: str, name_fn: Callable[[str], str], rank: int, alpha,
                   conv_rank: int | None = None, conv_alpha=None, is_unet: bool = False) -> list[LoraModule]:
    targets = UNET_TARGETS + (UNET_CONV_TARGETS if conv_rank else ()) if is_unet else TE_TARGETS
    out = []
    for path, child in _candidates(model, targets):
        conv3 = isinstance(child, nn.Conv2d) and child.kernel_size != (1, 1)
        if conv3 and not conv_rank:
            continue
        r, a = (conv_rank, conv_alpha) if conv3 else (rank, alpha)
        out.append(LoraModule(path, f"{prefix}_{name_fn(path).replace('.', '_')}", r, kohya_alpha(a, r), conv3))
    return out


def text_encoder_name(path: str) -> str:
    """transformers >= 5.6 drops `text_model.` from CLIPTextModel paths; kohya names keep it."""
    return path if path.startswith("text_model.") else f"text_model.{path}"


def inject(model: nn.Module, modules: list[LoraModule], dropout: float | None) -> None:
    """Add LoRA layers in place (the model keeps its class, so diffusers' forward is unchanged)."""
    from peft import LoraConfig, inject_adapter_in_model

    if not modules:
        return
    base = modules[0]
    rank_pattern = {re.escape(m.path): m.rank for m in modules if m.rank != base.rank}
    alpha_pattern = {re.escape(m.path): m.alpha for m in modules if m.alpha != base.alpha}
    config = LoraConfig(r=base.rank, lora_alpha=base.alpha, target_modules=[m.path for m in modules],
                        rank_pattern=rank_pattern, alpha_pattern=alpha_pattern,
                        lora_dropout=0.0, init_lora_weights=True)
    inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    if dropout:
        for m in modules:
            model.get_submodule(m.path).lora_A[ADAPTER].register_forward_hook(_neuron_dropout(float(dropout)))
    for m in modules:  # fail loudly if peft chose a different rank or scale than kohya would
        layer = model.get_submodule(m.path)
        if layer.r[ADAPTER] != m.rank or abs(layer.scaling[ADAPTER] - m.alpha / m.rank) > 1e-9:
            raise RuntimeError(f"LoRA on {m.path}: rank {layer.r[ADAPTER]}, scale {layer.scaling[ADAPTER]}; "
                               f"expected {m.rank}, {m.alpha / m.rank}")


def _neuron_dropout(p: float):
    """Dropout on lora_down's output while the module trains (sd-scripts' neuron dropout)."""
    def hook(module, inputs, output):
        return F.dropout(output, p=p, training=module.training)
    return hook


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for n, p in model.named_parameters() if ".lora_A." in n or ".lora_B." in n]


def state_dict_kohya(model: nn.Module, modules: list[LoraModule]) -> dict[str, torch.Tensor]:
    out = {}
    for m in modules:
        layer = model.get_submodule(m.path)
        out[f"{m.kohya_name}.lora_down.weight"] = layer.lora_A[ADAPTER].weight.detach().float().cpu().clone()
        out[f"{m.kohya_name}.lora_up.weight"] = layer.lora_B[ADAPTER].weight.detach().float().cpu().clone()
        # sd-scripts stores torch.tensor(alpha): int64 for an int alpha, float32 for a float.
        out[f"{m.kohya_name}.alpha"] = torch.tensor(m.alpha)
    return out


def load_kohya_weights(model: nn.Module, modules: list[LoraModule], tensors: dict[str, torch.Tensor],
                       source: str) -> int:
    """network_weights: start from an existing LoRA with the same modules and ranks."""
    loaded = 0
    for m in modules:
        down, up = tensors.get(f"{m.kohya_name}.lora_down.weight"), tensors.get(f"{m.kohya_name}.lora_up.weight")
        if down is None or up is None:
            continue
        layer = model.get_submodule(m.path)
        a, b = layer.lora_A[ADAPTER].weight, layer.lora_B[ADAPTER].weight
        if down.shape != a.shape or up.shape != b.shape:
            raise ValueError(f"network_weights {source}: {m.kohya_name} has shape {tuple(down.shape)}, this "
                             f"network needs {tuple(a.shape)}; use the same network_dim/conv_dim it was trained with.")
        with torch.no_grad():
            a.copy_(down.to(a.dtype))
            b.copy_(up.to(b.dtype))
        loaded += 1
    if loaded == 0:
        raise ValueError(f"network_weights {source}: no module of this network found in the file "
                         "(a LoRA for another model type?).")
    return loaded
