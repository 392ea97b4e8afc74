"""sd-webui-lora-trainer: a "Train LoRA" tab for AUTOMATIC1111, also headless and standalone.

Nothing here imports A1111's `modules`; only hosts/a1111.py and scripts/ may.
"""

__version__ = "0.1.0"
