"""The CLIP and DINOv2 weights behind CLIP-I / CLIP-T / DINO: where they are looked for, and their
download from the Hugging Face hub on first use, only when the user agreed (the setting "Download
the test's CLIP and DINOv2 weights", `test --allow-downloads`, `scorers download`, or
LORA_TRAINER_SCORER_DOWNLOADS=1). Offline machines keep the local-folder way: a transformers
CLIPModel / Dinov2Model folder in `<data dir>/scorers/clip|dino` or LORA_TRAINER_CLIP_DIR / _DINO_DIR.

Files come from `<endpoint>/<repo>/resolve/<revision>/<file>` (endpoint: HF_ENDPOINT, else
https://huggingface.co) into `<folder>.partial`, renamed into place when all arrived, so a cut
download is never taken for weights."""

from __future__ import annotations

import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class ScorerModel:
    kind: str                   # clip | dino: the folder name under <data dir>/scorers
    repo: str
    files: tuple[str, ...]
    approx_mb: int              # what the user agrees to download
    revision: str = "main"

    def describe(self) -> str:
        return f"{self.repo} (about {self.approx_mb} MB)"


MODELS = {
    "clip": ScorerModel("clip", "openai/clip-vit-base-patch32",
                        ("config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json",
                         "vocab.json", "merges.txt", "special_tokens_map.json"), 605),
    "dino": ScorerModel("dino", "facebook/dinov2-small", ("config.json", "model.safetensors",
                                                         "preprocessor_config.json"), 89),
}
CONSENT_TEXT = ("downloads " + " and ".join(m.describe() for m in MODELS.values())
                + " from the Hugging Face hub once, into the extension's data folder")


def model_dir(kind: str) -> Path:
    env = os.environ.get(f"LORA_TRAINER_{kind.upper()}_DIR")
    if env:
        return Path(env)
    from lib_lora_trainer.paths import data_dir

    return data_dir() / "scorers" / kind


def has_weights(folder: Path) -> bool:
    weights = any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))
    return (folder / "config.json").is_file() and weights


def downloads_allowed(settings: dict | None = None) -> bool:
    return bool((settings or {}).get("scorer_downloads")) or os.environ.get("LORA_TRAINER_SCORER_DOWNLOADS") == "1"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def download(model: ScorerModel, folder: Path, say: Callable[[str], None] = print, timeout_s: float = 60.0) -> Path:
    """All of the model's files into `folder` (made complete or not at all). Raises OSError with the URL."""
    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    say(f"scorers: downloading {model.describe()} into {folder}")
    for name in model.files:
        url = f"{endpoint()}/{model.repo}/resolve/{model.revision}/{name}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer, open(partial / name, "wb") as out:
                total = int(answer.headers.get("Content-Length") or 0)
                done, shown = 0, 0
                while chunk := answer.read(1 << 20):
                    out.write(chunk)
                    done += len(chunk)
                    if total > 50 << 20 and done * 10 // total > shown:   # every 10 % of a big file
                        shown = done * 10 // total
                        say(f"scorers: {model.repo} {name}: {done >> 20}/{total >> 20} MB")
        except OSError as exc:
            shutil.rmtree(partial, ignore_errors=True)
            raise OSError(f"downloading {url} failed: {exc}") from None
    if folder.exists():
        shutil.rmtree(folder)
    partial.rename(folder)
    say(f"scorers: {model.repo} ready in {folder}")
    return folder


def ensure(kind: str, folder: Path, allowed: bool, say: Callable[[str], None] = print) -> str | None:
    """None when `folder` has the weights (downloaded now if allowed), else the reason it has not."""
    if has_weights(folder):
        return None
    model = MODELS[kind]
    if not allowed:
        return (f"no {kind.upper()} weights in {folder}: allow the download of {model.describe()} (Settings > Train "
                f"LoRA, or `test --allow-downloads`, or `python -m lib_lora_trainer scorers download`), or put a "
                f"transformers folder there")
    try:
        download(model, folder, say)
    except OSError as exc:
        return f"{kind.upper()} weights: {exc}"
    return None
