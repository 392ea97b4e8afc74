"""HTTP Basic authentication for the API.

A1111 protects only its own /sdapi routes with --api-auth, never an extension's routes, so the
router checks credentials itself, on every route. Comparisons are constant-time
(`hmac.compare_digest`) and every configured credential is compared, so the time taken does not
tell which part of a guess was right.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Iterable, Sequence, Union

from .errors import ApiError

Credential = tuple[str, str]
AuthSetting = Union[Credential, Sequence[Credential], None]
REALM = "lora-trainer"


def parse_credentials(text: str | None) -> list[Credential]:
    """A1111's --api-auth / our --auth syntax: "user:password" or "u1:p1,u2:p2" (a password may hold ':')."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user:
            raise ValueError(f"auth entry {item!r} is not user:password")
        out.append((user, password))
    return out


def _normalise(setting: AuthSetting) -> list[tuple[bytes, bytes]]:
    if setting is None:
        return []
    if isinstance(setting, str):
        items: Iterable = parse_credentials(setting)
    elif len(setting) == 2 and all(isinstance(x, str) for x in setting):
        items = [setting]
    else:
        items = setting
    creds = []
    for user, password in items:
        if not isinstance(user, str) or not isinstance(password, str) or not user:
            raise ValueError("auth must be (user, password) strings with a non-empty user")
        creds.append((user.encode("utf-8"), password.encode("utf-8")))
    return creds


class BasicAuth:
    """`auth=None` lets everyone in (bind to 127.0.0.1 then); otherwise Basic credentials are required."""

    def __init__(self, setting: AuthSetting):
        self.credentials = _normalise(setting)

    @property
    def enabled(self) -> bool:
        return bool(self.credentials)

    def accepts(self, header: str | bytes | None) -> bool:
        if not self.credentials:
            return True
        if not header:
            return False
        if isinstance(header, str):
            header = header.encode("latin-1", errors="replace")
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"basic" or len(token) > 8192:
            return False
        try:
            decoded = base64.b64decode(token.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        ok = False
        for want_user, want_password in self.credentials:  # no early exit: same work for every guess
            ok |= hmac.compare_digest(user, want_user) & hmac.compare_digest(password, want_password)
        return ok

    def error(self) -> ApiError:
        return ApiError(401, "authentication required: this API needs HTTP Basic credentials",
                        headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'})

    def require(self, header: str | bytes | None) -> None:
        if not self.accepts(header):
            raise self.error()


class BasicAuthMiddleware:
    """Pure ASGI middleware guarding a whole (standalone) app, /docs and /openapi.json included."""

    def __init__(self, app, auth: BasicAuth):
        self.app = app
        self.auth = auth

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or not self.auth.enabled:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope.get("headers") or [] if k == b"authorization"), None)
        if self.auth.accepts(header):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        err = self.auth.error()
        body = json.dumps(err.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in (err.headers or {}).items()]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
