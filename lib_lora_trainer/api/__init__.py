"""HTTP API over the job service (FastAPI router; works with pydantic 1 and 2)."""

from .app import DEFAULT_HOST, DEFAULT_PREFIX, create_app, mount
from .auth import parse_credentials
from .errors import ApiError
from .routes import build_router

__all__ = ["build_router", "create_app", "mount", "parse_credentials", "ApiError", "DEFAULT_PREFIX",
           "DEFAULT_HOST"]
