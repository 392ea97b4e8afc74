"""OpenAPI pieces: request bodies (documented by hand, since bodies are validated by our own
TrainingConfig and not by pydantic models) and response examples. Plain dicts only, so the
schema builds the same on fastapi 0.94 / pydantic 1 (A1111 1.10) and on current fastapi."""

from __future__ import annotations

from .errors import error_schema

JOB_EXAMPLE = {
    "id": "20240601-101500-a1b2c3", "name": "vadym_v1", "state": "running", "engine": "builtin",
    "created_at": 1717236900.0, "started_at": 1717236901.0, "finished_at": None,
    "progress": {"step": 269, "total": 1600, "epoch": 1, "epochs": 1, "rate": 2.3, "eta_s": 579.0, "loss": 0.141},
    "pid": 4242, "supervisor_pid": 4240, "error": None, "error_kind": None, "returncode": None,
    "paths": {"job_dir": "/data/jobs/20240601-101500-a1b2c3", "stdout": "/data/jobs/20240601-101500-a1b2c3/stdout.log",
              "stderr": "/data/jobs/20240601-101500-a1b2c3/stderr.log",
              "outputs": "/data/jobs/20240601-101500-a1b2c3/output", "installed": None},
}

SUBMIT_JSON_EXAMPLE = {
    "dataset": "/data/datasets/vadym", "preset": "sd15-portrait",
    "config": {"name": "vadym_v1", "trigger": "VadymPanchenko", "class_token": "man",
               "base_model": "/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors"},
    "crop": "center",
}

_JOB_SCHEMA = {"type": "object", "description": "A job: id, state, progress, error, paths.",
               "properties": {"id": {"type": "string"}, "state": {"type": "string"}}}

SUBMIT_BODY = {
    "required": True,
    "description": "Either JSON naming a dataset folder/.zip on the server (inside the allowed dataset "
                   "folders), or a multipart form uploading the dataset .zip.",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["dataset", "config"],
                       "properties": {
                           "dataset": {"type": "string", "description": "folder or .zip on the server"},
                           "preset": {"type": "string", "description": "preset id (GET /presets); "
                                                                       "omitted: the config defaults"},
                           "config": {"type": "object", "description": "TrainingConfig fields overriding "
                                                                       "the preset (GET /presets lists them); "
                                                                       "name and base_model are required"},
                           "crop": {"type": "string", "enum": ["center", "face", "none"]}}},
            "example": SUBMIT_JSON_EXAMPLE,
        },
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file", "config"],
                       "properties": {
                           "file": {"type": "string", "format": "binary", "description": "the dataset .zip"},
                           "config": {"type": "string", "description": "JSON object of TrainingConfig fields"},
                           "preset": {"type": "string"},
                           "crop": {"type": "string", "enum": ["center", "face", "none"]}}},
        },
    },
}

CHECK_BODY = {
    "required": True,
    "description": "A dataset folder/.zip on the server, or an uploaded .zip.",
    "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["path"],
                       "properties": {"path": {"type": "string"}, "trigger": {"type": "string"},
                                      "resolution": {"type": "integer", "minimum": 64, "maximum": 4096}}},
            "example": {"path": "/data/datasets/vadym", "trigger": "VadymPanchenko", "resolution": 512},
        },
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"],
                       "properties": {"file": {"type": "string", "format": "binary"},
                                      "trigger": {"type": "string"}, "resolution": {"type": "string"}}},
        },
    },
}

REPORT_EXAMPLE = {
    "source": "/data/datasets/vadym", "images": 16, "captions": 16,
    "summary": {"errors": 1, "warnings": 1, "usable_images": 16, "formats": {"JPEG": 16}, "min_short_side": 768,
                "median_short_side": 1024, "resolution": 512, "trigger": "VadymPanchenko", "token_check": "ok",
                "by_code": {"caption_not_utf8": 1, "blurry": 1}},
    "problems": [{"code": "caption_not_utf8", "severity": "error", "path": "img_03.txt",
                  "message": "not valid UTF-8 (looks like cp1252)", "fix": "Save the caption as UTF-8 ..."}],
}


def json_response(description: str, example=None, schema: dict | None = None) -> dict:
    content: dict = {"schema": schema or {"type": "object"}}
    if example is not None:
        content["example"] = example
    return {"description": description, "content": {"application/json": content}}


def errors(*codes: int) -> dict:
    examples = {
        400: {"error": "learning_rate = 5 is out of range: use a value between 0 (exclusive) and 1.",
              "field": "learning_rate", "fix": "correct the request as the error says and send it again"},
        401: {"error": "authentication required: this API needs HTTP Basic credentials", "field": None,
              "fix": "send HTTP Basic credentials"},
        403: {"error": "'/etc' is outside the allowed dataset folders", "field": "dataset",
              "fix": "put the dataset inside one of the allowed dataset folders (/data/datasets) and send that path"},
        404: {"error": "no job with id 'x'", "field": "job_id", "fix": "list the jobs with GET /jobs to find the id"},
        409: {"error": "job 20240601-101500-a1b2c3 is succeeded; only failed, cancelled or interrupted jobs "
                       "can be resumed", "field": None, "fix": "check the job's state with GET /jobs/{id} first"},
        413: {"error": "the upload is over the 2147483648-byte limit", "field": "file",
              "fix": "send a smaller file"},
        415: {"error": "unsupported content type 'text/plain'", "field": None,
              "fix": "send application/json or multipart/form-data"},
        429: {"error": "too many open event streams (16)", "field": None, "fix": "close another event stream"},
    }
    titles = {400: "Bad request", 401: "Authentication required", 403: "Path outside the allowed folders",
              404: "Unknown job", 409: "Not possible in the job's current state", 413: "Too large",
              415: "Unsupported content type", 429: "Too many event streams"}
    out = {}
    for code in codes:
        entry = error_schema(examples.get(code))
        entry["description"] = titles.get(code, "Error")
        out[code] = entry
    return out


JOB_RESPONSE = _JOB_SCHEMA
