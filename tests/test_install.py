"""Installing a LoRA into the host's Lora folder: names, no silent overwrite, atomicity, sidecar."""

import json
import shutil

import pytest
import torch

from lib_lora_trainer.jobs.install import InstallError, install_lora, validate_lora_name
from lib_lora_trainer.lora_file import save_lora
from lib_lora_trainer.lora_file.sidecar import read_lora_details


@pytest.fixture
def lora_file(tmp_path):
    path = tmp_path / "trained.safetensors"
    tensors = {"lora_unet_x.lora_down.weight": torch.ones(2, 4), "lora_unet_x.lora_up.weight": torch.ones(4, 2),
               "lora_unet_x.alpha": torch.tensor(2)}
    save_lora(path, tensors, {"ss_base_model_version": "sdxl_base_v1-0", "ss_output_name": "zk"})
    return path


@pytest.mark.parametrize("name", ["a/b", "a\\b", "..", "x..y", "nul\x00", "", "  ", ".hidden", "a:b", "a,b", "a>b",
                                  "x" * 101])
def test_bad_names(name):
    with pytest.raises(InstallError):
        validate_lora_name(name)


def test_install_writes_file_and_sidecar_and_never_overwrites(tmp_path, lora_file):
    lora_dir = tmp_path / "Lora"
    first = install_lora(lora_file, lora_dir, "zk", model_type="sdxl", trigger="zkperson", preferred_weight=0.8,
                         notes="n")
    assert first == lora_dir / "zk.safetensors"
    side = json.loads((lora_dir / "zk.json").read_text())
    assert side == {"description": "", "sd version": "xl", "activation text": "zkperson",
                    "preferred weight": 0.8, "negative text": "", "notes": "n"}
    second = install_lora(lora_file, lora_dir, "zk", model_type="sdxl", trigger="zkperson")
    third = install_lora(lora_file, lora_dir, "zk", model_type="sdxl", trigger="zkperson")
    assert second.name == "zk_v2.safetensors" and third.name == "zk_v3.safetensors"
    details = read_lora_details(first)
    assert details.sd_version == "SDXL" and details.prompt() == "<lora:zk:0.8>, zkperson"
    assert details.metadata["ss_output_name"] == "zk"


def test_failed_copy_leaves_no_partial_file_and_the_previous_lora_intact(tmp_path, lora_file, monkeypatch):
    lora_dir = tmp_path / "Lora"
    installed = install_lora(lora_file, lora_dir, "zk", model_type="sd1", trigger="t")
    before = installed.read_bytes()

    def half_copy(src, dst, *a, **k):
        with open(dst, "wb") as f:
            f.write(open(src, "rb").read()[:100])
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError):
        install_lora(lora_file, lora_dir, "zk", model_type="sd1", trigger="t", overwrite=True)
    assert installed.read_bytes() == before
    assert sorted(p.name for p in lora_dir.iterdir()) == ["zk.json", "zk.safetensors"]
