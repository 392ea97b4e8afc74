"""Peak GPU memory of a training run, estimated from a few measured runs and stated scaling rules.

peak = overhead + frozen weights + LoRA training state + activations (+ VAE when latents are not
cached), where
- overhead (CUDA context, workspaces) and activations per image are fitted to the measured
  anchors of vram_table.py (SD1.5 512 px bf16); SDXL activations come from sd-scripts' docs;
- frozen weights: parameters x 2 bytes (fp16/bf16) or 4 (no mixed precision); the text encoders
  leave the GPU when their outputs are cached (U-Net-only training), the VAE when latents are;
- LoRA state: trainable parameters (rank x per-rank count of the trained parts, + conv rank) x
  bytes per parameter of the optimizer (AdamW 16, AdamW8bit 10, Lion 12, Prodigy 24, Adafactor 9);
- activations: x batch, x pixels / native pixels, x2 without mixed precision, x0.6 with
  gradient checkpointing.
Every estimate says which measured runs it starts from and what it scaled ("basis").
"""

from __future__ import annotations

from dataclasses import dataclass

from . import vram_table as T
from .training_config import MODEL_TYPES, TrainingConfig
from .errors import ConfigError

__all__ = ["VramEstimate", "estimate_peak_vram_gib", "suggest_lighter_preset", "vram_warning"]


@dataclass(frozen=True)
class VramEstimate:
    gib: float
    low: float
    high: float
    basis: str
    terms: tuple[tuple[str, float], ...] = ()

    def __str__(self) -> str:
        return f"about {self.gib:.1f} GiB ({self.low:.1f}-{self.high:.1f}); {self.basis}"


@dataclass(frozen=True)
class _Setup:
    """The memory-relevant part of a config (anchors are described with it too)."""
    model_type: str = "sd1"
    resolution: int = 512
    batch: int = 1
    rank: int = 32
    conv_rank: int = 0
    optimizer: str = "AdamW"
    half: bool = True
    checkpointing: bool = False
    unet_trained: bool = True
    te_trained: bool = True
    te_cached: bool = False
    latents_cached: bool = True


def _setup(cfg: TrainingConfig, model_type: str) -> _Setup:
    if model_type not in MODEL_TYPES:
        raise ConfigError(None, f"model_type {model_type!r} is not one of {', '.join(MODEL_TYPES)}.")
    te_trained = not cfg.train_unet_only and cfg.text_encoder_lr != 0
    return _Setup(model_type, cfg.resolution, cfg.batch_size, cfg.network_dim, cfg.conv_dim or 0, cfg.optimizer,
                  cfg.mixed_precision != "no", cfg.gradient_checkpointing, cfg.unet_lr != 0, te_trained,
                  cfg.cache_text_encoder_outputs and not te_trained, cfg.latents_cached)


def _fixed_terms(s: _Setup, p: T.Profile) -> list[tuple[str, float]]:
    """Everything but overhead and activations (those are fitted)."""
    m = T.MODELS[s.model_type]
    weight_bytes = 2 if s.half else 4
    terms = [("U-Net weights", m.unet * weight_bytes / T.GIB)]
    if p.te_on_gpu and not s.te_cached:
        terms.append(("text encoder weights", m.text * weight_bytes / T.GIB))
    if not s.latents_cached:
        terms.append(("VAE weights", m.vae * weight_bytes / T.GIB))
    per_rank = 0
    if s.unet_trained:
        per_rank += m.lora_unet if p.lora_modules == "kohya" else m.lora_unet_attention
    if s.te_trained and p.lora_modules == "kohya":
        per_rank += m.lora_text
    params = s.rank * per_rank + (s.conv_rank * m.lora_conv if s.unet_trained else 0)
    terms.append(("LoRA + gradients + optimizer state", params * T.OPTIMIZER_BYTES[s.optimizer] / T.GIB))
    return terms


def _activation_scale(s: _Setup) -> float:
    """Per-image activations relative to the native resolution in bf16 without checkpointing."""
    native = T.MODELS[s.model_type].native
    scale = (s.resolution / native) ** 2
    if not s.half:
        scale *= 2
    if s.checkpointing:
        scale *= T.GRADIENT_CHECKPOINTING_FACTOR
    return scale


def _fit(profile: str) -> tuple[float, float]:
    """(overhead GiB, SD activations GiB per 512 px image) by least squares over the anchors."""
    p = T.PROFILES[profile]
    xs, ys = [], []
    for a in T.ANCHORS:
        if a.profile == profile:
            s = _Setup(rank=a.rank, batch=a.batch, te_trained=p.lora_modules == "kohya")
            xs.append(a.batch)
            ys.append(a.gib - sum(g for _, g in _fixed_terms(s, p)))
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


_FITTED = {name: _fit(name) for name in T.PROFILES}


def _estimate(s: _Setup, profile: str) -> tuple[float, list[tuple[str, float]]]:
    p = T.PROFILES[profile]
    overhead, sd_act = _FITTED[profile]
    m = T.MODELS[s.model_type]
    act = m.act_gib if m.act_gib is not None else sd_act
    terms = [("CUDA context and workspaces", overhead)] + _fixed_terms(s, p)
    terms.append((f"activations ({s.batch} x {s.resolution} px)", s.batch * act * _activation_scale(s)))
    if not s.latents_cached:
        vae = s.batch * T.VAE_ENCODE_GIB_512 * (s.resolution / 512) ** 2 * (1 if s.half else 2)
        terms.append(("VAE encoding", vae))
    return sum(g for _, g in terms), terms


def _basis(s: _Setup, profile: str, engine: str) -> str:
    measured = "; ".join(a.text for a in T.ANCHORS if a.profile == profile)
    parts = [f"measured: {measured} ({T.ANCHOR_SETUP})"]
    scaled = []
    if s.model_type != "sd1":
        scaled.append(f"{s.model_type.upper()} model sizes")
    native = T.MODELS[s.model_type].native
    if s.resolution != 512:
        scaled.append(f"resolution {s.resolution} px (activations x{(s.resolution / 512) ** 2:.2g} vs 512 px)"
                      if native == 512 else f"resolution {s.resolution} px")
    if s.batch != 1:
        scaled.append(f"batch {s.batch} (activations x{s.batch})")
    scaled.append(f"rank {s.rank}" + (f", conv rank {s.conv_rank}" if s.conv_rank else ""))
    if s.optimizer != "AdamW":
        scaled.append(f"{s.optimizer} ({T.OPTIMIZER_BYTES[s.optimizer]} bytes per LoRA parameter vs AdamW's 16)")
    if not s.half:
        scaled.append("no mixed precision (weights and activations x2)")
    if s.checkpointing:
        scaled.append(f"gradient checkpointing (activations -{1 - T.GRADIENT_CHECKPOINTING_FACTOR:.0%})")
    if not s.te_trained:
        scaled.append("U-Net only" + (", text encoders off the GPU (outputs cached)" if s.te_cached else ""))
    if not s.latents_cached:
        scaled.append("latents not cached (VAE on the GPU, encoding working set estimated)")
    parts.append("scaled: " + ", ".join(scaled))
    documented = []
    if not T.MODELS[s.model_type].measured:
        documented.append("SDXL activations (not measured: sd-scripts docs say 8 GB is possible with U-Net "
                          "only, gradient checkpointing, cached text-encoder outputs and latents, an 8-bit "
                          "optimizer or Adafactor, dim 4-8, and recommend 10-12 GB)")
    if s.conv_rank:
        documented.append("conv LoRA size counted from the architecture, its activations not included")
    if documented:
        parts.append("assumed: " + "; ".join(documented))
    if engine == "builtin":
        parts.append("builtin engine: estimated like sd-scripts until measured; low end = the measured "
                     "diffusers+peft loop")
    return "; ".join(parts)


def estimate_peak_vram_gib(cfg: TrainingConfig, model_type: str) -> VramEstimate:
    s = _setup(cfg, model_type)
    profile = T.ENGINE_PROFILE[cfg.engine]
    gib, terms = _estimate(s, profile)
    spread = T.RANGE_MEASURED if T.MODELS[model_type].measured and not s.conv_rank else T.RANGE_DOCUMENTED
    low, high = gib * (1 - spread), gib * (1 + spread)
    if cfg.engine == "builtin":
        low = min(low, _estimate(s, "diffusers-peft")[0])
    basis = _basis(s, profile, cfg.engine)
    return VramEstimate(round(gib, 2), round(low, 2), round(high, 2), basis,
                        tuple((name, round(g, 3)) for name, g in terms))


# ---- decisions built on the estimate ------------------------------------------------------
HEADROOM = 0.9    # plan to use at most 90% of the free memory (fragmentation, other processes)


def suggest_lighter_preset(cfg: TrainingConfig, model_type: str, free_gib: float) -> str | None:
    """After a CUDA out-of-memory, or when the estimate exceeds the free memory: the heaviest GPU
    preset for this model that is lighter than `cfg` and fits `free_gib`; if none fits, the
    lightest one that is still lighter than `cfg`; None if no preset is lighter."""
    from .presets import apply_preset, list_presets

    current = estimate_peak_vram_gib(cfg, model_type).gib
    lighter = []
    for p in list_presets(model_type):
        if not p.for_gpu or p.id == cfg.preset:
            continue
        est = estimate_peak_vram_gib(apply_preset(cfg, p.id), model_type).gib
        if est < current * 0.95:
            lighter.append((est, p.id))
    if not lighter:
        return None
    fitting = [x for x in lighter if x[0] <= free_gib * HEADROOM]
    return max(fitting)[1] if fitting else min(lighter)[1]


def vram_warning(cfg: TrainingConfig, model_type: str, free_gib: float) -> str | None:
    """A sentence for the Train tab when the run may not fit `free_gib`; None when it fits."""
    est = estimate_peak_vram_gib(cfg, model_type)
    if est.high <= free_gib * HEADROOM:
        return None
    if est.gib > free_gib * HEADROOM:
        head = (f"This run will probably run out of GPU memory: it needs about {est.gib:.1f} GiB "
                f"({est.low:.1f}-{est.high:.1f}) and {free_gib:.1f} GiB is free.")
    else:
        head = (f"This run may run out of GPU memory: about {est.gib:.1f} GiB ({est.low:.1f}-{est.high:.1f}) "
                f"against {free_gib:.1f} GiB free.")
    preset = suggest_lighter_preset(cfg, model_type, free_gib)
    if preset:
        from .presets import apply_preset, get_preset
        other = estimate_peak_vram_gib(apply_preset(cfg, preset), model_type)
        advice = (f" Try the preset '{get_preset(preset).name}' ({preset}, about {other.gib:.1f} GiB), or lower "
                  "the batch size, resolution or rank, or turn on gradient checkpointing.")
    else:
        advice = " Lower the batch size, resolution or rank, or turn on gradient checkpointing."
    return head + advice + f" Estimate basis: {est.basis}."
