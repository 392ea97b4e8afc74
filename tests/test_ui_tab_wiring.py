"""The built tab (no browser): where the recipe fields sit, and the events of the Dataset section
called through the functions gradio would call (issue 12: one resolution; the sample dataset)."""

import pytest

from lib_lora_trainer.hosts.standalone import StandaloneHost
from lib_lora_trainer.ui import fields as F
from lib_lora_trainer.ui import params_section as P
from lib_lora_trainer.ui.tab import build_tab


@pytest.fixture
def tab(tmp_path):
    host = StandaloneHost(lora_dir=tmp_path / "Lora", data_dir=tmp_path / "data")
    try:
        blocks = build_tab(host)
        yield host, blocks, blocks.get_config_file()
    finally:
        host.job_service().stop_background()


def _ids(cfg):
    return {c["props"].get("elem_id"): c["id"] for c in cfg["components"] if c["props"].get("elem_id")}


def _under(cfg, elem_id):
    """Ids of every component inside the layout block with elem id `elem_id`."""
    target = _ids(cfg)[elem_id]

    def walk(node, inside):
        found = {node["id"]} if inside else set()
        for child in node.get("children", []):
            found |= walk(child, inside or node["id"] == target)
        return found
    return walk(cfg["layout"], False)


def _event(blocks, cfg, elem_id, trigger):
    target = _ids(cfg)[elem_id]
    for i, dep in enumerate(cfg["dependencies"]):
        if target in dep["targets"] and dep["trigger"] == trigger:
            return blocks.fns[i].fn, dep
    raise AssertionError(f"no {trigger} event on {elem_id}")


def test_resolution_and_crop_sit_with_the_preset_and_the_dataset_section_says_them(tab):
    host, blocks, cfg = tab
    ids = _ids(cfg)
    params, dataset = _under(cfg, "lora_trainer_section_params"), _under(cfg, "lora_trainer_section_dataset")
    for name in ("resolution", "crop", "repeats"):
        assert ids[f"lora_trainer_cfg_{name}"] in params
    assert ids["lora_trainer_cfg_trigger"] in dataset and ids["lora_trainer_load_sample"] in dataset
    note = next(c for c in cfg["components"] if c["id"] == ids["lora_trainer_dataset_recipe"])
    assert "<b>512 px</b>" in note["props"]["value"] and ids["lora_trainer_dataset_recipe"] in dataset
    _, dep = _event(blocks, cfg, "lora_trainer_cfg_resolution", "change")
    assert {ids["lora_trainer_dataset_recipe"], ids["lora_trainer_dataset_report"],
            ids["lora_trainer_prepare_result"]} <= set(dep["outputs"])
    assert sorted(sum(P.MAIN_ROWS, ())) == sorted(F.MAIN_FIELDS)   # every main field laid out once


def test_sample_then_prepare_then_a_preset_marks_the_prepared_copy_out_of_date(tab):
    host, blocks, cfg = tab
    ids = _ids(cfg)
    sample, dep = _event(blocks, cfg, "lora_trainer_load_sample", "click")
    out = dict(zip(dep["outputs"], sample("", 512)))
    folder = out[ids["lora_trainer_dataset_src"]]
    assert folder.startswith(str(host.data_dir() / "datasets" / "sample-"))
    assert out[ids["lora_trainer_cfg_trigger"]] == "zyrette" and out[ids["lora_trainer_num_images"]] == 16
    assert "trigger_missing" in out[ids["lora_trainer_dataset_report"]]

    prepare, dep = _event(blocks, cfg, "lora_trainer_prepare", "click")
    names = P.form_names()
    form = dict(zip(names, F.ui_values(names, P.preset_config(P.DEFAULT_PRESET))))
    html, stamp = prepare(folder, "zyrette", form["class_token"], form["resolution"], form["crop"], form["repeats"])
    assert "at <b>512 px</b>" in html

    preset, dep = _event(blocks, cfg, "lora_trainer_preset", "change")
    new = dict(zip(names, preset("cpu-demo", *[form[n] if n != "trigger" else "zyrette" for n in names])))
    on_recipe, dep = _event(blocks, cfg, "lora_trainer_cfg_resolution", "change")
    note, report, prepared = on_recipe("zyrette", new["class_token"], new["resolution"], new["crop"],
                                       new["repeats"], None, stamp)
    assert "<b>128 px</b>" in note and "out of date" in prepared and "Resolution 128 px" in prepared
