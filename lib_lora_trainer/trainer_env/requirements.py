"""Which of the project's pins (requirements/env.txt, the one tested set) the trainer environment
installs: the training stack only, no UI, API or test tools. Standard library only."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
ENV_TXT = REPO_ROOT / "requirements" / "env.txt"

# What `python -m lib_lora_trainer.engines.builtin.train` and `accelerate launch` import.
TRAINER_PACKAGES = ("torch", "diffusers", "transformers", "peft", "accelerate", "safetensors", "huggingface-hub",
                    "tokenizers", "numpy", "pillow", "ftfy", "regex", "tomli-w")
MIN_PYTHON = (3, 11)          # diffusers 0.42 and transformers 5.23 declare Requires-Python >=3.11
MIN_TORCH = (2, 6)            # their `torch` extras ask for torch>=2.6
# The user's own environment must have these at least (the pinned series in env.txt).
MIN_VERSIONS = {"torch": MIN_TORCH, "diffusers": (0, 42), "transformers": (5, 0), "peft": (0, 21),
                "accelerate": (1, 0)}

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def trainer_requirements(env_txt: Path = ENV_TXT, reuse_torch: bool = False) -> list[str]:
    """The env.txt lines for TRAINER_PACKAGES, in file order; without torch when the host's is reused."""
    wanted = {canonical(p) for p in TRAINER_PACKAGES}
    if reuse_torch:
        wanted.discard("torch")
    found: list[str] = []
    for raw in env_txt.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        match = _NAME.match(line)
        if match and canonical(match.group(1)) in wanted:
            found.append(line)
    missing = wanted - {canonical(_NAME.match(line).group(1)) for line in found}
    if missing:
        raise ValueError(f"{env_txt} has no pin for {', '.join(sorted(missing))}: add one (the trainer "
                         f"environment installs exactly those pins)")
    return found


def version_tuple(text: str | None) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13, 0); '' or None -> ()."""
    parts = []
    for piece in re.split(r"[.+-]", text or ""):
        if not piece.isdigit():
            break
        parts.append(int(piece))
    return tuple(parts)
