"""The standalone host: `python -m lib_lora_trainer ui` without A1111.

Checkpoints come from --ckpt-dir, LoRAs go to --lora-dir, the job database lives in the data
dir. There is no txt2img tab and no captioning model here (A1111 brings BLIP and DeepBooru),
so auto-captioning is shown as unavailable. Served on a non-loopback address (`exposed_as`), the
tab's folder fields are confined to the dataset roots, like the API.
"""

from __future__ import annotations

import os
from pathlib import Path

from lib_lora_trainer import paths

from .base import Captioner, scan_checkpoints


class StandaloneHost:
    name = "standalone"
    txt2img_available = False

    def __init__(self, lora_dir: str | os.PathLike | None = None, ckpt_dir: str | os.PathLike | None = None,
                 data_dir: str | os.PathLike | None = None, settings: dict | None = None,
                 dataset_roots: list[str | os.PathLike] | None = None, exposed_as: str | None = None):
        self._data_dir = paths.data_dir(data_dir)
        self._lora_dir = Path(lora_dir) if lora_dir else self._data_dir / "Lora"
        self._ckpt_dir = Path(ckpt_dir) if ckpt_dir else None
        self._settings = dict(settings or {})
        self._roots = [Path(r) for r in (dataset_roots or [])]
        self._exposed_as = exposed_as   # the non-loopback address the tab is served on, if any
        self._checkpoints: list[tuple[str, str]] | None = None
        self._service = None
        self.installed: list[str] = []   # what after_install was told, newest last

    def lora_dir(self) -> Path:
        return self._lora_dir

    def data_dir(self) -> Path:
        return self._data_dir

    def checkpoints(self) -> list[tuple[str, str]]:
        if self._checkpoints is None:
            self.refresh_checkpoints()
        return list(self._checkpoints or [])

    def refresh_checkpoints(self) -> None:
        self._checkpoints = scan_checkpoints(self._ckpt_dir)

    def captioners(self) -> dict[str, Captioner]:
        return {}

    def captioners_note(self) -> str:
        return ("The standalone app has no captioning model (inside A1111 the tab uses BLIP and DeepBooru): "
                "write captions here or with another tool.")

    def folder_limit(self):
        if not self._exposed_as:
            return None
        from lib_lora_trainer.confine import FolderLimit
        return FolderLimit(tuple(self.dataset_roots()),
                           reason=f"The tab is served on {self._exposed_as}, reachable from other machines",
                           lift="serve it on 127.0.0.1 to allow any folder")

    def job_service(self):
        if self._service is None:
            from lib_lora_trainer.evaluate.auto import AutoTestHook
            from lib_lora_trainer.jobs.service import JobService

            self._service = JobService(self._data_dir, self._lora_dir, settings=self._settings)
            # train then test, in a subprocess of the trainer environment
            self._service.hooks.add(AutoTestHook(self._service.data_dir, settings=self._service.settings))
            self._service.start_background()
        return self._service

    def after_install(self, path) -> None:
        self.installed.append(str(path))

    def dataset_roots(self) -> list[Path]:
        roots = [self._data_dir / "datasets", *self._roots]
        for root in roots:
            root.mkdir(parents=True, exist_ok=True)
        return roots

    def settings(self) -> dict:
        return dict(self._settings)
