"""modelspec.* keys (Stability AI's ModelSpec 1.0.1) as sd-scripts' sai_model_spec writes them for a LoRA."""

from __future__ import annotations

import datetime
from typing import Mapping

SAI_MODEL_SPEC = "1.0.1"
IMPL_DIFFUSERS = "diffusers"
IMPL_STABILITY_AI = "https://github.com/Stability-AI/generative-models"


def architecture(model_type: str, v_parameterization: bool) -> str:
    if model_type == "sdxl":
        arch = "stable-diffusion-xl-v1-base"
    elif model_type == "sd2":
        arch = "stable-diffusion-v2-768-v" if v_parameterization else "stable-diffusion-v2-512"
    else:
        arch = "stable-diffusion-v1"  # also for SD1 with v-parameterization, as sd-scripts does
    return arch + "/lora"


def resolution(reso: tuple[int, int] | None, model_type: str, v_parameterization: bool) -> str:
    """The training resolution only when given globally (sd-scripts' args.resolution, i.e. the
    folder layout); with a dataset config it is None and the base model's native size is written."""
    if reso is None:
        if model_type == "sdxl":
            reso = (1024, 1024)
        elif model_type == "sd2" and v_parameterization:
            reso = (768, 768)
        else:
            reso = (512, 512)
    return f"{reso[0]}x{reso[1]}"


def iso_date(timestamp: float) -> str:
    # Seconds dropped, local time, no zone: datetime.fromtimestamp(int(ts)).isoformat() like sd-scripts.
    return datetime.datetime.fromtimestamp(int(timestamp)).isoformat()


def static_keys(*, model_type: str, v_parameterization: bool, title: str | None,
                reso: tuple[int, int] | None, implementation_version: str,
                clip_skip: int | None = None, timesteps: tuple[int, int] | None = None,
                optional: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Everything but the date (set at save time). `optional` holds author, description, license,
    tags, usage_hint, trigger_phrase, ...: keys without the "modelspec." prefix; None is skipped."""
    md = {
        "modelspec.architecture": architecture(model_type, v_parameterization),
        # sd-scripts: Stability's implementation for SDXL LoRA, diffusers for SD1/SD2 LoRA.
        "modelspec.implementation": IMPL_STABILITY_AI if model_type == "sdxl" else IMPL_DIFFUSERS,
        "modelspec.resolution": resolution(reso, model_type, v_parameterization),
        "modelspec.sai_model_spec": SAI_MODEL_SPEC,
        "modelspec.prediction_type": "v" if v_parameterization else "epsilon",
    }
    if title is not None:  # otherwise finalize writes "LoRA@<timestamp>"
        md["modelspec.title"] = title
    if timesteps is not None:
        md["modelspec.timestep_range"] = f"{timesteps[0]},{timesteps[1]}"
    if clip_skip is not None:
        md["modelspec.encoder_layer"] = f"{clip_skip}"
    for key, value in (optional or {}).items():
        if value is not None:
            md[key if key.startswith("modelspec.") else f"modelspec.{key}"] = str(value)
    md["modelspec.implementation_version"] = implementation_version
    return md
