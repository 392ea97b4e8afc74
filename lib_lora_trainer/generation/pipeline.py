"""Build a diffusers txt2img pipeline from loaded components, apply kohya LoRAs, generate.

Everything is offline: the pipeline is assembled from modules already in memory (no
`from_pretrained` of a hub id), the safety checker is off, and HF_HUB_OFFLINE is set before
diffusers is imported.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from lib_lora_trainer.models.quiet_loading import quiet_loading  # noqa: E402

from .samplers import make_scheduler  # noqa: E402

__all__ = [
    "DEFAULT_SAMPLER",
    "apply_loras",
    "base_scheduler_config",
    "build_pipeline",
    "generate",
    "generate_grid",
    "generate_many",
    "load_model_pipeline",
    "prepare_kohya_state_dict",
    "remove_loras",
    "set_sampler",
]

DEFAULT_SAMPLER = "Euler a"
# The model's own scheduler config, kept on the pipeline so that switching samplers always
# starts from it (a DPM++ Karras config would otherwise leak its options into the next one).
_BASE_CONFIG_ATTR = "_lora_trainer_base_scheduler_config"
_ADAPTERS_ATTR = "_lora_trainer_adapters"


def base_scheduler_config(components) -> dict:
    """The model's scheduler config as a plain dict, with v-prediction applied if the model says so."""
    config = dict(components.noise_scheduler.config)
    if getattr(components, "v_prediction", None):
        config["prediction_type"] = "v_prediction"
    return config


def build_pipeline(components, scheduler_name: str = DEFAULT_SAMPLER):
    """A StableDiffusionPipeline (sd1/sd2) or StableDiffusionXLPipeline (sdxl) over `components`.

    `components` needs unet, vae, text_encoders (list), tokenizers (list), noise_scheduler and
    model_type ("sd1" | "sd2" | "sdxl"). The modules are shared, not copied.
    """
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    model_type = getattr(components, "model_type", None)
    base = base_scheduler_config(components)
    scheduler = make_scheduler(scheduler_name, base)
    text_encoders, tokenizers = list(components.text_encoders), list(components.tokenizers)
    if model_type in ("sd1", "sd2"):
        if len(text_encoders) != 1 or len(tokenizers) != 1:
            raise ValueError(f"{model_type} needs one text encoder and one tokenizer, got "
                             f"{len(text_encoders)} and {len(tokenizers)}")
        pipe = StableDiffusionPipeline(
            vae=components.vae, text_encoder=text_encoders[0], tokenizer=tokenizers[0], unet=components.unet,
            scheduler=scheduler, safety_checker=None, feature_extractor=None, image_encoder=None,
            requires_safety_checker=False,
        )
    elif model_type == "sdxl":
        if len(text_encoders) != 2 or len(tokenizers) != 2:
            raise ValueError(f"sdxl needs two text encoders and two tokenizers, got "
                             f"{len(text_encoders)} and {len(tokenizers)}")
        pipe = StableDiffusionXLPipeline(
            vae=components.vae, text_encoder=text_encoders[0], text_encoder_2=text_encoders[1],
            tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], unet=components.unet, scheduler=scheduler,
            image_encoder=None, feature_extractor=None, force_zeros_for_empty_prompt=True,
            add_watermarker=False,
        )
    else:
        raise ValueError(f"unknown model_type {model_type!r}; expected 'sd1', 'sd2' or 'sdxl'")
    setattr(pipe, _BASE_CONFIG_ATTR, base)
    setattr(pipe, _ADAPTERS_ATTR, [])
    pipe.set_progress_bar_config(disable=True)
    return pipe


def set_sampler(pipe, name: str) -> None:
    """Switch the pipeline's sampler (built from the model's scheduler config, not the current one)."""
    base = getattr(pipe, _BASE_CONFIG_ATTR, None)
    if base is None:
        base = dict(pipe.scheduler.config)
    pipe.scheduler = make_scheduler(name, base)


def load_model_pipeline(model_path, scheduler_name: str = DEFAULT_SAMPLER, **load_kwargs):
    """Load a model (single file or diffusers folder) with `models.loading.load_components`."""
    from lib_lora_trainer.models.loading import load_components

    components = load_components(model_path, **load_kwargs)
    for module in (components.unet, components.vae, *components.text_encoders):
        module.requires_grad_(False)
        module.eval()
    return build_pipeline(components, scheduler_name)


def _adapter_name(index: int, path) -> str:
    # peft adapter names become ModuleDict keys: no dots, keep it readable.
    stem = re.sub(r"[^0-9A-Za-z_-]+", "_", Path(path).stem).strip("_") or "lora"
    return f"lora{index}_{stem}"[:64]


def remove_loras(pipe) -> None:
    """Remove every LoRA that `apply_loras` (or anything else) loaded into the pipeline."""
    names = list(getattr(pipe, _ADAPTERS_ATTR, []) or [])
    if names or _has_peft_layers(pipe):
        pipe.unload_lora_weights()
    setattr(pipe, _ADAPTERS_ATTR, [])


def _has_peft_layers(pipe) -> bool:
    for name in ("unet", "text_encoder", "text_encoder_2"):
        module = getattr(pipe, name, None)
        if module is not None and getattr(module, "peft_config", None):
            return True
    return False


_GROUPS = (("lora_unet_",), ("lora_te_", "lora_te1_"), ("lora_te2_",))  # one per model component
_TE_ATTN = re.compile(r"_self_attn_(q|k|v|out)_proj$")


def prepare_kohya_state_dict(state_dict: dict) -> dict:
    """Work around two quirks of diffusers' kohya LoRA loader (0.42); returns a new dict.

    1. Per-module alphas: diffusers gives every module of a component the most common alpha and
       patches the others by name, but those names are wrong for UNet attention (to_q/k/v/out)
       and for every text-encoder module, so such a module silently loads at the wrong
       strength (likewise a module without an alpha beside modules with one). Fix, only for a
       component whose alphas differ: fold alpha/rank into lora_up and drop its alphas
       (diffusers then uses scale 1.0 per module). A component with one alpha everywhere, the
       usual sd-scripts file, is passed through untouched (bit-exact).
    2. Text-encoder attention: diffusers turns kohya q/k/v/out_proj keys into its old
       `to_q_lora` names and picks the old->peft mapping only if some key mentions
       `to_out_lora`. Without an out_proj LoRA the q/k/v LoRAs are dropped silently (when MLP
       keys are present) or loading fails with "Could not automatically infer state dict
       type". Fix: add one all-zero out_proj LoRA, which changes no output.
    """
    sd = dict(state_dict)
    for prefixes in _GROUPS:
        names = sorted({k.split(".", 1)[0] for k in sd
                        if k.startswith(prefixes) and k.endswith(".lora_down.weight")})
        if not names:
            continue
        given = {n: float(sd[n + ".alpha"]) for n in names if n + ".alpha" in sd}
        if given and (len(set(given.values())) > 1 or len(given) < len(names)):
            for n in names:
                rank = int(sd[n + ".lora_down.weight"].shape[0])
                if n in given and given[n] != rank:
                    up = sd[n + ".lora_up.weight"]
                    sd[n + ".lora_up.weight"] = (up.float() * (given[n] / rank)).to(up.dtype)
                sd.pop(n + ".alpha", None)
        if prefixes[0] == "lora_unet_":
            continue
        attn = [n for n in names if _TE_ATTN.search(n)]
        dora = any(n + ".dora_scale" in sd for n in names)  # diffusers would want one for the filler too
        if attn and not dora and not any(n.endswith("_self_attn_out_proj") for n in attn):
            first = attn[0]
            out = _TE_ATTN.sub("_self_attn_out_proj", first)
            # q/k/v_proj and out_proj are all hidden x hidden in CLIP.
            sd[out + ".lora_down.weight"] = torch.zeros_like(sd[first + ".lora_down.weight"])
            sd[out + ".lora_up.weight"] = torch.zeros_like(sd[first + ".lora_up.weight"])
            if first + ".alpha" in sd:
                sd[out + ".alpha"] = sd[first + ".alpha"].clone()
    return sd


def _is_kohya(keys) -> bool:
    keys = list(keys)
    return bool(keys) and any(k.startswith(("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")) for k in keys)


def _lora_source(path: Path):
    """What to hand to `load_lora_weights`: a fixed-up state dict for kohya .safetensors, else the path."""
    if path.suffix.lower() == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
        if _is_kohya(sd):
            return prepare_kohya_state_dict(sd)
    return str(path)  # diffusers/peft formats: let diffusers read the file (and its metadata) itself


def apply_loras(pipe, loras) -> list[str]:
    """Load kohya-format LoRA files through diffusers' loader and set their weights.

    `loras` is a sequence of (path, weight). Loras already applied are removed first, so the
    pipeline ends up with exactly these. Returns the adapter names. Weight 0 leaves the output
    bit-identical to the base model's.
    """
    loras = [(Path(p), float(w)) for p, w in loras]
    remove_loras(pipe)
    if not loras:
        return []
    names: list[str] = []
    try:
        for i, (path, _) in enumerate(loras):
            if not path.is_file():
                raise FileNotFoundError(f"LoRA file not found: {path}")
            name = _adapter_name(i, path)
            with quiet_loading():  # a progress bar per LoRA per prompt otherwise
                pipe.load_lora_weights(_lora_source(path), adapter_name=name)
            names.append(name)
            setattr(pipe, _ADAPTERS_ATTR, list(names))
        pipe.set_adapters(names, adapter_weights=[w for _, w in loras])
    except Exception:
        remove_loras(pipe)
        raise
    return names


def generate(pipe, prompt: str, negative: str | None = None, seed: int = 0, steps: int = 20,
             width: int | None = None, height: int | None = None, cfg_scale: float = 7.0,
             sampler: str | None = None):
    """One image (PIL). Deterministic: the noise comes from torch.Generator("cpu").manual_seed(seed).

    width/height default to the model's native size and must be multiples of the VAE factor (8).
    `sampler`, when given, switches the pipeline's sampler first (see `set_sampler`).
    """
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    for label, value in (("width", width), ("height", height)):
        if value is not None and (int(value) <= 0 or int(value) % factor):
            raise ValueError(f"{label} must be a positive multiple of {factor}, got {value}")
    if int(steps) < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if sampler is not None:
        set_sampler(pipe, sampler)
    scheduler = pipe.scheduler
    if hasattr(scheduler, "noise_sampler_seed"):  # DPMSolverSDEScheduler's Brownian tree
        scheduler.noise_sampler_seed = int(seed)
    generator = torch.Generator("cpu").manual_seed(int(seed))
    with torch.no_grad():
        out = pipe(prompt=prompt, negative_prompt=negative, num_inference_steps=int(steps),
                   guidance_scale=float(cfg_scale), width=None if width is None else int(width),
                   height=None if height is None else int(height), generator=generator, output_type="pil")
    return out.images[0]


def generate_many(pipe, prompt: str, seeds: list[int], negative: str | None = None, steps: int = 20,
                  width: int | None = None, height: int | None = None, cfg_scale: float = 7.0,
                  sampler: str | None = None, batch: int | None = None) -> list:
    """One image per seed (see generate_grid)."""
    return generate_grid(pipe, [prompt], seeds, negative=negative, steps=steps, width=width, height=height,
                         cfg_scale=cfg_scale, sampler=sampler, batch=batch)[0]


# Pictures per pipeline call at 512x512; smaller pictures get proportionally more (same memory).
PICTURES_PER_CALL_512 = 8


def pictures_per_call(pipe, width: int | None, height: int | None) -> int:
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    side = int(pipe.unet.config.sample_size) * factor
    pixels = (width or side) * (height or side)
    return max(PICTURES_PER_CALL_512, PICTURES_PER_CALL_512 * 512 * 512 // pixels)


def generate_grid(pipe, prompts: list[str], seeds: list[int], negative: str | None = None, steps: int = 20,
                  width: int | None = None, height: int | None = None, cfg_scale: float = 7.0,
                  sampler: str | None = None, batch: int | None = None) -> list[list]:
    """Every prompt at every seed: out[i][j] is prompts[i] at seeds[j]. Image j uses
    torch.Generator("cpu").manual_seed(seeds[j]) for its own noise, so a seed gives the same picture
    whatever else is in its batch (up to float rounding of batched matrix products). Several
    prompts share a call when their pictures fit in `batch` (default: pictures_per_call); on a CPU a
    call of 18 small pictures costs 3.7 s where six calls of 3 cost 5.7 s (cartoon128, 12 steps)."""
    if not seeds or not prompts:
        return [[] for _ in prompts]
    if sampler is not None:
        set_sampler(pipe, sampler)
    factor = int(getattr(pipe, "vae_scale_factor", 8))
    for label, value in (("width", width), ("height", height)):
        if value is not None and (int(value) <= 0 or int(value) % factor):
            raise ValueError(f"{label} must be a positive multiple of {factor}, got {value}")
    batch = batch or pictures_per_call(pipe, width, height)
    seeds = [int(s) for s in seeds]
    # Whole prompts per call where they fit (a prompt's pictures never depend on which prompts share
    # its call beyond rounding); a prompt with more seeds than a call holds is split by seeds.
    if len(seeds) <= batch:
        per_call = batch // len(seeds)
        chunks = [[(i, j) for i in range(k, min(k + per_call, len(prompts))) for j in range(len(seeds))]
                  for k in range(0, len(prompts), per_call)]
    else:
        chunks = [[(i, j) for j in range(k, min(k + batch, len(seeds)))]
                  for i in range(len(prompts)) for k in range(0, len(seeds), batch)]
    out: list[list] = [[None] * len(seeds) for _ in prompts]
    for chunk in chunks:
        scheduler = pipe.scheduler
        if hasattr(scheduler, "noise_sampler_seed"):  # one Brownian tree per call: the chunk's first seed
            scheduler.noise_sampler_seed = seeds[chunk[0][1]]
        generators = [torch.Generator("cpu").manual_seed(seeds[j]) for _, j in chunk]
        with torch.no_grad():
            result = pipe(prompt=[prompts[i] for i, _ in chunk],
                          negative_prompt=None if negative is None else [negative] * len(chunk),
                          num_inference_steps=int(steps), guidance_scale=float(cfg_scale),
                          width=None if width is None else int(width), height=None if height is None else int(height),
                          generator=generators, output_type="pil")
        for (i, j), image in zip(chunk, result.images):
            out[i][j] = image
    return out
