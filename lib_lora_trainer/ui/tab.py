"""The Train LoRA tab: one gradio Blocks (3.41 or 4.40) built against a Host (A1111, Forge, standalone)."""

from __future__ import annotations

from . import dataset_section, engine_section, params_section, reproduce_section, result_section, train_section

TITLE = "Train LoRA"
ELEM_ID = "lora_trainer"


def build_tab(host, default_preset: str = params_section.DEFAULT_PRESET):
    """The tab's Blocks. Every elem id starts with `lora_trainer_`; the browser script
    (javascript/lora_trainer.js) drives the live refresh and the A1111 integrations."""
    import gradio as gr

    fields: dict = {}   # config field name -> component, filled by the sections
    with gr.Blocks(analytics_enabled=False, elem_id="lora_trainer_root") as blocks:
        with gr.Column(elem_id="lora_trainer_tab_root"):
            with gr.Accordion("1. Dataset", open=True, elem_id="lora_trainer_section_dataset"):
                dataset = dataset_section.build(host, fields)
            with gr.Accordion("2. Model and parameters", open=True, elem_id="lora_trainer_section_params"):
                reproduce = reproduce_section.build(host)   # fills this form from a LoRA's metadata
                params = params_section.build(host, fields, default_preset)
                engine_section.build(host)   # sd-scripts for the kohya engine: state, install
            with gr.Accordion("3. Train", open=True, elem_id="lora_trainer_section_train"):
                train = train_section.build(host)
            with gr.Accordion("4. Result", open=True, elem_id="lora_trainer_section_result"):
                result = result_section.build(host)

        names = params_section.form_names()
        comps = [fields[n] for n in names]
        params_section.wire(host, fields, params, dataset["num_images"])
        dataset_section.wire(host, fields, dataset)   # check and prepare read the recipe fields of section 2
        train_section.wire(host, train, result,
                           [dataset["src"], params["checkpoint"], params["preset"], *comps], names)
        reproduce_section.wire(host, reproduce, fields, params["checkpoint"], dataset["src"])
    return blocks
