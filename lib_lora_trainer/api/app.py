"""The API as an app: `create_app` for the standalone server, `mount` for A1111.

Standalone (the caller binds; keep the default 127.0.0.1 unless `auth` is set, since without
it anyone who can reach the port can train on and read this machine's files):

    service = JobService(data_dir, lora_dir)
    app = create_app(service, dataset_roots=[Path("~/datasets").expanduser()],
                     upload_dir=service.data_dir / "uploads", auth=("me", "secret"), background=True)
    uvicorn.run(app, host="127.0.0.1", port=7861)

Inside A1111 (scripts/, in on_app_started; A1111 does not guard extension routes, so pass its
--api-auth credentials through, `auth.parse_credentials(cmd_opts.api_auth)`):

    script_callbacks.on_app_started(lambda demo, app: mount(
        app, service, dataset_roots=[...], upload_dir=..., auth=parse_credentials(cmd_opts.api_auth) or None))

The routes then live under /lora-trainer/v1 (GET /lora-trainer/v1/jobs ...) and appear in
A1111's /docs.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Sequence

from fastapi import APIRouter, FastAPI

from .auth import AuthSetting, BasicAuth, BasicAuthMiddleware
from .routes import build_router

DEFAULT_PREFIX = "/lora-trainer/v1"
DEFAULT_HOST = "127.0.0.1"


def mount(app: FastAPI, service, *, dataset_roots: Sequence[str | os.PathLike], upload_dir: str | os.PathLike,
          auth: AuthSetting = None, prefix: str = DEFAULT_PREFIX, **options) -> APIRouter:
    """Add the routes to an existing app (A1111's) under `prefix`; returns the router.
    `options` are build_router's (model_roots, max_upload_bytes, trusted_origins, ...)."""
    router = build_router(service, dataset_roots=dataset_roots, upload_dir=upload_dir, auth=auth, **options)
    app.include_router(router, prefix=prefix)
    return router


def create_app(service, *, dataset_roots: Sequence[str | os.PathLike], upload_dir: str | os.PathLike,
               auth: AuthSetting = None, prefix: str = DEFAULT_PREFIX, background: bool = False,
               **options) -> FastAPI:
    """A FastAPI app serving only the trainer API (plus /docs and /openapi.json, behind the same
    auth). `background=True` runs the job loop (service.start_background) while the app is up.
    Bind it to 127.0.0.1 (DEFAULT_HOST) unless `auth` is set."""

    @asynccontextmanager
    async def lifespan(_app):
        if background:
            service.start_background()
        try:
            yield
        finally:
            if background:
                service.stop_background()

    from lib_lora_trainer import __version__ as version

    app = FastAPI(title="LoRA trainer API", version=str(version), lifespan=lifespan,
                  description="Train LoRAs: submit jobs, follow them, list the results. Errors are "
                              "{\"error\", \"field\", \"fix\"}.")
    guard = BasicAuth(auth)
    if guard.enabled:  # also guards /docs and /openapi.json, which the router does not own
        app.add_middleware(BasicAuthMiddleware, auth=guard)
    mount(app, service, dataset_roots=dataset_roots, upload_dir=upload_dir, auth=auth, prefix=prefix, **options)
    return app
