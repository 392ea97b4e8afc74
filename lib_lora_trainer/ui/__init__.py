"""The Train LoRA tab: gradio Blocks built against a hosts.base.Host, on gradio 3.41 and 4.40
(their differences live in gradio_compat)."""
