"""Who may call: bearer API keys (OpenAI's way) and HTTP Basic (A1111's `--api-auth`), on every route.

When any auth is configured (`require_keys` or `api_auth`), every API route needs one of:
`Authorization: Bearer <key>` with a key from `kaiga keys create`; Basic credentials that are a
`--api-auth` user:password pair; or Basic with any user name and an API key as the password (so one
kind of key serves A1111 clients too). Without auth everyone is "anonymous". Image files are
exempt: their URL holds the image's SHA-256, which nobody can guess.

Example:
    >>> basic_credentials("Basic " + base64.b64encode(b"ann:secret").decode())
    ('ann', 'secret')
    >>> bearer_token("Bearer kg-abc")
    'kg-abc'
"""

from __future__ import annotations

import base64
import binascii
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from kaiga.server.errors import ApiError
from kaiga.server.state import Principal, ServerState
from kaiga.store.keys import verify_key

ANONYMOUS = Principal("anonymous", "anon")
# A browser's WebSocket cannot send an Authorization header; it offers the key as a subprotocol instead
# (as Kubernetes does): `new WebSocket(url, ["kaiga.v1", "kaiga.bearer." + key])`. Not in the URL: access logs
# print URLs.
WS_PROTOCOL, WS_BEARER = "kaiga.v1", "kaiga.bearer."


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def _key_principal(state: ServerState, key: str) -> Principal | None:
    info = await run_in_threadpool(verify_key, state.db, key)
    return Principal(info.name or f"key-{info.id}", f"key-{info.id}") if info is not None else None


def subprotocol_key(conn: HTTPConnection) -> str | None:
    """The API key a browser's WebSocket offered as the subprotocol `kaiga.bearer.<key>`, else None."""
    offered = [p.strip() for p in conn.headers.get("sec-websocket-protocol", "").split(",")]
    return next((p.removeprefix(WS_BEARER) for p in offered if p.startswith(WS_BEARER)), None) or None


async def authenticate(request: HTTPConnection) -> Principal:
    """FastAPI dependency of every API route (and the websocket's check): who is calling, or 401."""
    state: ServerState = request.app.state.kaiga
    if not state.settings.has_auth:
        return ANONYMOUS
    header = request.headers.get("authorization")
    key = bearer_token(header) or subprotocol_key(request)
    if key is not None and (found := await _key_principal(state, key)) is not None:
        return found
    creds = basic_credentials(header)
    if creds is not None:
        user, password = creds
        for pair in state.settings.api_auth:
            good_user, good_password = pair.split(":", 1)
            # compare_digest on both, always: the time taken says nothing about which part was wrong
            if secrets.compare_digest(user.encode(), good_user.encode()) & secrets.compare_digest(
                    password.encode(), good_password.encode()):
                return Principal(user, f"basic-{user}")
        if (found := await _key_principal(state, password)) is not None:
            return found
    if request.url.path.startswith("/sdapi/"):
        raise ApiError(401, "Incorrect username or password", headers={"WWW-Authenticate": "Basic"})
    if header is None and key is None:
        raise ApiError(401, "You didn't provide an API key. Send `Authorization: Bearer <key>`; "
                            "make a key with `kaiga keys create`.", code="invalid_api_key")
    shown = (key or "")[:6]
    raise ApiError(401, f"Incorrect API key provided: {shown}****.", code="invalid_api_key")
