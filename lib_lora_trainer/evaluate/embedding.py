"""CLIP-I, CLIP-T and DINO scores, when their weights are on this disk.

Nothing is downloaded here: the scorer looks for a transformers CLIPModel folder and a DINOv2
folder (LORA_TRAINER_CLIP_DIR / LORA_TRAINER_DINO_DIR, else <data dir>/scorers/clip and
/dino). Missing weights make the scorer unavailable with a reason, never a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


def _default_dir(kind: str) -> Path:
    from lib_lora_trainer.paths import data_dir

    env = os.environ.get(f"LORA_TRAINER_{kind.upper()}_DIR")
    return Path(env) if env else data_dir() / "scorers" / kind


def _has_weights(folder: Path) -> bool:
    weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    return (folder / "config.json").is_file() and weights


def _cosine_mean(a: torch.Tensor, b: torch.Tensor) -> float:
    a = torch.nn.functional.normalize(a.float(), dim=-1)
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    return round(float((a @ b.T).mean()), 4)


class EmbeddingScorer:
    name = "embeddings"

    def __init__(self, clip_dir: Path | None = None, dino_dir: Path | None = None):
        self.clip_dir = Path(clip_dir) if clip_dir else _default_dir("clip")
        self.dino_dir = Path(dino_dir) if dino_dir else _default_dir("dino")
        self._clip = self._dino = None
        self._dataset_cache: dict[str, torch.Tensor] = {}

    def unavailable_reason(self, ctx):
        if _has_weights(self.clip_dir) or _has_weights(self.dino_dir):
            return None
        return (f"CLIP-I/CLIP-T/DINO skipped: no weights in {self.clip_dir} or {self.dino_dir} "
                "(put a transformers CLIPModel / Dinov2Model folder there, or set LORA_TRAINER_CLIP_DIR / "
                "LORA_TRAINER_DINO_DIR)")

    def _load_clip(self):
        if self._clip is None and _has_weights(self.clip_dir):
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(str(self.clip_dir), local_files_only=True).eval()
            self._clip = (model, CLIPProcessor.from_pretrained(str(self.clip_dir), local_files_only=True))
        return self._clip

    def _load_dino(self):
        if self._dino is None and _has_weights(self.dino_dir):
            from transformers import AutoImageProcessor, AutoModel

            model = AutoModel.from_pretrained(str(self.dino_dir), local_files_only=True).eval()
            self._dino = (model, AutoImageProcessor.from_pretrained(str(self.dino_dir), local_files_only=True))
        return self._dino

    @torch.no_grad()
    def _clip_images(self, images):
        model, proc = self._load_clip()
        pixels = proc(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        return model.get_image_features(pixel_values=pixels)

    @torch.no_grad()
    def _dino_images(self, images):
        model, proc = self._load_dino()
        pixels = proc(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        return model(pixel_values=pixels).last_hidden_state[:, 0]  # CLS token

    def _dataset(self, kind: str, ctx, fn):
        if kind not in self._dataset_cache:
            self._dataset_cache[kind] = fn(ctx.dataset_images)
        return self._dataset_cache[kind]

    @torch.no_grad()
    def score(self, images, prompt, base_images, ctx):
        out = {}
        if self._load_clip() is not None:
            feats = self._clip_images(images)
            if ctx.dataset_images:
                out["clip_i"] = _cosine_mean(feats, self._dataset("clip", ctx, self._clip_images))
            model, proc = self._clip
            text = prompt.replace(ctx.trigger, "").strip(" ,") or prompt
            tokens = proc(text=[text], return_tensors="pt", padding=True, truncation=True)
            out["clip_t"] = _cosine_mean(feats, model.get_text_features(input_ids=tokens["input_ids"]))
        if self._load_dino() is not None and ctx.dataset_images:
            out["dino"] = _cosine_mean(self._dino_images(images), self._dataset("dino", ctx, self._dino_images))
        return out
