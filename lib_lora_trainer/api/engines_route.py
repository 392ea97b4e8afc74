"""GET /engines and POST /engines/kohya/install: what each engine needs, and sd-scripts installed by
the extension (engines/sd_scripts_install.py) in the background. The install clones from the URL
the server's settings name, never one from the request, and only a release the extension knows."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from . import actions as A
from . import docs
from .errors import ApiError
from .responses import SafeJSONResponse as JSONResponse
from .uploads import media_type, read_json_object

INSTALL_BODY = {
    "required": True,
    "description": "The release to install (`{}`: the newest one verified by the project); one of the "
                   "`sd_scripts_installs` versions of GET /engines.",
    "content": {"application/json": {
        "schema": {"type": "object", "properties": {"version": {"type": "string", "example": "v0.10.1"}}},
        "example": {"version": "v0.10.1"}}},
}
INSTALL_EXAMPLE = {"version": "v0.10.1", "state": "installing", "step": "step 1/5: git clone --branch v0.10.1 ...",
                   "reason": None, "commit": None, "log": "/data/engines/sd-scripts/v0.10.1/install.log"}
STATUS_EXAMPLE = {
    "engines": {"builtin": {"display_name": "builtin (diffusers + peft)", "available": True, "version": "0.1.0",
                            "path": "/ext", "python": "/data/trainer-env/bin/python", "reason": None},
                "kohya": {"display_name": "kohya sd-scripts", "available": False, "version": None, "path": None,
                          "python": None, "reason": "no sd-scripts checkout found: install it ..."}},
    "sd_scripts_installs": [{"version": "v0.10.1", "state": "not installed", "note": "verified here: ..."}],
}


def add_routes(router, service) -> None:
    @router.get("/engines", name="lora_trainer_engines", summary="Training engines and sd-scripts installs",
                description="Each engine: usable or not, its version and where it runs, and why not (written as "
                            "what to do). The sd-scripts releases the extension can install, each with its state: "
                            "not installed, installing (with its step), ready, broken (with the reason).",
                responses={200: docs.json_response("Engines", STATUS_EXAMPLE), **docs.errors(401)})
    async def engines(request: Request):
        from lib_lora_trainer.engines.cli import status_dict

        return JSONResponse(await run_in_threadpool(status_dict, service.settings))

    @router.post("/engines/kohya/install", name="lora_trainer_install_sd_scripts", status_code=202,
                 summary="Install kohya sd-scripts (in the background)",
                 description="Clones the release from the sd-scripts URL setting into the data dir, makes its own "
                             "venv and installs its requirements, in a background process; follow it with GET "
                             "/engines. A second request while one runs answers the running one.",
                 openapi_extra={"requestBody": INSTALL_BODY},
                 responses={202: docs.json_response("The install's state", INSTALL_EXAMPLE),
                            **docs.errors(400, 401, 403, 415)})
    async def install(request: Request):
        from lib_lora_trainer.engines.sd_scripts_install import DEFAULT_VERSION, RELEASES, start_install

        kind = media_type(request)
        if kind not in ("", "application/json") and not kind.endswith("+json"):
            raise ApiError(415, f"unsupported content type {kind[:80]!r}", fix="send application/json")
        body = await read_json_object(request)
        A.unknown_keys(body, ("version",))
        version = A.optional_text(body, "version", 40) or DEFAULT_VERSION
        known = [r.tag for r in RELEASES]
        if version not in known:
            raise ApiError(400, f"sd-scripts version {version[:40]!r} is not one the extension installs",
                           field="version", fix=f"use one of: {', '.join(known)}")
        settings = service.settings
        state = await run_in_threadpool(start_install, settings["engines_dir"], version, settings)
        return JSONResponse(state.to_dict(), status_code=202)
