"""The Train LoRA tab (gradio 3.41 Blocks), built against a hosts.base.Host."""
