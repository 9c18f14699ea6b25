"""/v1/live over a real websocket (the `websockets` client against uvicorn): frames as a prompt is edited,
skipped frames, debounced typing, refused messages that keep the socket open, and the API's auth."""

import base64
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from kaiga.metadata import record_of

FIRST = {"prompt": "a red car", "seed": 3, "steps": 2}


def _ws(server) -> str:
    return server.url.replace("http://", "ws://") + "/v1/live"


def _next(live, *, timeout: float = 60) -> dict:
    return json.loads(live.recv(timeout=timeout))


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_frames_follow_the_edits_and_match_the_api(server):
    with connect(_ws(server)) as live:
        ready = _next(live)
        assert ready["type"] == "ready" and ready["model"] == "tiny-diffusion"
        live.send(json.dumps(FIRST))
        frame = _next(live)
        assert frame["type"] == "frame" and frame["frame"] == 1 and frame["latency_ms"] >= frame["ms"] > 0
        png = base64.b64decode(frame["image"])
        record = record_of(io.BytesIO(png))  # the PNG carries its record, as every image kaiga writes
        assert (record.prompt, record.seed, record.steps) == ("a red car", 3, 2) == (
            frame["record"]["prompt"], frame["record"]["seed"], frame["record"]["steps"])

        live.send(json.dumps({"prompt": "a red car "}))  # the same tokens: the same picture, not drawn again
        skipped = _next(live)
        assert skipped["type"] == "skipped" and skipped["similarity"] == pytest.approx(1.0)

        live.send(json.dumps({"steps": 0}))  # refused, naming the field; the request stays as it was
        error = _next(live)
        assert (error["type"], error["field"]) == ("error", "steps") and "between 1 and 150" in error["error"]
        live.send("{not json")
        assert "not valid JSON" in _next(live)["error"]

        live.send(json.dumps({"prompt": "a blue car", "seed": 4}))  # merged onto the request: steps stay 2
        blue = _next(live)
        made_of = blue["record"]["prompt"], blue["record"]["seed"], blue["record"]["steps"]
        assert blue["type"] == "frame" and made_of == ("a blue car", 4, 2)
        blue_png = base64.b64decode(blue["image"])

    # a frame is the picture the job API makes of the same request
    job = server.wait_for_job(httpx.post(server.url + "/v1/jobs", json={
        "prompt": "a blue car", "seed": 4, "steps": 2, "width": 64, "height": 64}).json()["id"])
    made = httpx.get(job["images"][0]["url"]).content
    np.testing.assert_array_equal(_pixels(blue_png), _pixels(made))


def test_typing_is_debounced_to_the_newest_prompt(serve):
    server = serve(live_debounce_ms=400)
    typed = ["a g", "a gr", "a gre", "a gree", "a green", "a green car"]
    with connect(_ws(server)) as live:
        assert _next(live)["debounce_ms"] == 400
        live.send(json.dumps({"seed": 1, "steps": 1, "prompt": typed[0]}))
        for text in typed[1:]:
            live.send(json.dumps({"prompt": text}))
        frame = _next(live)
        assert frame["type"] == "frame" and frame["record"]["prompt"] == "a green car"
        with pytest.raises(TimeoutError):  # the keystrokes before it were never drawn
            live.recv(timeout=1.5)


def test_a_first_message_needs_a_prompt_and_n_is_refused(server):
    with connect(_ws(server)) as live:
        _next(live)
        live.send(json.dumps({"seed": 2}))
        assert _next(live)["field"] == "prompt"
        live.send(json.dumps({**FIRST, "n": 4}))
        assert _next(live)["field"] == "n"
        live.send(json.dumps({**FIRST, "model": "nope"}))
        assert _next(live)["field"] == "model"
        live.send(json.dumps(FIRST))
        assert _next(live)["type"] == "frame"


def test_live_needs_the_api_key_where_keys_are_required(serve):
    from kaiga.store.keys import create_key

    server = serve(require_keys=True)
    key = create_key(server.state.db, name="ann")
    with pytest.raises(Exception) as refused:  # closed with 1008 before or right after the handshake
        with connect(_ws(server)) as live:
            live.recv(timeout=10)
    assert isinstance(refused.value, InvalidStatus) or "1008" in str(refused.value)
    with connect(_ws(server), additional_headers={"Authorization": f"Bearer {key}"}) as live:
        assert _next(live)["type"] == "ready"
    # a browser's way: the key offered as a subprotocol beside kaiga.v1, which the server picks
    with connect(_ws(server), subprotocols=["kaiga.v1", f"kaiga.bearer.{key}"]) as live:
        assert live.subprotocol == "kaiga.v1" and _next(live)["type"] == "ready"
