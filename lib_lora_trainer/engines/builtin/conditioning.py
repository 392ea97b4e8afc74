"""Captions -> the UNet's conditioning, as sd-scripts computes it for SD1/SD2 and SDXL.

max_token_length 150 / 225 (sd-scripts' long captions): the caption is tokenized to that length
plus BOS/EOS and cut into 75-token chunks; each chunk gets a BOS and a closing token and goes
through the text encoder as an ordinary 77-token sequence. The chunks' hidden states are joined
again without the inner BOS/EOS: 1 + 75 * n + 1 positions (152 for 150). SDXL's pooled output
is the first chunk's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Conditioning:
    hidden: torch.Tensor                  # encoder_hidden_states
    pooled: torch.Tensor | None = None    # SDXL: text_embeds for added_cond_kwargs


def tokenize(tokenizer, captions: list[str], device, max_token_length: int | None = None) -> torch.Tensor:
    """(batch, 77) ids; with max_token_length 150 / 225, (batch, chunks, 77)."""
    size = tokenizer.model_max_length
    if not max_token_length or max_token_length + 2 <= size:  # none or 75: the plain encoding
        return tokenizer(captions, padding="max_length", truncation=True, max_length=size,
                         return_tensors="pt").input_ids.to(device)
    ids = tokenizer(captions, padding="max_length", truncation=True, max_length=max_token_length + 2,
                    return_tensors="pt").input_ids
    width = size - 2
    chunks = []
    for start in range(1, ids.shape[1] - 1, width):
        # the whole sequence's last token closes every chunk: EOS, or the padding after it
        chunk = torch.cat([ids[:, :1], ids[:, start:start + width], ids[:, -1:]], dim=1)
        if tokenizer.pad_token_id != tokenizer.eos_token_id:
            chunk = _close_padded_chunk(chunk, tokenizer.eos_token_id, tokenizer.pad_token_id)
        chunks.append(chunk)
    return torch.stack(chunks, dim=1).to(device)


def _close_padded_chunk(chunk: torch.Tensor, eos: int, pad: int) -> torch.Tensor:
    """Tokenizers that pad with another token than EOS (SD2, SDXL's second): a chunk cut inside the
    caption would end without EOS, so its last token becomes EOS; an empty chunk (BOS then padding)
    becomes BOS, EOS, padding. That is what the encoders saw for ordinary 77-token captions."""
    chunk = chunk.clone()
    cut = (chunk[:, -2] != eos) & (chunk[:, -2] != pad)
    chunk[cut, -1] = eos
    chunk[chunk[:, 1] == pad, 1] = eos
    return chunk


def _flat(ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(batch, n, 77) -> (batch * n, 77) for the encoder, and n (1 for plain ids)."""
    if ids.dim() == 2:
        return ids, 1
    return ids.reshape(-1, ids.shape[-1]), ids.shape[1]


def join_chunks(hidden: torch.Tensor, n: int) -> torch.Tensor:
    """(batch * n, 77, d) -> (batch, 1 + 75 * n + 1, d): the first chunk's BOS, each chunk's 75 inner
    positions, the last chunk's closing position. Plain (n = 1) states pass through unchanged."""
    if n == 1:
        return hidden
    size = hidden.shape[1]
    h = hidden.reshape(hidden.shape[0] // n, n * size, hidden.shape[-1])
    parts = [h[:, :1]] + [h[:, k * size + 1:(k + 1) * size - 1] for k in range(n)] + [h[:, -1:]]
    return torch.cat(parts, dim=1)


def encode_sd(text_encoder, tokenizer, captions: list[str], clip_skip: int | None,
              max_token_length: int | None = None) -> Conditioning:
    ids, n = _flat(tokenize(tokenizer, captions, text_encoder.device, max_token_length))
    if not clip_skip or clip_skip == 1:
        return Conditioning(join_chunks(text_encoder(ids).last_hidden_state, n))
    # clip_skip N: the N-th layer from the end, through the final layer norm (sd-scripts, A1111).
    out = text_encoder(ids, output_hidden_states=True)
    hidden = out.hidden_states[-clip_skip]
    return Conditioning(join_chunks(final_layer_norm(text_encoder)(hidden), n))


def encode_sdxl(text_encoders, tokenizers, captions: list[str], max_token_length: int | None = None) -> Conditioning:
    """SDXL: penultimate layers of CLIP-L and bigG side by side; bigG's projected pooled output."""
    te1, te2 = text_encoders
    ids1, n = _flat(tokenize(tokenizers[0], captions, te1.device, max_token_length))
    ids2, _ = _flat(tokenize(tokenizers[1], captions, te2.device, max_token_length))
    h1 = join_chunks(te1(ids1, output_hidden_states=True).hidden_states[-2], n)
    out2 = te2(ids2, output_hidden_states=True)
    h2 = join_chunks(out2.hidden_states[-2], n)
    pooled = out2.text_embeds[::n]  # per caption, its first chunk's (sd-scripts)
    return Conditioning(torch.cat([h1, h2.to(h1.dtype)], dim=-1), pooled)


def sdxl_time_ids(original_hw, crop_tl, target_hw, device, dtype) -> torch.Tensor:
    """(orig h, orig w, crop top, crop left, target h, target w) per sample, as SDXL was trained."""
    rows = [list(o) + list(c) + list(t) for o, c, t in zip(original_hw, crop_tl, target_hw)]
    return torch.tensor(rows, device=device, dtype=dtype)


def final_layer_norm(text_encoder):
    return text_encoder.text_model.final_layer_norm if hasattr(text_encoder, "text_model") else \
        text_encoder.final_layer_norm
