"""The request body limit: every body is counted as it arrives and refused (413) past `MAX_BODY_BYTES`.

`BodyLimit` is a plain ASGI middleware, outside routing, so it runs before auth and before a body is
parsed: neither a client without a key nor a JSON, form or upload route can make the server hold
more than the limit. A `Content-Length` over it is answered at once, with the body unread; a body
without one (chunked) is cut off at the first chunk past it. The answer has the API's error shape
(OpenAI's, or A1111's under /sdapi/) and closes the connection, so the client stops sending.

`MAX_BODY_BYTES` is the largest body a client needs: an A1111 img2img blending `MAX_BLEND` init images of
`MAX_UPLOAD_BYTES` each in base64 (4/3 larger), and 1 MiB of other fields, rounded up to whole MiB.

Example:
    >>> amount(MAX_BODY_BYTES)
    '23 MiB'
    >>> too_large_body("/sdapi/v1/txt2img", 2**20)
    {'detail': 'request body: at most 1 MiB'}
"""

from __future__ import annotations

import json
import math

from kaiga.request import MAX_BLEND, MAX_UPLOAD_BYTES
from kaiga.server.errors import ApiError, body_for
from kaiga.store.uploads import amount

_IMG2IMG_BYTES = MAX_BLEND * math.ceil(MAX_UPLOAD_BYTES * 4 / 3) + 2**20  # a blend's images in base64, and the fields
MAX_BODY_BYTES = math.ceil(_IMG2IMG_BYTES / 2**20) * 2**20


class _TooLarge(Exception):
    """Raised to the app from `receive` once the body passes the limit (the 413 is already sent)."""


def too_large_body(path: str, limit: int) -> dict:
    return body_for(path, ApiError(413, f"request body: at most {amount(limit)}", code="request_too_large"))


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 while it arrives, before the app reads it."""

    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(scope, send)  # the body is never read
        received, started, refused = 0, False, False

        async def counting_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    if not started:
                        refused = True
                        await self._refuse(scope, send)
                    raise _TooLarge  # whatever the app makes of it, its own answer is dropped below
            return message

        async def checked_send(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, checked_send)
        except _TooLarge:
            if not refused:
                raise

    async def _refuse(self, scope, send) -> None:
        body = json.dumps(too_large_body(scope["path"], self.limit)).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
