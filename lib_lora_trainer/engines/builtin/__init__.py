"""Our own trainer: reads sd-scripts TOML, writes kohya LoRA files. Runs in the trainer env."""
