"""The request body limit over a real socket: oversized bodies are refused while they arrive.

The client here is a plain socket, so the test sees what a slow or hostile client would: whether the
server answers before the body is sent, rather than what an HTTP library makes of a closed socket.
"""

from __future__ import annotations

import http.client
import json
import select
import socket

import httpx
import pytest

from kaiga.server.body_limit import MAX_BODY_BYTES

TOTAL = 4 * MAX_BODY_BYTES  # bytes offered: four times the limit
CHUNK = 2**16
ROUTES = ["/v1/images/generations", "/v1/jobs", "/v1/images/edits", "/sdapi/v1/txt2img", "/sdapi/v1/img2img"]


def post_bytes(server, path: str, *, declare_length: bool) -> tuple[int, dict, int]:
    """POST TOTAL bytes of JSON-looking filler to `path`, stopping as soon as the server answers.

    With `declare_length` the headers say Content-Length: TOTAL and no body is sent before the answer
    (a server that waited for the body would time out); without, the body is chunked (no length) and
    sent CHUNK by CHUNK. Returns (status, JSON body, body bytes sent).
    """
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    framing = f"Content-Length: {TOTAL}" if declare_length else "Transfer-Encoding: chunked"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: kaiga\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
    sent = 0
    chunk = f"{CHUNK:x}\r\n".encode() + b"[" * CHUNK + b"\r\n"
    while not declare_length and sent < TOTAL:
        readable, writable, _ = select.select([sock], [sock], [], 30)
        if readable:  # the answer came: stop sending
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the server closed: its answer is already here
            break
        sent += CHUNK
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = json.loads(response.read())
    sock.close()
    return response.status, body, sent


@pytest.mark.parametrize("path", ROUTES)
def test_a_declared_oversized_body_is_refused_unread(server, path):
    status, body, _ = post_bytes(server, path, declare_length=True)
    assert status == 413
    message = body["detail"] if path.startswith("/sdapi/") else body["error"]["message"]
    assert message == "request body: at most 23 MiB"


@pytest.mark.parametrize("path", ["/v1/jobs", "/sdapi/v1/txt2img"])
def test_a_chunked_oversized_body_is_cut_off_while_it_arrives(server, path):
    status, body, sent = post_bytes(server, path, declare_length=False)
    assert status == 413 and (body.get("detail") or body["error"]["code"] == "request_too_large")
    # Answered once the limit was passed, not after the whole body: what was sent beyond the limit is
    # what the two sockets' buffers held meanwhile.
    assert sent < TOTAL / 2, f"{sent:,} of {TOTAL:,} bytes were sent before the answer"


def test_an_unauthenticated_oversized_body_gets_413_not_a_read_then_401(serve):
    server = serve(require_keys=True)
    status, body, _ = post_bytes(server, "/v1/images/generations", declare_length=True)
    assert status == 413 and body["error"]["code"] == "request_too_large"
    status, _, sent = post_bytes(server, "/sdapi/v1/txt2img", declare_length=False)
    assert status == 413 and sent < TOTAL / 2
    small = httpx.post(server.url + "/v1/jobs", json={"prompt": "a red car"})
    assert small.status_code == 401  # a body within the limit reaches the auth check as before


def test_a_body_within_the_limit_passes(serve):
    server = serve(run_worker=False)
    padded = {"prompt": "a red car", "padding": " " * (MAX_BODY_BYTES - 2**20)}
    got = httpx.post(server.url + "/v1/jobs", json=padded)
    assert got.status_code == 400 and got.json()["error"]["param"] == "padding"  # read whole, parsed, checked
