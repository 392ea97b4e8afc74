"""A picture as the demo model can at best produce it: through its VAE and back.

Generated pictures are decoded latents, so they carry the VAE's blur and colour drift even when
the UNet gets everything right. The attribute reader learns from such round trips (else it
under-reads what the model did draw) and the reader bench reports its accuracy on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def load_vae(model_path: Path):
    """The VAE of an installed demo model file (loader files beside it), in eval mode."""
    from lib_lora_trainer.models.loading import load_components

    return load_components(model_path).vae.float().eval()


@torch.no_grad()
def vae_round_trip(vae, images: list[Image.Image], batch: int = 64) -> list[Image.Image]:
    """Encode (latent mean) and decode each picture; same size out as in."""
    out = []
    for i in range(0, len(images), batch):
        x = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images[i:i + batch]]))
        x = x.permute(0, 3, 1, 2).float() / 127.5 - 1
        y = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
        arr = ((y + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
        out += [Image.fromarray(a) for a in arr]
    return out
