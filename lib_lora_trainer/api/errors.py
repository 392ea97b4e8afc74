"""The API's one error shape: `{"error": what went wrong, "field": which input or null, "fix": what to do}`."""

from __future__ import annotations

from .responses import SafeJSONResponse

_DEFAULT_FIX = {
    400: "correct the request as the error says and send it again",
    401: "send HTTP Basic credentials (the user:password given to --api-auth / --auth)",
    403: "use a path inside the allowed folders",
    404: "list the jobs with GET /jobs to find the id",
    409: "check the job's state with GET /jobs/{id} first",
    413: "send a smaller request",
    415: "send application/json or multipart/form-data",
    429: "close another event stream, or poll GET /jobs/{id} instead",
    500: "see the server log",
}


class ApiError(Exception):
    """An error answered to the client; never a 5xx for anything the client sent."""

    def __init__(self, status: int, error: str, *, field: str | None = None, fix: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field
        self.fix = fix or _DEFAULT_FIX.get(status, "")
        self.headers = headers

    def body(self) -> dict:
        return {"error": self.error, "field": self.field, "fix": self.fix}

    def response(self) -> SafeJSONResponse:
        return SafeJSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_message(status: int, message: str, field: str | None = None) -> ApiError:
    """An ApiError from a library message; "... Fix: do this." (zip import style) is split in two."""
    text = str(message)
    head, sep, fix = text.partition(" Fix: ")
    if sep:
        return ApiError(status, head.strip(), field=field, fix=fix.strip().rstrip("."))
    return ApiError(status, text, field=field)


def error_schema(example: dict | None = None) -> dict:
    """OpenAPI response entry for the error shape."""
    schema = {"type": "object", "required": ["error"],
              "properties": {"error": {"type": "string"}, "field": {"description": "the input at fault, or null"},
                             "fix": {"type": "string"}}}
    content: dict = {"schema": schema}
    if example:
        content["example"] = example
    return {"content": {"application/json": content}}
