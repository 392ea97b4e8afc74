"""The HTTP routes over the job service (mounted by the caller under e.g. /lora-trainer/v1).

Written for both fastapi 0.94 + pydantic 1.10 (inside A1111 1.10) and current fastapi +
pydantic 2: no pydantic models and no fastapi body/query parameters. Handlers take the raw
`Request`, bodies are validated by TrainingConfig.from_dict (ConfigError -> 400 with its field),
and every answer is a plain JSON dict. Errors have one shape, `{"error", "field", "fix"}`.

Every route goes through `_GuardedRoute`: HTTP Basic auth (when configured), a cross-site check on
POSTs (a browser form cannot post to the API from another site), then the handler; ApiError
becomes its JSON answer, and anything unexpected a 500 in the same shape.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, StreamingResponse

from . import docs
from .auth import AuthSetting, BasicAuth
from .errors import ApiError, from_message
from .events import SAMPLE_SUFFIXES, job_events
from .paths import resolve_inside
from .uploads import (DEFAULT_MAX_UPLOAD_BYTES, extracted_upload, form_file, form_text, media_type,
                      parse_json_object, read_form, read_json_object, upload_label)

log = logging.getLogger("lora_trainer.api")

_JOB_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SAMPLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,199}$")
_SUBMIT_KEYS = ("dataset", "preset", "config", "crop")
_CHECK_KEYS = ("path", "trigger", "resolution")
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
    zip_limits: Any = None
    open_streams: list[int] = field(default_factory=lambda: [0])


# ---- guard: auth, cross-site check, error mapping -------------------------------------------------

def _same_origin(request: Request, trusted: Sequence[str]) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not a browser, or a same-origin GET
        return True
    if origin in trusted:
        return True
    host = request.headers.get("host", "")
    try:
        return bool(host) and urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False


def _route_class(auth: BasicAuth, settings: ApiSettings) -> type[APIRoute]:
    class _GuardedRoute(APIRoute):
        def get_route_handler(self) -> Callable:
            handler = super().get_route_handler()

            async def guarded(request: Request):
                try:
                    auth.require(request.headers.get("authorization"))
                    if request.method not in ("GET", "HEAD", "OPTIONS") and \
                            not _same_origin(request, settings.trusted_origins):
                        raise ApiError(403, "cross-site request refused: the Origin header does not match "
                                            "this server", fix="call the API from the web UI's own page, or add "
                                                               "your origin to trusted_origins")
                    return await handler(request)
                except ApiError as exc:
                    return exc.response()
                except Exception as exc:  # a bug: answer in our shape and keep the traceback
                    log.error("lora-trainer API %s %s failed:\n%s", request.method, request.url.path,
                              traceback.format_exc())
                    return ApiError(500, f"internal error: {type(exc).__name__}: {str(exc)[:300]}").response()

            return guarded

    return _GuardedRoute


# ---- shared helpers ---------------------------------------------------------------------------------

def _job_dict(job, request: Request | None = None, detail: bool = False) -> dict:
    from lib_lora_trainer.jobs.cli import job_json

    data = job_json(job)
    if detail:
        data["config"] = job.config
        data["resume_from"] = job.resume_from
        data["attempts"] = job.attempts
        data["loss_history"] = (job.progress or {}).get("loss_history") or []
        data["samples"] = _samples(job, request)
    return data


def _samples(job, request: Request | None) -> list[dict]:
    folder = Path(job.job_dir) / "output" / "sample"
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SAMPLE_SUFFIXES and p.is_file())
    except OSError:
        return []
    return [{"name": p.name, "path": str(p), "url": _sample_url(request, job.id, p.name) if request else None}
            for p in files]


def _sample_url(request: Request, job_id: str, name: str) -> str:
    return str(request.url_for("lora_trainer_sample", job_id=job_id, filename=name))


def _check_job_id(job_id: str) -> str:
    if not _JOB_ID.match(job_id or ""):
        raise ApiError(404, f"no job with id {job_id[:80]!r}", field="job_id")
    return job_id


def _get_job(service, job_id: str):
    try:
        return service.get(_check_job_id(job_id))
    except KeyError:
        raise ApiError(404, f"no job with id {job_id!r}", field="job_id") from None


def _unknown_keys(body: dict, allowed: Sequence[str]) -> None:
    import difflib

    for key in body:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ApiError(400, f"unknown field {str(key)[:80]!r}.{hint}", field=str(key)[:80],
                           fix=f"use only {', '.join(allowed)}")


def _optional_text(body: dict, key: str, limit: int = 1000) -> str | None:
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


# ---- submit -------------------------------------------------------------------------------------------

def _job_request(body: dict, settings: ApiSettings):
    """(TrainingConfig, crop) from {"preset", "config", "crop"}; ApiError 400/403 otherwise."""
    from lib_lora_trainer.config.errors import ConfigError
    from lib_lora_trainer.config.presets import resolve_config
    from lib_lora_trainer.jobs.install import InstallError, validate_lora_name

    preset = _optional_text(body, "preset", 200)
    overrides = body.get("config")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ApiError(400, f"config must be a JSON object of training settings, got {type(overrides).__name__}",
                       field="config", fix="send config as {\"name\": ..., \"base_model\": ...}")
    crop = _optional_text(body, "crop", 20)
    if crop is not None and crop not in _CROPS:
        raise ApiError(400, f"crop {crop[:40]!r} is not one of {', '.join(_CROPS)}", field="crop")
    try:
        cfg = resolve_config(preset, overrides)
    except ConfigError as exc:
        raise ApiError(400, str(exc), field=exc.field,
                       fix=f"change {exc.field or 'the config'} as the error says (GET /presets lists every "
                           "field with its type, bounds and help)") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ApiError(400, f"the config cannot be used: {str(exc)[:300]}", field="config") from None
    try:
        validate_lora_name(cfg.name)
    except InstallError as exc:
        raise ApiError(400, str(exc), field="name", fix="rename the LoRA with letters, digits, '-' and '_'") \
            from None
    if settings.model_roots is not None:
        real = resolve_inside(cfg.base_model, settings.model_roots, "base_model", what="model")
        cfg = cfg.replace(base_model=str(real))
    return cfg, crop


def _submit(service, dataset, cfg, crop):
    from lib_lora_trainer.jobs.service import SubmitError

    try:
        return service.submit(dataset, cfg, crop=crop)
    except SubmitError as exc:
        cause = exc.__cause__
        raise from_message(400, str(exc), field=getattr(cause, "field", None)) from None


def _submit_upload(service, upload, cfg, crop, settings: ApiSettings):
    with extracted_upload(upload, settings.upload_dir, settings.max_upload_bytes, settings.zip_limits) as folder:
        return _submit(service, folder, cfg, crop)


# ---- dataset check --------------------------------------------------------------------------------------

def _resolution(value: Any) -> int:
    if value is None:
        return 512
    if isinstance(value, str):
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


def _trigger(value: Any) -> str | None:
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


def _check_folder(src: Path, resolution: int, trigger: str | None, display: str) -> dict:
    from lib_lora_trainer.dataset.check import check_dataset
    from lib_lora_trainer.dataset.source import SourceError, open_source
    from lib_lora_trainer.dataset.zip_import import UnsafeArchiveError

    try:
        with open_source(src) as root:
            return check_dataset(root, resolution, trigger, workers=1, display_root=display).to_dict()
    except (SourceError, UnsafeArchiveError, NotADirectoryError) as exc:
        raise from_message(400, str(exc), field="path") from None


def _check_upload(upload, resolution, trigger, settings: ApiSettings) -> dict:
    from lib_lora_trainer.dataset.check import check_dataset

    with extracted_upload(upload, settings.upload_dir, settings.max_upload_bytes, settings.zip_limits) as folder:
        return check_dataset(folder, resolution, trigger, workers=1, display_root=upload_label(upload)).to_dict()


# ---- LoRA listing ----------------------------------------------------------------------------------------

def _inside(path: Path, root: Path) -> bool:
    real = Path(os.path.realpath(path))
    return real == root or real.is_relative_to(root)


def _list_loras(lora_dir: Path) -> list[dict]:
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
            if not _inside(path, root) or (sidecar_path(path).exists() and not _inside(sidecar_path(path), root)):
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


# ---- the router -------------------------------------------------------------------------------------------

def build_router(service, *, dataset_roots: Sequence[str | os.PathLike], upload_dir: str | os.PathLike,
                 auth: AuthSetting = None, model_roots: Sequence[str | os.PathLike] | None = None,
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, trusted_origins: Sequence[str] = (),
                 poll_s: float = 0.5, heartbeat_s: float = 15.0, max_streams: int = 16,
                 zip_limits=None) -> APIRouter:
    """Routes over `service` (a JobService); include them with a prefix, e.g. /lora-trainer/v1.

    dataset_roots: folders a client may name as dataset paths (resolved, symlinks followed).
    upload_dir: where uploaded zips are extracted (a fresh folder per request, removed after).
    auth: (user, password), a list of them, "u:p,u2:p2", or None (no auth: bind to 127.0.0.1).
    model_roots: if given, config.base_model must also lie inside one of these folders.
    max_upload_bytes: cap on an upload request (413 beyond). trusted_origins: browser origins
    besides the server's own that may POST. poll_s / heartbeat_s / max_streams: event streams.
    """
    settings = ApiSettings(dataset_roots=[Path(r) for r in dataset_roots], upload_dir=Path(upload_dir),
                           model_roots=None if model_roots is None else [Path(r) for r in model_roots],
                           max_upload_bytes=int(max_upload_bytes), trusted_origins=tuple(trusted_origins),
                           poll_s=poll_s, heartbeat_s=heartbeat_s, max_streams=max_streams, zip_limits=zip_limits)
    guard = BasicAuth(auth)
    router = APIRouter(route_class=_route_class(guard, settings), tags=["lora-trainer"])
    common = docs.errors(401)

    # ---- jobs ----
    @router.post("/jobs", name="lora_trainer_submit", status_code=201, summary="Submit a training job",
                 description="Checks and prepares the dataset, writes the training TOMLs and queues the job. "
                             "JSON names a dataset folder or .zip on the server (inside the allowed dataset "
                             "folders); a multipart form uploads the .zip instead (`file`, plus `config` as a "
                             "JSON text field and optional `preset` / `crop`). Defaults < preset < config.",
                 openapi_extra={"requestBody": docs.SUBMIT_BODY},
                 responses={201: docs.json_response("The queued job", docs.JOB_EXAMPLE, docs.JOB_RESPONSE),
                            **docs.errors(400, 401, 403, 413, 415)})
    async def submit_job(request: Request):
        kind = media_type(request)
        if kind == "multipart/form-data":
            form = await read_form(request, settings.max_upload_bytes)
            if "dataset" in form:
                raise ApiError(400, "send either an uploaded `file` or a `dataset` path, not both", field="dataset")
            upload = form_file(form)
            overrides = parse_json_object(form_text(form, "config") or "{}", "config field", field="config")
            body = {"config": overrides, "preset": form_text(form, "preset"), "crop": form_text(form, "crop")}
            cfg, crop = _job_request(body, settings)
            job = await run_in_threadpool(_submit_upload, service, upload, cfg, crop, settings)
        elif kind in ("", "application/json") or kind.endswith("+json"):
            body = await read_json_object(request)
            _unknown_keys(body, _SUBMIT_KEYS)
            if "dataset" not in body:
                raise ApiError(400, "dataset is required: a folder or .zip path on the server", field="dataset",
                               fix="send \"dataset\", or upload a .zip as multipart/form-data")
            dataset = resolve_inside(body["dataset"], settings.dataset_roots, "dataset")
            cfg, crop = _job_request(body, settings)
            job = await run_in_threadpool(_submit, service, dataset, cfg, crop)
        else:
            raise ApiError(415, f"unsupported content type {kind[:80]!r}")
        return JSONResponse(_job_dict(job), status_code=201)

    @router.get("/jobs", name="lora_trainer_jobs", summary="List jobs",
                description="Every job in the store, oldest first.",
                responses={200: docs.json_response("The jobs", {"jobs": [docs.JOB_EXAMPLE]}), **common})
    async def list_jobs(request: Request):
        jobs = await run_in_threadpool(service.list)
        return JSONResponse({"jobs": [_job_dict(j) for j in jobs]})

    @router.get("/jobs/{job_id}", name="lora_trainer_job", summary="One job, with its config, loss curve and samples",
                responses={200: docs.json_response("The job", docs.JOB_EXAMPLE), **docs.errors(401, 404)})
    async def get_job(request: Request, job_id: str):
        job = await run_in_threadpool(_get_job, service, job_id)
        return JSONResponse(_job_dict(job, request, detail=True))

    @router.post("/jobs/{job_id}/cancel", name="lora_trainer_cancel", summary="Cancel a queued or running job",
                 description="A queued job is cancelled at once; a running one is asked to save and stop (the "
                             "answer does not wait for it: follow GET /jobs/{id}). A cancelled job can be resumed.",
                 responses={200: docs.json_response("The job", docs.JOB_EXAMPLE), **docs.errors(401, 403, 404, 409)})
    async def cancel_job(request: Request, job_id: str):
        job = await run_in_threadpool(_transition, service, job_id, "cancel")
        return JSONResponse(_job_dict(job))

    @router.post("/jobs/{job_id}/resume", name="lora_trainer_resume",
                 summary="Resume a failed, cancelled or interrupted job",
                 description="Queues the job again from its last saved training state.",
                 responses={200: docs.json_response("The job", docs.JOB_EXAMPLE), **docs.errors(401, 403, 404, 409)})
    async def resume_job(request: Request, job_id: str):
        job = await run_in_threadpool(_transition, service, job_id, "resume")
        return JSONResponse(_job_dict(job))

    @router.get("/jobs/{job_id}/events", name="lora_trainer_events", summary="Follow a job (server-sent events)",
                description="text/event-stream: `progress` (the job JSON, when it changes), `log` (new log "
                            "lines), `sample` (new sample images), `end` (the job finished; the stream ends), "
                            "and a heartbeat comment every 15 s.",
                response_class=StreamingResponse,
                responses={200: {"description": "The event stream",
                                 "content": {"text/event-stream": {"example": "event: progress\ndata: {...}\n\n"}}},
                           **docs.errors(401, 404, 429)})
    async def job_events_route(request: Request, job_id: str):
        job = await run_in_threadpool(_get_job, service, job_id)
        if settings.open_streams[0] >= settings.max_streams:
            raise ApiError(429, f"too many open event streams ({settings.max_streams})")

        async def stream():
            settings.open_streams[0] += 1
            try:
                async for chunk in job_events(
                        request=request, get_job=lambda: service.get(job.id),
                        job_payload=_job_dict, sample_url=lambda name: _sample_url(request, job.id, name),
                        poll_s=settings.poll_s, heartbeat_s=settings.heartbeat_s):
                    yield chunk
            finally:
                settings.open_streams[0] -= 1

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/jobs/{job_id}/samples/{filename}", name="lora_trainer_sample", summary="A sample image of a job",
                response_class=FileResponse,
                responses={200: {"description": "The image", "content": {"image/png": {}}}, **docs.errors(401, 404)})
    async def job_sample(request: Request, job_id: str, filename: str):
        job = await run_in_threadpool(_get_job, service, job_id)
        folder = Path(job.job_dir) / "output" / "sample"
        path = folder / filename
        ok = (_SAMPLE_NAME.match(filename) and ".." not in filename and path.suffix.lower() in SAMPLE_SUFFIXES
              and path.is_file() and not path.is_symlink() and _inside(path, Path(os.path.realpath(folder))))
        if not ok:
            raise ApiError(404, f"job {job.id} has no sample {filename[:80]!r}", field="filename",
                           fix="take the sample names from GET /jobs/{id} or the `sample` events")
        return FileResponse(path)

    # ---- LoRAs, presets, datasets ----
    @router.get("/loras", name="lora_trainer_loras", summary="List the LoRAs in the Lora folder",
                description="Every .safetensors under the Lora folder with its metadata, A1111 sidecar "
                            "(activation text, preferred weight, ...), preview and the txt2img prompt. Links "
                            "leading outside the folder are listed with an error and not read.",
                responses={200: docs.json_response("The LoRAs", {"loras": [{
                    "path": "/models/Lora/vadym_v1.safetensors", "name": "vadym_v1", "size_bytes": 151000000,
                    "sd_version": "SD1", "metadata": {"ss_network_dim": "128"},
                    "sidecar": {"activation text": "VadymPanchenko", "preferred weight": 1.0},
                    "preview": None, "prompt": "<lora:vadym_v1:1>, VadymPanchenko"}]}), **common})
    async def list_loras(request: Request):
        return JSONResponse({"loras": await run_in_threadpool(_list_loras, Path(service.lora_dir))})

    @router.get("/presets", name="lora_trainer_presets", summary="Presets and every config field",
                description="The presets (partial overlays on the defaults) and each TrainingConfig field with "
                            "its type, default, bounds, choices and help.",
                responses={200: docs.json_response("Presets and fields", {
                    "presets": [{"id": "cpu-tiny", "name": "Tiny model on CPU (test/demo)", "description": "...",
                                 "model_types": ["sd1"], "values": {"resolution": 64}, "for_gpu": False}],
                    "fields": [{"name": "learning_rate", "type": "float", "default": 0.0001, "help": "...",
                                "group": "optimizer", "required": False, "choices": None, "minimum": 0.0,
                                "maximum": 1.0}]}), **common})
    async def presets(request: Request):
        from lib_lora_trainer.config.presets import list_presets
        from lib_lora_trainer.config.training_config import TrainingConfig

        return JSONResponse({"presets": [p.as_dict() for p in list_presets()],
                             "fields": [f._asdict() for f in TrainingConfig.fields_info()]})

    @router.post("/datasets/check", name="lora_trainer_check", summary="Check a dataset (quality report)",
                 description="Inspects every image and caption: unreadable or tiny images, duplicates, blur, "
                             "caption encoding and length, the trigger word... Each problem has a code, a "
                             "severity and a fix. JSON names a folder or .zip on the server; a multipart form "
                             "uploads a .zip (`file`, optional `trigger`, `resolution`).",
                 openapi_extra={"requestBody": docs.CHECK_BODY},
                 responses={200: docs.json_response("The report", docs.REPORT_EXAMPLE),
                            **docs.errors(400, 401, 403, 413, 415)})
    async def check(request: Request):
        kind = media_type(request)
        if kind == "multipart/form-data":
            form = await read_form(request, settings.max_upload_bytes)
            upload = form_file(form)
            resolution = _resolution(form_text(form, "resolution"))
            trigger = _trigger(form_text(form, "trigger"))
            report = await run_in_threadpool(_check_upload, upload, resolution, trigger, settings)
        elif kind in ("", "application/json") or kind.endswith("+json"):
            body = await read_json_object(request)
            _unknown_keys(body, _CHECK_KEYS)
            path = resolve_inside(body.get("path"), settings.dataset_roots, "path")
            resolution = _resolution(body.get("resolution"))
            trigger = _trigger(body.get("trigger"))
            report = await run_in_threadpool(_check_folder, path, resolution, trigger, str(path))
        else:
            raise ApiError(415, f"unsupported content type {kind[:80]!r}")
        return JSONResponse(report)

    return router


def _transition(service, job_id: str, action: str):
    from lib_lora_trainer.jobs.states import TransitionError
    from lib_lora_trainer.jobs.store import StaleStateError

    job = _get_job(service, job_id)
    try:
        return service.cancel(job.id, wait=False) if action == "cancel" else service.resume(job.id)
    except KeyError:
        raise ApiError(404, f"no job with id {job_id!r}", field="job_id") from None
    except (TransitionError, StaleStateError) as exc:
        raise ApiError(409, str(exc)) from None
