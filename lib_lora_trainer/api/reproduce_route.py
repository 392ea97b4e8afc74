"""POST /loras/reproduce: the training config a LoRA was made with (lora_file/reproduce.py).

The LoRA must lie inside the Lora folder or the allowed dataset folders. The base model is looked
up among the checkpoints in the allowed model folders (when the server confines them) and the base
models earlier jobs trained on; the image folder among the job that made the LoRA and the
allowed dataset folders. The answer's `submit` is a body for POST /jobs once the base model and
the dataset are known.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from lib_lora_trainer import confine

from . import actions as A
from . import docs
from .errors import ApiError
from .paths import resolve_inside
from .responses import SafeJSONResponse as JSONResponse
from .uploads import media_type, read_json_object

KEYS = ("path", "mode")
BODY = {
    "required": True,
    "description": "A LoRA .safetensors on the server (inside the Lora folder or the allowed dataset folders; a "
                   "relative path is taken in the Lora folder) and the mode: `again` (train the same recipe "
                   "from scratch) or `continue` (start from the LoRA's weights: network_weights).",
    "content": {"application/json": {
        "schema": {"type": "object", "required": ["path"],
                   "properties": {"path": {"type": "string", "description": "the LoRA file"},
                                  "mode": {"type": "string", "enum": ["again", "continue"]}}},
        "example": {"path": "vadym_v1.safetensors", "mode": "again"}}},
}
EXAMPLE = {
    "source": "/models/Lora/vadym_v1.safetensors", "mode": "again", "made_by": "sd-scripts ae72efb92b",
    "model_type": "sd1", "config": {"name": "vadym_v1", "base_model": None, "network_dim": 4, "...": "..."},
    "recovered": {"network_dim": "tensor shapes", "learning_rate": "ss_learning_rate"},
    "not_recovered": [{"field": "base_model", "reason": "no checkpoint named 'sd15.safetensors' ...",
                       "key": "ss_sd_model_name", "value": "sd15.safetensors"}],
    "notes": ["..."], "defaults": ["crop", "..."],
    "dataset": {"layout": "dataset_config", "folders": [{"name": "2_VadymPanchenko", "repeats": 2, "images": 4,
                                                          "class_tokens": "VadymPanchenko"}], "found": None},
    "submit": {"dataset": None, "config": {"name": "vadym_v1", "...": "..."}},
}


def confined_weights(cfg, service, settings: A.ApiSettings):
    """config.network_weights (continue from a LoRA) must, like a dataset, lie inside the Lora folder or
    the allowed dataset folders (or model folders): a client never makes the server read any file."""
    if cfg is None or not cfg.network_weights:
        return cfg
    roots = [Path(service.lora_dir), *settings.dataset_roots, *(settings.model_roots or ())]
    real = resolve_inside(cfg.network_weights, roots, "network_weights", what="LoRA")
    return cfg.replace(network_weights=str(real))


def _reproduce(service, settings: A.ApiSettings, path: Path, mode: str) -> dict:
    from lib_lora_trainer.lora_file.reproduce import hints_from_jobs, reproduce, scan_checkpoints

    try:
        jobs = service.list()
    except Exception:  # a stand-in or broken store: reproduce from the file alone
        jobs = []
    job_roots, bases = hints_from_jobs(jobs, path)
    checkpoints = [*scan_checkpoints(settings.model_roots or ()), *bases]
    if settings.model_roots is not None:   # an exposed server names only files in its model folders
        roots = [confine.real_path(r) for r in settings.model_roots]
        checkpoints = [c for c in checkpoints if confine.inside(confine.real_path(c), roots)]
    try:
        r = reproduce(path, mode=mode, checkpoints=checkpoints, dataset_roots=[*job_roots, *settings.dataset_roots])
    except FileNotFoundError:
        raise ApiError(404, f"no LoRA file {str(path)[:300]!r}", field="path",
                       fix="take the path from GET /loras") from None
    except (OSError, ValueError) as exc:
        raise ApiError(400, str(exc)[:500], field="path", fix="give a kohya-format LoRA .safetensors") from None
    found = r.dataset.found
    if found and not confine.inside(confine.real_path(found), [confine.real_path(d) for d in settings.dataset_roots]):
        found = None   # e.g. the job's prepared copy: POST /jobs takes only the allowed dataset folders
    return {**r.to_dict(), "submit": {"dataset": found, "config": r.config}}


def add_routes(router, service, settings: A.ApiSettings) -> None:
    @router.post("/loras/reproduce", name="lora_trainer_reproduce", summary="Reproduce the run that made a LoRA",
                 description="Rebuilds the TrainingConfig from the LoRA's ss_* metadata and tensor shapes (ours or "
                             "kohya sd-scripts'), and lists what could not be recovered (the dataset folder when "
                             "it is gone, the captions, settings with no TrainingConfig field, values it refuses) "
                             "with the reason.",
                 openapi_extra={"requestBody": BODY},
                 responses={200: docs.json_response("The reproduced config", EXAMPLE),
                            **docs.errors(400, 401, 403, 404, 415)})
    async def reproduce_lora(request: Request):
        kind = media_type(request)
        if kind not in ("", "application/json") and not kind.endswith("+json"):
            raise ApiError(415, f"unsupported content type {kind[:80]!r}", fix="send application/json")
        body = await read_json_object(request)
        A.unknown_keys(body, KEYS)
        mode = A.optional_text(body, "mode", 20) or "again"
        if mode not in ("again", "continue"):
            raise ApiError(400, f"mode {mode[:40]!r} is not 'again' or 'continue'", field="mode")
        roots = [Path(service.lora_dir), *settings.dataset_roots]
        path = resolve_inside(body.get("path"), roots, "path", what="LoRA")
        if path.suffix.lower() != ".safetensors":
            raise ApiError(400, f"{path.name[:200]!r} is not a .safetensors file", field="path",
                           fix="give a kohya-format LoRA .safetensors")
        if not os.path.isfile(path):
            raise ApiError(404, f"no LoRA file {str(path)[:300]!r}", field="path", fix="take the path from GET /loras")
        return JSONResponse(await run_in_threadpool(_reproduce, service, settings, path, mode))
