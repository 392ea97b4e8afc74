"""Where the extension keeps its state. Hosts pass their own folders; tests use the env variable."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent  # the extension folder inside A1111's extensions/


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """LORA_TRAINER_DATA_DIR, else `<extension>/data` (inside A1111: extensions/<this>/data)."""
    chosen = explicit or os.environ.get("LORA_TRAINER_DATA_DIR") or (REPO_ROOT / "data")
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
