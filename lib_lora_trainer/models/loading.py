"""Load a base model (single file or diffusers folder) as diffusers/transformers components, offline.

Single files go through diffusers' own LDM->diffusers conversion (`from_single_file`), fed
with a local config folder so nothing reaches the hub: the file's sibling `<stem>.config/`
when there is one (tiny models), else a cached full-size config folder for its type.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .configs import cached_config_folder
from .detect import ModelError, ckpt_safe_globals, detect_model_type, sibling_config_dir
from .quiet_loading import quiet_loading

log = logging.getLogger(__name__)


@dataclass
class Components:
    unet: Any
    vae: Any
    text_encoders: list = field(default_factory=list)
    tokenizers: list = field(default_factory=list)
    noise_scheduler: Any = None  # diffusers.DDPMScheduler
    model_type: str = "sd1"
    v_prediction: bool = False
    config_dir: Path | None = None
    # What the model itself says (diffusers scheduler config, .yaml, v_pred key); None: it does not say.
    declared_v_prediction: bool | None = None


def _default_v_prediction(model_type: str) -> bool:
    # SD2 single files do not say; the common SD2.x releases (2.0-v / 2.1 768) are v-prediction.
    return model_type == "sd2"


def _noise_scheduler(config_dir: Path, v_prediction: bool):
    from diffusers import DDPMScheduler

    config = DDPMScheduler.load_config(str(config_dir), subfolder="scheduler", local_files_only=True)
    # Always DDPM for training, whatever sampler the folder names; the prediction type is ours.
    return DDPMScheduler.from_config(config, prediction_type="v_prediction" if v_prediction else "epsilon")


def _load_single_file(path: Path, model_type: str, config_dir: Path, dtype: torch.dtype):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    kwargs = dict(config=str(config_dir), local_files_only=True, torch_dtype=dtype)
    # diffusers reads .ckpt with torch.load(weights_only=True): allow the same harmless extras as detection.
    with torch.serialization.safe_globals(ckpt_safe_globals()):
        if model_type == "sdxl":
            pipe = StableDiffusionXLPipeline.from_single_file(str(path), **kwargs)
            return pipe.unet, pipe.vae, [pipe.text_encoder, pipe.text_encoder_2], [pipe.tokenizer, pipe.tokenizer_2]
        pipe = StableDiffusionPipeline.from_single_file(str(path), safety_checker=None, feature_extractor=None,
                                                        requires_safety_checker=False, **kwargs)
    return pipe.unet, pipe.vae, [pipe.text_encoder], [pipe.tokenizer]


def _load_diffusers_folder(folder: Path, model_type: str, dtype: torch.dtype):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    def weights_missing(sub: str) -> bool:
        names = ("*.safetensors", "*.bin")
        return not any(p for pat in names for p in (folder / sub).glob(pat))

    subs = ["unet", "vae", "text_encoder"] + (["text_encoder_2"] if model_type == "sdxl" else [])
    missing = [s for s in subs if weights_missing(s)]
    if missing:
        raise ModelError(f"{folder}: no weights in {', '.join(s + '/' for s in missing)} (a config-only folder?). "
                         f"Copy/download the complete diffusers model, or select its single .safetensors file.")

    def pick_variant(sub: str) -> str | None:
        # Some repos ship only fp16 files (diffusion_pytorch_model.fp16.safetensors).
        plain = any((folder / sub).glob("*model.safetensors")) or any((folder / sub).glob("*model.bin"))
        return None if plain or not any((folder / sub).glob("*.fp16.*")) else "fp16"

    common = dict(local_files_only=True, torch_dtype=dtype)
    unet = UNet2DConditionModel.from_pretrained(str(folder), subfolder="unet", variant=pick_variant("unet"), **common)
    vae = AutoencoderKL.from_pretrained(str(folder), subfolder="vae", variant=pick_variant("vae"), **common)
    te_kwargs = dict(local_files_only=True, dtype=dtype)  # transformers 5 renamed torch_dtype -> dtype
    text_encoders = [CLIPTextModel.from_pretrained(str(folder), subfolder="text_encoder",
                                                   variant=pick_variant("text_encoder"), **te_kwargs)]
    tokenizers = [CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer", local_files_only=True)]
    if model_type == "sdxl":
        text_encoders.append(CLIPTextModelWithProjection.from_pretrained(
            str(folder), subfolder="text_encoder_2", variant=pick_variant("text_encoder_2"), **te_kwargs))
        tokenizers.append(CLIPTokenizer.from_pretrained(str(folder), subfolder="tokenizer_2", local_files_only=True))
    return unet, vae, text_encoders, tokenizers


def load_components(path, *, model_type: str | None = None, v_prediction: bool | None = None,
                    dtype: torch.dtype = torch.float32, cache_dir=None) -> Components:
    """Load UNet, VAE, text encoder(s), tokenizer(s) and a DDPM noise scheduler from `path`.

    `model_type` asserts the expected architecture (a mismatch is a ModelError, not a guess);
    `v_prediction` overrides what the model says (SD2 single files say nothing: default v).
    """
    path = Path(path).expanduser()
    info = detect_model_type(path)
    if model_type is not None and model_type != info.model_type:
        raise ModelError(f"{path}: expected an {model_type.upper()} model but this is {info.model_type.upper()}. "
                         f"Pick an {model_type.upper()} checkpoint, or change the model type setting.")
    model_type = info.model_type
    if v_prediction is None:
        v_prediction = info.v_prediction if info.v_prediction is not None else _default_v_prediction(model_type)

    if info.source == "diffusers":
        config_dir = path
    elif sibling_config_dir(path).is_dir():
        config_dir = sibling_config_dir(path)
    else:
        config_dir = cached_config_folder(model_type, v_prediction, cache_dir)

    try:
        with quiet_loading():
            if info.source == "diffusers":
                unet, vae, text_encoders, tokenizers = _load_diffusers_folder(path, model_type, dtype)
            else:
                unet, vae, text_encoders, tokenizers = _load_single_file(path, model_type, config_dir, dtype)
            noise_scheduler = _noise_scheduler(config_dir, v_prediction)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        # diffusers' SingleFileComponentError is a ValueError subclass; shape mismatches are RuntimeErrors.
        raise ModelError(
            f"{path}: detected as {model_type.upper()}, but loading failed: {exc}. The file may be damaged or a "
            f"variant this trainer does not know (e.g. an unusual architecture). Try another copy of the model, "
            f"or its diffusers folder."
        ) from exc
    log.info("loaded %s (%s, %s, v_prediction=%s)", path, model_type, info.source, v_prediction)
    return Components(unet=unet, vae=vae, text_encoders=text_encoders, tokenizers=tokenizers,
                      noise_scheduler=noise_scheduler, model_type=model_type, v_prediction=v_prediction,
                      config_dir=config_dir, declared_v_prediction=info.v_prediction)
