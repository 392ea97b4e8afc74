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
import traceback
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, StreamingResponse

from . import actions as A
from . import docs, engines_route, reproduce_route
from .actions import ApiSettings
from .auth import AuthSetting, BasicAuth
from .errors import ApiError
from .events import SAMPLE_SUFFIXES, job_events
from .paths import resolve_inside
from .responses import SafeJSONResponse as JSONResponse
from .uploads import (DEFAULT_MAX_UPLOAD_BYTES, form_file, form_text, media_type, parse_json_object, read_form,
                      read_json_object)

log = logging.getLogger("lora_trainer.api")


# ---- guard: auth, cross-site check, error mapping -------------------------------------------------

def _same_origin(request: Request, trusted: Sequence[str]) -> bool:
    """No Origin (not a browser), a trusted one, or the host the browser asked for (behind a proxy:
    X-Forwarded-Host). A page on another site can post a form to 127.0.0.1; this refuses it."""
    origin = request.headers.get("origin")
    if origin is None or origin in trusted:
        return True
    try:
        netloc = urlsplit(origin).netloc.lower()
    except ValueError:
        return False
    hosts = [request.headers.get("host", "")]
    hosts += [h.strip() for h in request.headers.get("x-forwarded-host", "").split(",")]
    return any(netloc and netloc == h.lower() for h in hosts if h)


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


# ---- the router --------------------------------------------------------------------------------------------

def build_router(service, *, dataset_roots: Sequence[str | os.PathLike], upload_dir: str | os.PathLike,
                 auth: AuthSetting = None, model_roots: Sequence[str | os.PathLike] | None = None,
                 max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, trusted_origins: Sequence[str] = (),
                 poll_s: float = 0.5, heartbeat_s: float = 15.0, max_streams: int = 16,
                 max_stream_s: float | None = 3600.0, zip_limits=None) -> APIRouter:
    """Routes over `service` (a JobService); include them with a prefix, e.g. /lora-trainer/v1.

    dataset_roots: folders a client may name as dataset paths (resolved, symlinks followed).
    upload_dir: where uploaded zips are extracted (a fresh folder per request, removed after).
    auth: (user, password), a list of them, "u:p,u2:p2", or None (no auth: bind to 127.0.0.1).
    model_roots: if given, config.base_model must also lie inside one of these folders.
    max_upload_bytes: cap on an upload request (413 beyond). trusted_origins: browser origins
    besides the server's own that may POST. poll_s / heartbeat_s / max_streams / max_stream_s:
    event streams (poll interval, heartbeat interval, how many at once, lifetime of one).
    zip_limits: a dataset.zip_import.ZipLimits for uploads (default: its 2 GiB / 10k files).
    """
    settings = ApiSettings(dataset_roots=[Path(r) for r in dataset_roots], upload_dir=Path(upload_dir),
                           model_roots=None if model_roots is None else [Path(r) for r in model_roots],
                           max_upload_bytes=int(max_upload_bytes), trusted_origins=tuple(trusted_origins),
                           poll_s=poll_s, heartbeat_s=heartbeat_s, max_streams=max_streams,
                           max_stream_s=max_stream_s, zip_limits=zip_limits)
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
            async with read_form(request, settings.max_upload_bytes) as form:
                if "dataset" in form:
                    raise ApiError(400, "send either an uploaded `file` or a `dataset` path, not both",
                                   field="dataset")
                upload = form_file(form)
                overrides = parse_json_object(form_text(form, "config") or "{}", "config field", field="config")
                body = {"config": overrides, "preset": form_text(form, "preset"), "crop": form_text(form, "crop")}
                cfg, crop = A.job_request(body, settings)
                cfg = reproduce_route.confined_weights(cfg, service, settings)
                job = await run_in_threadpool(A.submit_upload, service, upload, cfg, crop, settings)
        elif kind in ("", "application/json") or kind.endswith("+json"):
            body = await read_json_object(request)
            A.unknown_keys(body, A.SUBMIT_KEYS)
            if "dataset" not in body:
                raise ApiError(400, "dataset is required: a folder or .zip path on the server", field="dataset",
                               fix="send \"dataset\", or upload a .zip as multipart/form-data")
            dataset = resolve_inside(body["dataset"], settings.dataset_roots, "dataset")
            cfg, crop = A.job_request(body, settings)
            cfg = reproduce_route.confined_weights(cfg, service, settings)
            job = await run_in_threadpool(A.submit, service, dataset, cfg, crop)
        else:
            raise ApiError(415, f"unsupported content type {kind[:80]!r}")
        return JSONResponse(A.job_dict(job), status_code=201)

    @router.get("/jobs", name="lora_trainer_jobs", summary="List jobs",
                description="Every job in the store, oldest first.",
                responses={200: docs.json_response("The jobs", {"jobs": [docs.JOB_EXAMPLE]}), **common})
    async def list_jobs(request: Request):
        jobs = await run_in_threadpool(service.list)
        return JSONResponse({"jobs": [A.job_dict(j) for j in jobs]})

    @router.get("/jobs/{job_id}", name="lora_trainer_job", summary="One job, with its config, loss curve and samples",
                responses={200: docs.json_response("The job", docs.JOB_EXAMPLE), **docs.errors(401, 404)})
    async def get_job(request: Request, job_id: str):
        job = await run_in_threadpool(A.get_job, service, job_id)
        return JSONResponse(A.job_dict(job, request, detail=True))

    @router.post("/jobs/{job_id}/cancel", name="lora_trainer_cancel", summary="Cancel a queued or running job",
                 description="A queued job is cancelled at once; a running one is asked to save and stop (the "
                             "answer does not wait for it: follow GET /jobs/{id}). A cancelled job can be resumed.",
                 responses={200: docs.json_response("The job", docs.JOB_EXAMPLE), **docs.errors(401, 403, 404, 409)})
    async def cancel_job(request: Request, job_id: str):
        job = await run_in_threadpool(A.transition, service, job_id, "cancel")
        return JSONResponse(A.job_dict(job))

    @router.post("/jobs/{job_id}/resume", name="lora_trainer_resume",
                 summary="Resume a failed, cancelled or interrupted job",
                 description="Queues the job again from its last saved training state.",
                 responses={200: docs.json_response("The job", docs.JOB_EXAMPLE), **docs.errors(401, 403, 404, 409)})
    async def resume_job(request: Request, job_id: str):
        job = await run_in_threadpool(A.transition, service, job_id, "resume")
        return JSONResponse(A.job_dict(job))

    @router.get("/jobs/{job_id}/events", name="lora_trainer_events", summary="Follow a job (server-sent events)",
                description="text/event-stream: `progress` (the job JSON, when it changes), `log` (new log "
                            "lines), `sample` (new sample images), `end` (the job finished; the stream ends), "
                            "and a heartbeat comment every 15 s.",
                response_class=StreamingResponse,
                responses={200: {"description": "The event stream",
                                 "content": {"text/event-stream": {"example": "event: progress\ndata: {...}\n\n"}}},
                           **docs.errors(401, 404, 429)})
    async def job_events_route(request: Request, job_id: str):
        job = await run_in_threadpool(A.get_job, service, job_id)
        if settings.open_streams[0] >= settings.max_streams:
            raise ApiError(429, f"too many open event streams ({settings.max_streams})")

        async def stream():
            settings.open_streams[0] += 1
            try:
                async for chunk in job_events(
                        request=request, get_job=lambda: service.get(job.id),
                        job_payload=A.job_dict, sample_url=lambda name: A.sample_url(request, job.id, name),
                        poll_s=settings.poll_s, heartbeat_s=settings.heartbeat_s,
                        max_s=settings.max_stream_s):
                    yield chunk
            finally:
                settings.open_streams[0] -= 1

        # Content-Encoding set: A1111's GZipMiddleware then leaves the stream alone (gzip would hold
        # events back in the compressor); X-Accel-Buffering: nginx likewise.
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no",
                                          "Content-Encoding": "identity"})

    @router.get("/jobs/{job_id}/samples/{filename}", name="lora_trainer_sample", summary="A sample image of a job",
                response_class=FileResponse,
                responses={200: {"description": "The image", "content": {"image/png": {}}}, **docs.errors(401, 404)})
    async def job_sample(request: Request, job_id: str, filename: str):
        job = await run_in_threadpool(A.get_job, service, job_id)
        folder = Path(job.job_dir) / "output" / "sample"
        path = folder / filename
        ok = (A.SAMPLE_NAME.match(filename) and ".." not in filename and path.suffix.lower() in SAMPLE_SUFFIXES
              and path.is_file() and not path.is_symlink() and A.inside(path, Path(os.path.realpath(folder))))
        if not ok:
            raise ApiError(404, f"job {job.id} has no sample {filename[:80]!r}", field="filename",
                           fix="take the sample names from GET /jobs/{id} or the `sample` events")
        return FileResponse(path)

    # ---- train then test ----
    @router.get("/jobs/{job_id}/test", name="lora_trainer_test_report", summary="The job's test: progress and report",
                description="The state of the job's test (none/running/done/failed) with its progress in pictures "
                            "(`done`/`total`, `text` = \"testing: n/N pictures\") or its error, and the scored "
                            "report of the test grids (LoRA weights x prompts, fixed seeds) once it finished. "
                            "Grid images: GET /jobs/{id}/test/{filename}.",
                responses={200: docs.json_response("The report or its state", {
                    "state": "running", "done": 24, "total": 145, "text": "testing: 24/145 pictures",
                    "error": None, "report": None}), **docs.errors(401, 404)})
    async def test_report(request: Request, job_id: str):
        from lib_lora_trainer.evaluate.auto import test_status
        from lib_lora_trainer.evaluate.job_eval import report_for_job

        job = await run_in_threadpool(A.get_job, service, job_id)
        status = await run_in_threadpool(test_status, Path(job.job_dir))
        report = report_for_job(Path(job.job_dir)) if status.state == "done" else None
        return JSONResponse({**status.as_dict(), "report": report})

    @router.post("/jobs/{job_id}/test", name="lora_trainer_test_start", status_code=202,
                 summary="Start (or restart) the test of a succeeded job",
                 description="Renders the test grids in the background (inside A1111 with its own txt2img, "
                             "standalone in the trainer environment); follow it with GET /jobs/{id}/test. "
                             "A test that is running already is not started twice.",
                 responses={202: docs.json_response("Started", {"state": "running", "done": 0, "total": 0,
                                                                "text": "testing: starting (loading the model)"}),
                            **docs.errors(401, 403, 404, 409)})
    async def test_start(request: Request, job_id: str):
        from lib_lora_trainer.evaluate.auto import TestStartError, test_status, tester_for

        job = await run_in_threadpool(A.get_job, service, job_id)
        if job.state != "succeeded":
            raise ApiError(409, f"job {job.id} is {job.state}; only a succeeded job can be tested", field="job_id")
        try:
            await run_in_threadpool(tester_for(service).start_test, job)
        except TestStartError as exc:
            raise ApiError(409, str(exc), field="job_id")
        status = await run_in_threadpool(test_status, Path(job.job_dir))
        return JSONResponse(status.as_dict(), status_code=202)

    @router.get("/jobs/{job_id}/test/{filename}", name="lora_trainer_test_file", summary="A test grid or report.md",
                response_class=FileResponse,
                responses={200: {"description": "The file", "content": {"image/png": {}, "text/markdown": {}}},
                           **docs.errors(401, 404)})
    async def test_file(request: Request, job_id: str, filename: str):
        import re

        job = await run_in_threadpool(A.get_job, service, job_id)
        folder = Path(job.job_dir) / "test"
        path = folder / filename
        ok = (re.fullmatch(r"grid_[a-z]+\.png|report\.md", filename) is not None and path.is_file()
              and not path.is_symlink())
        if not ok:
            raise ApiError(404, f"job {job.id} has no test file {filename[:80]!r}", field="filename",
                           fix="take the names from GET /jobs/{id}/test (grids)")
        return FileResponse(path, media_type="text/markdown" if filename.endswith(".md") else "image/png")

    @router.post("/jobs/{job_id}/install-recommended", name="lora_trainer_install_recommended",
                 summary="Install the checkpoint and weight the job's test recommends",
                 description="The test ranks every saved checkpoint x weight (README: best checkpoint and weight). "
                             "This replaces the job's installed LoRA with the recommended checkpoint (same name and "
                             "sidecar) and makes the recommended weight its preferred weight.",
                 responses={200: docs.json_response("Installed", {
                     "installed": "/models/Lora/zyrette.safetensors", "checkpoint": "zyrette-000002.safetensors",
                     "weight": 0.75, "sentence": "Use zyrette-000002.safetensors at weight 0.75: ..."}),
                     **docs.errors(401, 404, 409)})
    async def install_recommended(request: Request, job_id: str):
        from lib_lora_trainer.evaluate.recommend import RecommendError, install_recommended as install

        job = await run_in_threadpool(A.get_job, service, job_id)
        try:
            path, best = await run_in_threadpool(install, job)
        except RecommendError as exc:
            raise ApiError(409, str(exc), field="job_id", fix="run the job's test (POST /jobs/{id}/test) first")
        return JSONResponse({"installed": str(path), "checkpoint": best["checkpoint"], "weight": best["weight"],
                             "sentence": best["sentence"]})

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
        return JSONResponse({"loras": await run_in_threadpool(A.list_loras, Path(service.lora_dir))})

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
            async with read_form(request, settings.max_upload_bytes) as form:
                upload = form_file(form)
                resolution = A.parse_resolution(form_text(form, "resolution"), from_form=True)
                trigger = A.parse_trigger(form_text(form, "trigger"))
                report = await run_in_threadpool(A.check_upload, upload, resolution, trigger, settings)
        elif kind in ("", "application/json") or kind.endswith("+json"):
            body = await read_json_object(request)
            A.unknown_keys(body, A.CHECK_KEYS)
            path = resolve_inside(body.get("path"), settings.dataset_roots, "path")
            resolution = A.parse_resolution(body.get("resolution"))
            trigger = A.parse_trigger(body.get("trigger"))
            report = await run_in_threadpool(A.check_folder, path, resolution, trigger, str(path))
        else:
            raise ApiError(415, f"unsupported content type {kind[:80]!r}")
        return JSONResponse(report)

    reproduce_route.add_routes(router, service, settings)   # POST /loras/reproduce
    engines_route.add_routes(router, service)               # GET /engines, POST /engines/kohya/install
    return router
