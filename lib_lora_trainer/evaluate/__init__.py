"""Train then test: fixed-seed sweeps over LoRA weights (and samplers, steps, checkpoints, a second
LoRA), annotated grids, pluggable scores, a verdict and a report per LoRA."""
