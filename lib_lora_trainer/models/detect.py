"""Tell SD1 / SD2 / SDXL checkpoints apart without loading any weights.

Single files are judged by their key names (the safetensors header, or a memory-mapped
.ckpt), diffusers folders by unet/config.json. Anything else raises ModelError with a
message a user can act on: what the file looks like and what to pick instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")

_FIX_PICK_BASE = ("Pick a full Stable Diffusion base checkpoint (an SD1.5, SD2.x or SDXL .safetensors/.ckpt "
                  "from models/Stable-diffusion, or a diffusers model folder with model_index.json).")


class ModelError(ValueError):
    """A path that cannot be used as a base model; the message says why and what to do."""


@dataclass(frozen=True)
class ModelInfo:
    model_type: str               # "sd1" | "sd2" | "sdxl"
    v_prediction: bool | None     # None: the file does not say (caller picks the default)
    source: str                   # "single_file" | "diffusers"


def sibling_config_dir(path) -> Path:
    """X.safetensors / X.ckpt -> X.config/ (a diffusers config-only folder that defines the architecture)."""
    path = Path(path)
    return path.with_name(path.stem + ".config")


# --- reading key names -------------------------------------------------------

def _read_safetensors_header(path: Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    from safetensors import safe_open

    try:
        # framework "numpy": reading names and shapes needs no torch (a UI process may have none, e.g.
        # the gradio-4 UI environment); get_slice only parses the header entry: no tensor data is read.
        with safe_open(str(path), framework="numpy") as f:
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise ModelError(
            f"{path}: not a readable .safetensors file ({exc}). It may be damaged or an incomplete "
            f"download: download it again."
        ) from exc
    return shapes, metadata


class _LightningStub:
    """Stands in for pytorch_lightning's ModelCheckpoint, which old SD .ckpt files pickle
    (as a dict key) next to the weights. Allow-listed by name: nothing from the file runs."""


def ckpt_safe_globals() -> list:
    """Extra globals torch.load(weights_only=True) may build for SD-era .ckpt files:
    the Lightning callback class (as a stub) and numpy scalars/dtypes (epoch scores)."""
    import numpy as np

    allowed: list = [(_LightningStub, "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint"), np.dtype]
    allowed += [c for c in vars(getattr(np, "dtypes", object)).values() if isinstance(c, type)]
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None) or np.core.multiarray
    # numpy 1 pickles name numpy.core, numpy 2 numpy._core: allow both spellings.
    allowed += [(multiarray.scalar, f"{m}.multiarray.scalar") for m in ("numpy.core", "numpy._core")]
    return allowed


def _read_ckpt_header(path: Path) -> dict[str, list[int]]:
    import pickle

    import torch

    def load(mmap: bool):
        with torch.serialization.safe_globals(ckpt_safe_globals()):
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)

    try:
        try:
            obj = load(True)  # mmap: tensor data stays on disk
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            obj = load(False)  # legacy (pre-zip) torch.save format cannot be memory-mapped
    except pickle.UnpicklingError as exc:
        # torch names the offending class ("Unsupported global"); anything else is a broken pickle.
        if "unsupported global" not in str(exc).lower():
            raise ModelError(f"{path}: not a readable .ckpt file (damaged, or not a PyTorch checkpoint). "
                             f"Download it again.") from exc
        raise ModelError(
            f"{path}: this .ckpt holds Python objects besides tensors, and loading it would run code "
            f"from the file. Use the .safetensors version of this model (most model pages offer one), "
            f"or convert the .ckpt to .safetensors with a tool you trust."
        ) from exc
    except Exception as exc:
        raise ModelError(f"{path}: not a readable .ckpt file ({exc}). Download it again.") from exc
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # Lightning checkpoints nest the weights here
    if not isinstance(obj, dict):
        raise ModelError(f"{path}: this .ckpt does not hold a state dict. {_FIX_PICK_BASE}")
    return {str(k): list(getattr(v, "shape", [])) for k, v in obj.items()}


def read_key_shapes(path) -> dict[str, list[int]]:
    """Tensor name -> shape for a single-file checkpoint, without loading tensor data."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors_header(path)[0]
    return _read_ckpt_header(path)


# --- classifying key sets ------------------------------------------------------

def _has(keys, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _what_it_looks_like(keys: list[str]) -> tuple[str, str]:
    """(description, fix) for a key set that is not an SD1/SD2/SDXL checkpoint."""
    if not keys:
        return "an empty file (no tensors)", "Download it again. " + _FIX_PICK_BASE
    if (_has(keys, "lora_unet_") or _has(keys, "lora_te") or _has(keys, "lycoris_")
            or any(m in k for k in keys for m in ("lora_down.", "lora.down.", ".lora_A.", ".hada_w1_a", ".lokr_w1"))):
        return (f"a LoRA / LyCORIS network, not a base model (keys like '{sorted(keys)[0]}')",
                "Put it in models/Lora. To train, choose the checkpoint it was made for as the base model. "
                + _FIX_PICK_BASE)
    if {"string_to_param", "emb_params", "clip_l", "clip_g"} & set(keys) or _has(keys, "string_to_param."):
        return ("a textual-inversion embedding, not a base model",
                "Put it in embeddings/. " + _FIX_PICK_BASE)
    no_unet = not _has(keys, "model.diffusion_model.")
    if no_unet and ((_has(keys, "encoder.") and _has(keys, "decoder.")) or _has(keys, "first_stage_model.")):
        return ("a VAE on its own, not a full checkpoint",
                "Put it in models/VAE. " + _FIX_PICK_BASE)
    if no_unet and _has(keys, "down_blocks.") and _has(keys, "conv_in."):
        return ("a single diffusers component weights file (e.g. unet/diffusion_pytorch_model.safetensors)",
                "Point to the whole diffusers model folder (the one holding model_index.json) instead.")
    if _has(keys, "model.diffusion_model.double_blocks.") or _has(keys, "double_blocks."):
        return "a Flux model, which this trainer does not support", _FIX_PICK_BASE
    if _has(keys, "model.diffusion_model.joint_blocks.") or _has(keys, "joint_blocks."):
        return "an SD3 model, which this trainer does not support", _FIX_PICK_BASE
    if _has(keys, "model.diffusion_model.input_blocks."):
        return ("a Stable Diffusion UNet without text-encoder weights we recognise (UNet-only file, "
                "or an unsupported architecture)", _FIX_PICK_BASE)
    sample = ", ".join(sorted(keys)[:3])
    return f"not a Stable Diffusion checkpoint (first keys: {sample})", _FIX_PICK_BASE


def model_type_from_keys(keys, path="<keys>", shapes: dict | None = None) -> str:
    """SD1/SD2/SDXL from LDM key names; ModelError for anything else."""
    keys = list(keys)
    has_unet = _has(keys, "model.diffusion_model.input_blocks.")
    model_type = None
    if has_unet:
        if _has(keys, "conditioner.embedders.1."):
            model_type = "sdxl"
        elif _has(keys, "conditioner.embedders.0.model."):
            raise ModelError(f"{path}: looks like an SDXL refiner (only the bigG text encoder); refiners "
                             f"cannot be trained into LoRAs here. Use the SDXL base model (or a fine-tune of it).")
        elif _has(keys, "cond_stage_model.model."):
            model_type = "sd2"
        elif _has(keys, "cond_stage_model.transformer."):
            model_type = "sd1"
    if model_type is None:
        what, fix = _what_it_looks_like(keys)
        raise ModelError(f"{path}: this looks like {what}. {fix}")
    if not _has(keys, "first_stage_model."):
        raise ModelError(f"{path}: an {model_type.upper()} checkpoint without VAE weights (first_stage_model.*), "
                         f"e.g. a 'no-VAE' pruned file. Use a version of the model with the VAE baked in.")
    conv_in = (shapes or {}).get("model.diffusion_model.input_blocks.0.0.weight")
    if conv_in and len(conv_in) == 4 and conv_in[1] != 4:
        raise ModelError(f"{path}: the UNet takes {conv_in[1]} input channels, so this is an inpainting or "
                         f"instruct-pix2pix model. LoRAs are trained on the normal (4-channel) model: use that.")
    return model_type


_YAML_V = re.compile(r"""^\s*parameterization\s*:\s*["']?v["']?\s*$""", re.MULTILINE)


def _v_prediction_hint(path: Path, keys) -> bool | None:
    # ComfyUI/A1111 conventions: an empty "v_pred" tensor, or X.yaml with parameterization: "v".
    if "v_pred" in keys:
        return True
    yaml = path.with_suffix(".yaml")
    if yaml.is_file():
        try:
            return bool(_YAML_V.search(yaml.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            return None
    return None


# --- diffusers folders -------------------------------------------------------

def _read_json(path: Path, owner: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{owner}: cannot read {path.relative_to(owner)} ({exc}). "
                         f"The folder is incomplete or damaged: copy/download it again.") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{owner}: {path.relative_to(owner)} is not a JSON object. Copy/download the folder again.")
    return data


def _declared_type(folder: Path) -> str | None:
    # write_config_folder leaves a marker naming the model type it wrote.
    try:
        return json.loads((folder / ".lora_trainer_config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def info_from_config_folder(folder, source: str = "diffusers") -> ModelInfo:
    """Architecture from a diffusers (or config-only) folder: unet/config.json + scheduler."""
    folder = Path(folder)
    unet_cfg_path = folder / "unet" / "config.json"
    if not unet_cfg_path.is_file():
        if (folder.parent / "model_index.json").is_file():
            raise ModelError(f"{folder}: this is one component folder ({folder.name}/) of a diffusers model. "
                             f"Select the model folder above it: {folder.parent}")
        if (folder / "model_index.json").is_file():
            what = "a diffusers pipeline without a UNet (not a Stable Diffusion model we can train)"
        elif any(folder.glob("*.safetensors")) or any(folder.glob("*.ckpt")):
            what = "a folder of model files, not a diffusers model"
        else:
            what = "a folder without unet/config.json, not a diffusers model"
        raise ModelError(f"{folder}: this looks like {what}. Select one .safetensors/.ckpt file inside it, or a "
                         f"diffusers folder that has model_index.json and unet/config.json.")
    unet = _read_json(unet_cfg_path, folder)
    has_te2 = (folder / "text_encoder_2" / "config.json").is_file()
    has_te = (folder / "text_encoder" / "config.json").is_file()
    if unet.get("addition_embed_type") == "text_time":
        if not (has_te and has_te2):
            raise ModelError(f"{folder}: an SDXL UNet without both text encoders (text_encoder/ and text_encoder_2/), "
                             f"e.g. an SDXL refiner. Use the SDXL base model.")
        model_type = "sdxl"
    elif unet.get("addition_embed_type") or unet.get("in_channels", 4) != 4:
        raise ModelError(f"{folder}: this UNet is not a plain text-to-image SD1/SD2/SDXL UNet "
                         f"(in_channels={unet.get('in_channels')}, "
                         f"addition_embed_type={unet.get('addition_embed_type')}). "
                         + _FIX_PICK_BASE)
    elif not has_te or has_te2:
        raise ModelError(f"{folder}: expected one CLIP text encoder (text_encoder/config.json) next to the UNet. "
                         + _FIX_PICK_BASE)
    elif unet.get("cross_attention_dim") == 1024 or _declared_type(folder) == "sd2":
        model_type = "sd2"  # our own config folders say so; tiny SD2 test models rely on that
    else:
        model_type = "sd1"  # 768 (and tiny test models): one CLIP text encoder
    v_prediction = None
    sched = folder / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        v_prediction = _read_json(sched, folder).get("prediction_type", "epsilon") == "v_prediction"
    return ModelInfo(model_type, v_prediction, source)


# --- entry point -------------------------------------------------------------

def detect_model_type(path) -> ModelInfo:
    """ModelInfo for a single-file checkpoint or a diffusers folder; ModelError otherwise."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ModelError(f"{path}: no such file or folder. Check the path, or pick a model from the list "
                         f"(A1111 keeps them in models/Stable-diffusion).")
    if path.is_dir():
        return info_from_config_folder(path, "diffusers")
    if path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise ModelError(f"{path}: unsupported file type {path.suffix!r}; expected .safetensors or .ckpt. "
                         + _FIX_PICK_BASE)
    shapes = read_key_shapes(path)
    keys = list(shapes)
    model_type = model_type_from_keys(keys, path, shapes)
    v_prediction = _v_prediction_hint(path, keys)
    config_dir = sibling_config_dir(path)
    if config_dir.is_dir():
        # The sibling folder defines the exact architecture (tiny test models rely on it).
        defined = info_from_config_folder(config_dir, "single_file")
        if defined.model_type != model_type:
            raise ModelError(f"{path}: {config_dir.name}/ describes an {defined.model_type.upper()} model but the "
                             f"weights look like {model_type.upper()}. Remove or fix {config_dir}.")
        return ModelInfo(defined.model_type,
                         defined.v_prediction if defined.v_prediction is not None else v_prediction,
                         "single_file")
    return ModelInfo(model_type, v_prediction, "single_file")
