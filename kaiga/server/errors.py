"""`ApiError` and its two shapes on the wire: OpenAI's for /v1, AUTOMATIC1111's (FastAPI's) for /sdapi.

OpenAI: `{"error": {"message", "type", "param", "code"}}`; A1111: `{"detail": message}`.

Example:
    >>> e = ApiError(400, "size: must be WxH (got 'big')", param="size", code="invalid_value")
    >>> openai_body(e)["error"]["param"], a1111_body(e)
    ('size', {'detail': "size: must be WxH (got 'big')"})
"""

from __future__ import annotations

from pydantic import ValidationError

from kaiga.request import describe_error

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          409: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}


class ApiError(Exception):
    """An error answered to the client: status, one message, the field at fault."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def openai_body(e: ApiError) -> dict:
    kind = _TYPES.get(e.status, "server_error" if e.status >= 500 else "invalid_request_error")
    return {"error": {"message": e.message, "type": kind, "param": e.param, "code": e.code}}


def a1111_body(e: ApiError) -> dict:
    return {"detail": e.message}


def is_a1111(path: str) -> bool:
    return path.startswith("/sdapi/")


def body_for(path: str, e: ApiError) -> dict:
    """`e` in the shape of the API that `path` belongs to."""
    return a1111_body(e) if is_a1111(path) else openai_body(e)


def from_validation(e: ValidationError, rename: dict[str, str] | None = None) -> ApiError:
    """A pydantic error as a 400 naming the first bad field (renamed to the client's field name)."""
    first = e.errors()[0]["loc"]
    message = describe_error(e)
    # A check across fields has no location; its message starts with the field's name.
    field = str(first[0]) if first else (message.split(":", 1)[0] if ":" in message else None)
    for ours, theirs in (rename or {}).items():
        if field == ours:
            field = theirs
    return ApiError(400, message, param=field, code="invalid_value")
