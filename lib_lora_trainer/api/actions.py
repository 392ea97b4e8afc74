"""What the routes do, apart from HTTP: validate bodies, submit, check, list, transition.

Blocking functions (file system, SQLite, image checks) are called by the routes in a worker
thread. Every refusal is an ApiError with the API's error shape.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from starlette.requests import Request

from .errors import ApiError, from_message
from .events import SAMPLE_SUFFIXES
from .paths import resolve_inside
from .uploads import DEFAULT_MAX_UPLOAD_BYTES, extracted_upload, upload_label

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
SUBMIT_KEYS = ("dataset", "preset", "config", "crop")
CHECK_KEYS = ("path", "trigger", "resolution")
_CROPS = ("center", "face", "none")
MAX_LORAS = 5000


@dataclass
class ApiSettings:
    dataset_roots: list[Path]
    upload_dir: Path
    model_roots: list[Path] | None = None   # None: base_model paths are not confined
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    trusted_origins: tuple[str, ...] = ()
    poll_s: float = 0.5
    heartbeat_s: float = 15.0
    max_streams: int = 16
    max_stream_s: float | None = 3600.0
    zip_limits: Any = None
    open_streams: list[int] = field(default_factory=lambda: [0])


# ---- jobs --------------------------------------------------------------------------------------------------

def job_dict(job, request: Request | None = None, detail: bool = False) -> dict:
    from lib_lora_trainer.jobs.cli import job_json

    data = job_json(job)
    if detail:
        data["config"] = job.config
        data["resume_from"] = job.resume_from
        data["attempts"] = job.attempts
        data["loss_history"] = (job.progress or {}).get("loss_history") or []
        data["val_loss_history"] = (job.progress or {}).get("val_loss_history") or []
        data["samples"] = list_samples(job, request)
    return data


def list_samples(job, request: Request | None) -> list[dict]:
    folder = Path(job.job_dir) / "output" / "sample"
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file())
    except OSError:
        return []
    return [{"name": p.name, "path": str(p), "url": sample_url(request, job.id, p.name) if request else None}
            for p in files]


def sample_url(request: Request, job_id: str, name: str) -> str:
    return str(request.url_for("lora_trainer_sample", job_id=job_id, filename=name))


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id or ""):
        raise ApiError(404, f"no job with id {job_id[:80]!r}", field="job_id")
    return job_id


def get_job(service, job_id: str):
    try:
        return service.get(check_job_id(job_id))
    except KeyError:
        raise ApiError(404, f"no job with id {job_id!r}", field="job_id") from None


def unknown_keys(body: dict, allowed: Sequence[str]) -> None:
    import difflib

    for key in body:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ApiError(400, f"unknown field {str(key)[:80]!r}.{hint}", field=str(key)[:80],
                           fix=f"use only {', '.join(allowed)}")


def optional_text(body: dict, key: str, limit: int = 1000) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string, got {type(value).__name__}", field=key)
    if len(value) > limit:
        raise ApiError(400, f"{key} is {len(value)} characters long, over {limit}", field=key)
    if "\x00" in value:
        raise ApiError(400, f"{key} contains a NUL byte", field=key)
    return value


# ---- submit ------------------------------------------------------------------------------------------------

def job_request(body: dict, settings: ApiSettings):
    """(TrainingConfig, crop) from {"preset", "config", "crop"}; ApiError 400/403 otherwise."""
    from lib_lora_trainer.config.errors import ConfigError
    from lib_lora_trainer.config.presets import resolve_config
    from lib_lora_trainer.jobs.install import InstallError, validate_lora_name

    preset = optional_text(body, "preset", 200)
    overrides = body.get("config")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ApiError(400, f"config must be a JSON object of training settings, got {type(overrides).__name__}",
                       field="config", fix="send config as {\"name\": ..., \"base_model\": ...}")
    crop = optional_text(body, "crop", 20)
    if crop is not None and crop not in _CROPS:
        raise ApiError(400, f"crop {crop[:40]!r} is not one of {', '.join(_CROPS)}", field="crop")
    try:
        cfg = resolve_config(preset, overrides)
    except ConfigError as exc:
        raise ApiError(400, str(exc), field=exc.field,
                       fix=f"change {exc.field or 'the config'} as the error says (GET /presets lists every "
                           "field with its type, bounds and help)") from None
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        raise ApiError(400, f"the config cannot be used: {type(exc).__name__}: {str(exc)[:300]}",
                       field="config") from None
    try:
        validate_lora_name(cfg.name)
    except InstallError as exc:
        raise ApiError(400, str(exc), field="name", fix="rename the LoRA with letters, digits, '-' and '_'") \
            from None
    if settings.model_roots is not None:
        real = resolve_inside(cfg.base_model, settings.model_roots, "base_model", what="model")
        cfg = cfg.replace(base_model=str(real))
    return cfg, crop


def submit(service, dataset, cfg, crop):
    from lib_lora_trainer.jobs.service import SubmitError

    try:
        return service.submit(dataset, cfg, crop=crop)
    except SubmitError as exc:
        cause = exc.__cause__
        raise from_message(400, str(exc), field=getattr(cause, "field", None)) from None


def submit_upload(service, upload, cfg, crop, settings: ApiSettings):
    with extracted_upload(upload, settings.upload_dir, settings.max_upload_bytes, settings.zip_limits) as folder:
        return submit(service, folder, cfg, crop)


# ---- dataset check -----------------------------------------------------------------------------------------

def parse_resolution(value: Any, from_form: bool = False) -> int:
    if value is None:
        return 512
    if isinstance(value, str) and from_form:
        value = value.strip()
        if not re.fullmatch(r"\d{1,5}", value):
            raise ApiError(400, f"resolution {value[:40]!r} is not a whole number", field="resolution")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 64 <= value <= 4096 or value % 8:
        raise ApiError(400, f"resolution {str(value)[:40]} must be a whole number of pixels from 64 to 4096, "
                            "a multiple of 8", field="resolution", fix="use e.g. 512 (SD1), 768 or 1024 (SDXL)")
    return value


def parse_trigger(value: Any) -> str | None:
    from lib_lora_trainer.dataset.layout import validate_token

    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError(400, f"trigger must be a string, got {type(value).__name__}", field="trigger")
    if not value.strip():
        return None
    try:
        return validate_token(value, "trigger")
    except ValueError as exc:
        raise ApiError(400, str(exc)[:500], field="trigger") from None


def check_folder(src: Path, resolution: int, trigger: str | None, display: str) -> dict:
    from lib_lora_trainer.dataset.check import check_dataset
    from lib_lora_trainer.dataset.source import SourceError, open_source
    from lib_lora_trainer.dataset.zip_import import UnsafeArchiveError

    try:
        with open_source(src) as root:
            return check_dataset(root, resolution, trigger, workers=1, display_root=display).to_dict()
    except (SourceError, UnsafeArchiveError, NotADirectoryError) as exc:
        raise from_message(400, str(exc), field="path") from None
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise ApiError(400, f"{display[:300]} cannot be read: {exc.strerror or exc}", field="path",
                       fix="give an existing folder or .zip") from None


def check_upload(upload, resolution, trigger, settings: ApiSettings) -> dict:
    from lib_lora_trainer.dataset.check import check_dataset

    with extracted_upload(upload, settings.upload_dir, settings.max_upload_bytes, settings.zip_limits) as folder:
        return check_dataset(folder, resolution, trigger, workers=1, display_root=upload_label(upload)).to_dict()


# ---- LoRA listing ------------------------------------------------------------------------------------------

def inside(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or real.is_relative_to(root)


def list_loras(lora_dir: Path) -> list[dict]:
    from lib_lora_trainer.lora_file.sidecar import read_lora_details, sidecar_path

    root = Path(os.path.realpath(lora_dir))
    if not root.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.lower().endswith(".safetensors") or name.startswith("."):
                continue
            path = Path(dirpath) / name
            entry = {"path": str(path), "name": path.stem}
            if not inside(path, root) or (sidecar_path(path).exists() and not inside(sidecar_path(path), root)):
                entry["error"] = "links to a file outside the Lora folder; not read"
            else:
                try:
                    entry = read_lora_details(path).to_dict()
                except Exception as exc:  # a broken or foreign file must not hide the others
                    entry["error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            out.append(entry)
            if len(out) >= MAX_LORAS:
                return out
    return out


def transition(service, job_id: str, action: str):
    from lib_lora_trainer.jobs.states import TransitionError
    from lib_lora_trainer.jobs.store import StaleStateError

    job = get_job(service, job_id)
    try:
        return service.cancel(job.id, wait=False) if action == "cancel" else service.resume(job.id)
    except KeyError:
        raise ApiError(404, f"no job with id {job_id!r}", field="job_id") from None
    except (TransitionError, StaleStateError) as exc:
        raise ApiError(409, str(exc)) from None

