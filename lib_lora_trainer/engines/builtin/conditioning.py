"""Captions -> the UNet's conditioning, as sd-scripts computes it for SD1/SD2 and SDXL."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Conditioning:
    hidden: torch.Tensor                  # encoder_hidden_states
    pooled: torch.Tensor | None = None    # SDXL: text_embeds for added_cond_kwargs


def tokenize(tokenizer, captions: list[str], device) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                     return_tensors="pt").input_ids.to(device)


def encode_sd(text_encoder, tokenizer, captions: list[str], clip_skip: int | None) -> Conditioning:
    ids = tokenize(tokenizer, captions, text_encoder.device)
    if not clip_skip or clip_skip == 1:
        return Conditioning(text_encoder(ids).last_hidden_state)
    # clip_skip N: the N-th layer from the end, through the final layer norm (sd-scripts, A1111).
    out = text_encoder(ids, output_hidden_states=True)
    hidden = out.hidden_states[-clip_skip]
    return Conditioning(final_layer_norm(text_encoder)(hidden))


def encode_sdxl(text_encoders, tokenizers, captions: list[str]) -> Conditioning:
    """SDXL: penultimate layers of CLIP-L and bigG side by side; bigG's projected pooled output."""
    te1, te2 = text_encoders
    ids1 = tokenize(tokenizers[0], captions, te1.device)
    ids2 = tokenize(tokenizers[1], captions, te2.device)
    h1 = te1(ids1, output_hidden_states=True).hidden_states[-2]
    out2 = te2(ids2, output_hidden_states=True)
    h2 = out2.hidden_states[-2]
    return Conditioning(torch.cat([h1, h2.to(h1.dtype)], dim=-1), out2.text_embeds)


def sdxl_time_ids(original_hw, crop_tl, target_hw, device, dtype) -> torch.Tensor:
    """(orig h, orig w, crop top, crop left, target h, target w) per sample, as SDXL was trained."""
    rows = [list(o) + list(c) + list(t) for o, c, t in zip(original_hw, crop_tl, target_hw)]
    return torch.tensor(rows, device=device, dtype=dtype)


def final_layer_norm(text_encoder):
    return text_encoder.text_model.final_layer_norm if hasattr(text_encoder, "text_model") else \
        text_encoder.final_layer_norm
