"""JSON rendering that cannot fail on what a client sent back to it.

Starlette's JSONResponse encodes with ensure_ascii=False and allow_nan=False, so an error message
echoing a lone surrogate from the request ("\\ud800" is valid JSON) or a NaN raises while the
answer is rendered: a 500. Here the readable UTF-8 form is tried first, then an ASCII-escaped
form with non-finite numbers as null.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import JSONResponse


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(content: Any) -> bytes:
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"),
                          default=str).encode("utf-8")
    except (UnicodeEncodeError, ValueError):
        return json.dumps(_finite(content), ensure_ascii=True, allow_nan=False, separators=(",", ":"),
                          default=str).encode("ascii")


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
