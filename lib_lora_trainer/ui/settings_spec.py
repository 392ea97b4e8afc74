"""The tab's own options in A1111's Settings (section "Train LoRA"), as plain data: scripts/
turns them into shared.OptionInfo, hosts/a1111.py reads them back by key. The trainer
environment and VRAM options are read by hosts/a1111.py (trainer_settings, keep_model_loaded)."""

from __future__ import annotations

from typing import NamedTuple

from lib_lora_trainer.engines.sd_scripts_install import RELEASES
from lib_lora_trainer.evaluate.scorer_weights import CONSENT_TEXT

RELEASE_TAGS = tuple(r.tag for r in RELEASES)

SECTION = ("lora_trainer", "Train LoRA")


class Setting(NamedTuple):
    key: str
    default: object
    label: str
    help: str
    choices: tuple[str, ...] | None = None


SETTINGS = (
    Setting("lora_trainer_sd_scripts_path", "", "kohya sd-scripts folder (for the kohya engine)",
            "A checkout of kohya-ss/sd-scripts; empty = the LORA_TRAINER_SD_SCRIPTS environment variable."),
    Setting("lora_trainer_sd_scripts_version", "default", "sd-scripts release for the kohya engine (installed by "
            "the tab)", "Which release the extension's own sd-scripts install runs; default = the newest one "
            "verified by the project if installed, else any installed one. Install releases in the tab (kohya "
            "sd-scripts engine) or with `python -m lib_lora_trainer engines install`.", ("default", *RELEASE_TAGS)),
    Setting("lora_trainer_sd_scripts_url", "", "sd-scripts git URL for installs",
            "Where the tab clones sd-scripts from; empty = https://github.com/kohya-ss/sd-scripts.git."),
    Setting("lora_trainer_sd_scripts_torch", "", "torch for the sd-scripts install (pip arguments)",
            "e.g. 'torch==2.6.0 torchvision==0.21.0 --index-url https://download.pytorch.org/whl/cu124'; empty = "
            "reuse the web UI's own torch (nothing to download)."),
    Setting("lora_trainer_default_engine", "builtin", "Default training engine",
            "builtin: this extension's trainer; kohya: sd-scripts (installed by the tab, or the folder above).", ("builtin", "kohya")),
    Setting("lora_trainer_trainer_python", "", "Trainer environment (Python executable)",
            "The python of an environment with torch, diffusers, peft and accelerate (e.g. a kohya_ss venv's "
            "bin/python); empty = the environment the extension creates on first use."),
    Setting("lora_trainer_lora_dir", "", "Lora output folder override",
            "Where trained LoRAs are installed; empty = A1111's Lora folder (--lora-dir)."),
    Setting("lora_trainer_free_model", True, "Move A1111's model out of VRAM while training",
            "Unloads the checkpoint to RAM while a job trains on its GPU and loads it back afterwards; off = "
            "keep it loaded (needs VRAM for both; txt2img keeps working)."),
    Setting("lora_trainer_scorer_downloads", False, "Download the test's CLIP and DINOv2 weights (CLIP-I, CLIP-T, "
            "DINO scores)", "On: the LoRA test " + CONSENT_TEXT + ". Off: those scores run only from local "
            "folders (<data dir>/scorers/clip and /dino)."),
)

DEFAULTS = {s.key: s.default for s in SETTINGS}
