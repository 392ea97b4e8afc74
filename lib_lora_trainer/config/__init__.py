"""Training configuration: one validated TrainingConfig, presets as overlays, device corrections,
a VRAM estimate, the sd-scripts TOML files and the step arithmetic.

Import the submodules directly (`from lib_lora_trainer.config.presets import resolve_config`);
this package imports nothing eagerly so `config.steps` stays cheap for the trainer.
"""
