"""Loading a model prints nothing a user cannot act on (issue 14: the demo printed a torchvision
fallback, "modules ... should be kept in float32: []" and two progress bars on every load)."""

import subprocess
import sys

import torch

from lib_lora_trainer.models.detect import sibling_config_dir
from lib_lora_trainer.models.single_file import save_single_file
from lib_lora_trainer.models.tiny import build_tiny_sd1, write_tiny_config_folder

LOAD = """
import sys
from diffusers.utils import logging as dl
from lib_lora_trainer.models.loading import load_components
before = (dl.get_verbosity(), dl.is_progress_bar_enabled())
c = load_components(sys.argv[1])
assert (dl.get_verbosity(), dl.is_progress_bar_enabled()) == before, "levels not restored"
print("loaded", c.unet.dtype)
"""


def test_loading_an_fp16_single_file_is_silent(tmp_path):
    # An fp16 file loaded as float32 is what made diffusers warn about casting.
    path = tmp_path / "half.safetensors"
    unet, vae, te = build_tiny_sd1()
    write_tiny_config_folder(sibling_config_dir(path))
    save_single_file(unet, vae, te, path, dtype=torch.float16)
    proc = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "loaded torch.float32"
    for noise in ("float32", "torchvision", "Loading pipeline components", "Loading weights"):
        assert noise not in proc.stderr, proc.stderr
