"""Base models: detection, offline configs, loading, the tiny test model, LDM single-file export.

Re-exports are lazy (PEP 562) so `import lib_lora_trainer.models` does not pull in torch,
diffusers or transformers: the UI imports this package just to detect model types.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ModelError": "detect",
    "ModelInfo": "detect",
    "detect_model_type": "detect",
    "sibling_config_dir": "detect",
    "MODEL_TYPES": "configs",
    "write_config_folder": "configs",
    "cached_config_folder": "configs",
    "component_configs": "configs",
    "Components": "loading",
    "load_components": "loading",
    "make_tiny_sd1": "tiny",
    "build_tiny_sd1": "tiny",
    "unet_module_path_to_ldm": "ldm_names",
    "save_single_file": "single_file",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
