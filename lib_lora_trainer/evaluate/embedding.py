"""CLIP-I, CLIP-T and DINO scores. The weights are looked for in local folders and, when the user
allowed it, downloaded there on first use (scorer_weights.py). Missing weights make the scorer
unavailable with a reason, never a failure.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .scorer_weights import ensure, has_weights, model_dir


def _features(out) -> torch.Tensor:
    """get_image/text_features: a tensor in transformers 4 (A1111's 4.30), an output whose
    pooler_output holds the projected features in transformers 5 (the trainer environment)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _cosine_mean(a: torch.Tensor, b: torch.Tensor) -> float:
    a = torch.nn.functional.normalize(a.float(), dim=-1)
    b = torch.nn.functional.normalize(b.float(), dim=-1)
    return round(float((a @ b.T).mean()), 4)


class EmbeddingScorer:
    name = "embeddings"

    def __init__(self, clip_dir: Path | None = None, dino_dir: Path | None = None, allow_download: bool = False,
                 say=print):
        self.clip_dir = Path(clip_dir) if clip_dir else model_dir("clip")
        self.dino_dir = Path(dino_dir) if dino_dir else model_dir("dino")
        self.allow_download, self.say = allow_download, say
        self._clip = self._dino = None
        self._dataset_cache: dict[str, torch.Tensor] = {}

    def unavailable_reason(self, ctx):
        reasons = [r for r in (ensure("clip", self.clip_dir, self.allow_download, self.say),
                               ensure("dino", self.dino_dir, self.allow_download, self.say)) if r]
        if len(reasons) < 2:
            if reasons:
                ctx.notes["embeddings"] = f"partly skipped: {reasons[0]}"
            return None
        return "CLIP-I/CLIP-T/DINO skipped: " + "; ".join(reasons)

    def _load_clip(self):
        if self._clip is None and has_weights(self.clip_dir):
            from transformers import CLIPModel, CLIPProcessor

            model = CLIPModel.from_pretrained(str(self.clip_dir), local_files_only=True).eval()
            self._clip = (model, CLIPProcessor.from_pretrained(str(self.clip_dir), local_files_only=True))
        return self._clip

    def _load_dino(self):
        if self._dino is None and has_weights(self.dino_dir):
            from transformers import AutoImageProcessor, AutoModel

            model = AutoModel.from_pretrained(str(self.dino_dir), local_files_only=True).eval()
            self._dino = (model, AutoImageProcessor.from_pretrained(str(self.dino_dir), local_files_only=True))
        return self._dino

    @torch.no_grad()
    def _clip_images(self, images):
        model, proc = self._load_clip()
        pixels = proc(images=[im.convert("RGB") for im in images], return_tensors="pt")["pixel_values"]
        return _features(model.get_image_features(pixel_values=pixels))

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
            out["clip_t"] = _cosine_mean(feats, _features(model.get_text_features(input_ids=tokens["input_ids"])))
        if self._load_dino() is not None and ctx.dataset_images:
            out["dino"] = _cosine_mean(self._dino_images(images), self._dataset("dino", ctx, self._dino_images))
        return out
