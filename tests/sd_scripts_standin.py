"""A stand-in sd-scripts checkout for tests: its train_network.py builds an argparse parser (like
the real one's setup_parser()) accepting the keys our config writer produces, and runs `body` only
as a program (`if __name__ == "__main__"`), so the kohya engine can ask it for its arguments.
Real sd-scripts runs are in tests/host/ (opt-in)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

PARSER = '''
import argparse

KNOWN = {known!r}


def setup_parser():
    parser = argparse.ArgumentParser()
    for key in KNOWN:
        parser.add_argument("--" + key)
    parser.add_argument("--config_file")
    parser.add_argument("--dataset_config")
    return parser
'''


def written_keys() -> list[str]:
    """Every run.toml key our writer and the kohya engine produce for SD1 (a config that turns on
    everything optional), i.e. what a real sd-scripts train_network.py must know."""
    from lib_lora_trainer.config.kohya_args import run_args
    from lib_lora_trainer.config.presets import resolve_config

    cfg = resolve_config("sd15-portrait", {
        "name": "x", "trigger": "t", "base_model": "/m.safetensors", "conv_dim": 4, "save_every_n_steps": 5,
        "save_state": True, "seed": 1, "min_snr_gamma": 5.0, "noise_offset": 0.1, "unet_lr": 1e-4,
        "text_encoder_lr": 5e-5})
    keys = set(run_args(cfg, model_type="sd1", output_dir="/o", logging_dir="/l", tokenizer_cache_dir="/t",
                        sample_prompts_file="/p", resume="/r"))
    keys |= {"console_log_simple", "tokenizer_cache_dir", "max_train_epochs", "max_train_steps",
             "network_weights", "v_parameterization"}
    return sorted(keys)


def train_network_source(known: list[str] | None = None, body: str = "") -> str:
    known = written_keys() if known is None else known
    main = "\n".join("    " + line for line in (body.strip() or "pass").splitlines())
    return PARSER.format(known=known) + '\n\nif __name__ == "__main__":\n' + main + "\n"


def make_checkout(folder: Path, known: list[str] | None = None, body: str = "",
                  requirements: str = "# stand-in: nothing to install\n") -> Path:
    (folder / "library").mkdir(parents=True, exist_ok=True)
    (folder / "library" / "__init__.py").write_text("", encoding="utf-8")
    (folder / "library" / "train_util.py").write_text("", encoding="utf-8")
    (folder / "train_network.py").write_text(train_network_source(known, body), encoding="utf-8")
    (folder / "sdxl_train_network.py").write_text(
        "from train_network import setup_parser\n\nif __name__ == '__main__':\n    raise SystemExit('not used')\n",
        encoding="utf-8")
    (folder / "requirements.txt").write_text(requirements, encoding="utf-8")
    for name in ("toml", "voluptuous"):  # sd-scripts' small requirements, importable from the checkout
        (folder / name).mkdir(exist_ok=True)
        (folder / name / "__init__.py").write_text("", encoding="utf-8")
    return folder


def git(cwd: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", *args], cwd=str(cwd), env=env, check=True, capture_output=True, text=True,
                          timeout=60).stdout.strip()


def make_origin(folder: Path, releases: dict[str, list[str] | None], body: str = "") -> Path:
    """A local git repository with one tagged commit per release; its value is the keys that
    release's parser knows (None: all of written_keys())."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    for tag, known in releases.items():
        make_checkout(folder, known, body)
        git(folder, "add", "-A")
        git(folder, "commit", "-q", "--allow-empty", "-m", f"release {tag}")
        git(folder, "tag", tag)
    return folder
