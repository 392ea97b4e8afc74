"""Pluggable scores. A Scorer says whether it can run here (and why not), then scores the pictures
of one cell. Always available offline: image statistics and, for LoRAs of the demo world, the
demo attribute reader. CLIP-I / CLIP-T / DINO run when their weights are on disk (embedding.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass
class EvalContext:
    trigger: str
    dataset_images: list[Image.Image]                 # what the LoRA was trained on (or a sample)
    holdout_images: list[Image.Image] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)  # filled by scorers that can read one
    notes: dict[str, str] = field(default_factory=dict)     # scorer -> what it used and found (in the report)
    _histograms: dict = field(default_factory=dict, repr=False)

    def histogram(self, which: str) -> np.ndarray:
        """Colour histogram of the dataset or holdout pictures, computed once per evaluation."""
        if which not in self._histograms:
            images = self.dataset_images if which == "dataset" else self.holdout_images
            self._histograms[which] = colour_histogram(images)
        return self._histograms[which]


class Scorer(Protocol):
    name: str

    def unavailable_reason(self, ctx: EvalContext) -> str | None: ...

    def score(self, images: list[Image.Image], prompt: str, base_images: list[Image.Image],
              ctx: EvalContext) -> dict[str, float]: ...


def _arrays(images) -> np.ndarray:
    return np.stack([np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0 for im in images])


def colour_histogram(images, bins: int = 8) -> np.ndarray:
    a = (_arrays(images) * (bins - 1e-6)).astype(np.int64)
    idx = a[..., 0] * bins * bins + a[..., 1] * bins + a[..., 2]
    hist = np.bincount(idx.ravel(), minlength=bins ** 3).astype(np.float64)
    return hist / hist.sum()


def laplacian_variance(img: Image.Image) -> float:
    g = np.asarray(img.convert("L"), dtype=np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


class ImageStatsScorer:
    """Model-free numbers: how much the LoRA changed the picture (vs. the same seed at weight 0),
    how close its colours are to the dataset's (histogram intersection, 0..1), sharpness,
    saturation, and how different the seeds are from each other (collapse shows as ~0)."""

    name = "image_stats"

    def unavailable_reason(self, ctx):
        return None

    def score(self, images, prompt, base_images, ctx):
        a = _arrays(images)
        out = {
            "change_vs_base": round(float(np.abs(a - _arrays(base_images)).mean()), 4) if base_images else 0.0,
            "sharpness": round(float(np.mean([laplacian_variance(im) for im in images])), 2),
            "saturation": round(float((a.max(-1) - a.min(-1)).mean()), 4),
            "seed_diversity": round(float(np.abs(a[:, None] - a[None]).mean() * len(a) / max(1, len(a) - 1)), 4)
            if len(a) > 1 else 0.0,
        }
        h = colour_histogram(images)
        for which, pictures in (("dataset", ctx.dataset_images), ("holdout", ctx.holdout_images)):
            if pictures:
                out[f"{which}_colour_similarity"] = round(float(np.minimum(h, ctx.histogram(which)).sum()), 4)
        return out


class DemoWorldScorer:
    """For LoRAs trained on demo-world pictures (the embedded demo model): the attribute reader
    reads the character's identity off the dataset (attributes that agree on >= 80% of it), then
    scores generated pictures: `concept` = mean probability of that identity, `prompt_following` =
    mean probability of the other attributes the prompt names."""

    name = "demo_world"
    AGREEMENT = 0.8
    MIN_CONFIDENCE = 0.8

    def __init__(self):
        self._reader = None

    def _load(self):
        if self._reader is None:
            from lib_lora_trainer.demo.scorer import load_reader

            self._reader = load_reader()
        return self._reader

    def unavailable_reason(self, ctx):
        from lib_lora_trainer.demo.scorer import SCORER_FILE, read_attributes
        from lib_lora_trainer.demo.world import IDENTITY

        if not SCORER_FILE.is_file():
            return f"attribute reader {SCORER_FILE} missing"
        if not ctx.dataset_images:
            return "no dataset pictures to read the character from"
        reads = read_attributes(ctx.dataset_images, self._load())
        confidence = float(np.mean([p for r in reads for _, p in r.values()]))
        if confidence < self.MIN_CONFIDENCE:
            return f"the dataset does not look like demo-world pictures (reader confidence {confidence:.2f})"
        identity = {}
        for name in IDENTITY:
            values = [r[name][0] for r in reads]
            top = max(set(values), key=values.count)
            if values.count(top) / len(values) >= self.AGREEMENT:
                identity[name] = top
        if not identity:
            return "the dataset pictures share no identity attributes"
        ctx.identity = identity
        return None

    def score(self, images, prompt, base_images, ctx):
        from lib_lora_trainer.demo.scorer import match_score
        from lib_lora_trainer.demo.world import parse_prompt

        out = {"concept": match_score(images, ctx.identity, self._load())}
        asked = {k: v for k, v in parse_prompt(prompt).items() if k not in ctx.identity}
        if asked:
            out["prompt_following"] = match_score(images, asked, self._load())
        return out


def default_scorers(allow_downloads: bool = False, say=print) -> list:
    """`allow_downloads`: the user agreed to the CLIP / DINOv2 download (scorer_weights.py)."""
    from .embedding import EmbeddingScorer
    from .face_identity import FaceIdentityScorer

    return [ImageStatsScorer(), DemoWorldScorer(), FaceIdentityScorer(say=say),
            EmbeddingScorer(allow_download=allow_downloads, say=say)]
