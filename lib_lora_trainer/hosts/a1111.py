"""The A1111 host: the ONLY module of the package that imports A1111's `modules`.

Paths always come from A1111 (cmd_opts.lora_dir, ckpt_dir, --data-dir), never hard-coded.
"""

from __future__ import annotations

import os
from pathlib import Path

from lib_lora_trainer import paths


def _cmd_opts():
    from modules import shared
    return shared.cmd_opts


def lora_dir() -> Path:
    opts = _cmd_opts()
    if getattr(opts, "lora_dir", None):
        return Path(opts.lora_dir)
    from modules import paths as a1111_paths
    return Path(a1111_paths.models_path) / "Lora"


def data_dir() -> Path:
    """LORA_TRAINER_DATA_DIR if set, else `<extension>/data` (under --data-dir's extensions/)."""
    return paths.data_dir()


def api_auth() -> str | None:
    """A1111 protects its own /sdapi routes with --api-auth, never extension routes: we reuse it."""
    return getattr(_cmd_opts(), "api_auth", None) or None


def dataset_roots() -> list[Path]:
    """Folders the API may read datasets from: <data dir>/datasets, plus LORA_TRAINER_DATASET_ROOTS."""
    roots = [data_dir() / "datasets"]
    roots += [Path(p) for p in os.environ.get("LORA_TRAINER_DATASET_ROOTS", "").split(os.pathsep) if p]
    for root in roots:
        root.mkdir(parents=True, exist_ok=True)
    return roots


_service = None


def job_service():
    """One JobService per A1111 process, kept across "Reload UI" (scripts/ is re-executed then,
    this package module is not) with its background job loop running."""
    global _service
    if _service is None:
        from lib_lora_trainer.jobs.service import JobService
        _service = JobService(data_dir(), lora_dir())
        _service.start_background()
    return _service


def mount_api(app) -> None:
    from lib_lora_trainer.api.app import mount
    from lib_lora_trainer.api.auth import parse_credentials

    service = job_service()
    mount(app, service, dataset_roots=dataset_roots(), upload_dir=data_dir() / "uploads",
          auth=parse_credentials(api_auth()) or None)
