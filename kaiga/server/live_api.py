"""`/v1/live`: a websocket that draws a request as it is typed (kaiga.live.LiveSession), newest first.

Messages in are JSON objects of request fields, merged onto the request as it stands: the first names a prompt
(`{"prompt": "a red car", "seed": 3}`), later ones only what changed (`{"prompt": "a red car in the rain"}`,
`{"guidance": 5}`); a field sent as null goes back to its default. Messages out:

- `ready`: `model` (the default), `debounce_ms`, `similarity`; sent once, on connecting.
- `frame`: `frame` (its number), `image` (base64 PNG carrying its record, signed), `record`, `ms` (drawing it),
  `latency_ms` (from the last message it answers to the frame sent), `similarity`, `cached` (true: a frame drawn
  before for the same request, shown again: the last 32 are kept).
- `skipped`: `frame`, `reason` (nothing changed; the prompt barely moved; superseded: a newer message came while
  it was drawn, so it was abandoned at its next denoising step), `similarity`.
- `error`: `field`, `error`. The message was refused and the request stays as it was; the socket stays open.

Frames are previews: drawn in the server process, not queued and not kept in the gallery (keep one by sending
its request to `/v1/jobs`). Typing is debounced: a frame starts once no message came for `debounce_ms`, and
messages that arrive while a frame is drawn are merged, so only the newest request is drawn next. One frame is
drawn at a time on the server, whoever asks (the cores are shared).

Auth is the API's: `Authorization: Bearer <key>`, or, from a browser, the subprotocol `kaiga.bearer.<key>`
beside `kaiga.v1` (kaiga.server.auth). A refused connection is closed with code 1008 and the reason.

Example (the `websockets` client):
    >>> import json, websockets.sync.client as ws                                    # doctest: +SKIP
    >>> with ws.connect("ws://127.0.0.1:7860/v1/live") as live:                      # doctest: +SKIP
    ...     _ = live.recv(); live.send(json.dumps({"prompt": "a red car", "seed": 3}))
    ...     json.loads(live.recv())["type"]
    'frame'
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from kaiga.live import LiveSession, LiveSettings, error_message
from kaiga.model_files import ModelError
from kaiga.request import RequestError
from kaiga.server.auth import WS_PROTOCOL, authenticate
from kaiga.server.errors import ApiError
from kaiga.server.state import ServerState

router = APIRouter()
MAX_MESSAGE_CHARS = 16_000  # a request's fields: the prompt's 1,000 characters and the rest, with room
POLICY_VIOLATION = 1008  # the websocket close code for a refused connection
# Every frame is drawn on this one thread, one at a time in the process: two at once would share the cores, and
# torch's OpenMP gives each calling thread a team of its own (the threadpool's many threads would each keep one).
_DRAWER = ThreadPoolExecutor(1, thread_name_prefix="kaiga-live")
_MAKING = threading.Lock()


def live_studio(state: ServerState):
    """The server's Studio for previews (its own model cache beside the workers'), made on first use."""
    with _MAKING:
        if state.live_studio is None:
            from kaiga.store.uploads import UploadStore
            from kaiga.studio import Studio  # imports torch: only when a preview is asked for

            state.live_studio = Studio(device=state.settings.device, batch_size=1, precision=state.settings.precision,
                                       backend=state.settings.backend,
                                       uploads=UploadStore(state.settings.uploads_dir()))
        return state.live_studio


class _Connection:
    """One websocket's session: a receive loop that merges updates, a draw loop that renders the newest."""

    def __init__(self, ws: WebSocket, session: LiveSession, settings: LiveSettings):
        self.ws, self.session, self.settings = ws, session, settings
        self.changed = asyncio.Event()
        self.last_message = 0.0  # perf_counter of the newest accepted update
        self.sending = asyncio.Lock()

    async def send(self, message: dict) -> None:
        async with self.sending:
            await self.ws.send_text(json.dumps(message))

    async def receive(self) -> None:
        while True:
            text = await self.ws.receive_text()
            if len(text) > MAX_MESSAGE_CHARS:
                await self.send({"type": "error", "field": None,
                                 "error": f"message: at most {MAX_MESSAGE_CHARS} characters (got {len(text)})"})
                continue
            try:
                fields = json.loads(text)
                await run_in_threadpool(self.session.update, fields)  # reads the model's files: off the loop
            except json.JSONDecodeError as e:
                await self.send({"type": "error", "field": None, "error": f"message: not valid JSON ({e.msg})"})
                continue
            except (RequestError, ModelError) as e:
                await self.send(error_message(e))
                continue
            self.last_message = time.perf_counter()
            self.changed.set()

    async def draw(self) -> None:
        debounce = self.settings.debounce_ms / 1000
        while True:
            await self.changed.wait()
            while (rest := self.last_message + debounce - time.perf_counter()) > 0:  # the typing has not rested
                await asyncio.sleep(rest)
            self.changed.clear()
            answered = self.last_message
            try:
                frame = await asyncio.get_running_loop().run_in_executor(_DRAWER, self._render, answered)
            except (RequestError, ModelError) as e:  # what the model itself refused when drawing
                await self.send(error_message(e))
                continue
            if frame.skipped is not None:
                await self.send({"type": "skipped", "frame": frame.number, "reason": frame.skipped,
                                 "similarity": frame.similarity})
                continue
            latency = round((time.perf_counter() - answered) * 1000, 1)
            await self.send({"type": "frame", "frame": frame.number, "image": base64.b64encode(frame.png).decode(),
                             "record": frame.record, "ms": frame.ms, "latency_ms": latency,
                             "similarity": frame.similarity, "cached": frame.cached})

    def _render(self, answered: float):
        # a frame that a newer message made stale is abandoned at its next denoising step
        return self.session.render(stale=lambda: self.last_message > answered)


@router.websocket("/v1/live")
async def live(ws: WebSocket):
    state: ServerState = ws.app.state.kaiga
    try:
        await authenticate(ws)
    except ApiError as e:
        await ws.close(code=POLICY_VIOLATION, reason=e.message[:120])
        return
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    await ws.accept(subprotocol=WS_PROTOCOL if WS_PROTOCOL in offered else None)
    settings = LiveSettings(debounce_ms=state.settings.live_debounce_ms, similarity=state.settings.live_similarity,
                            supersede=state.settings.live_supersede, warm_start=state.settings.live_warm_start)
    studio = await run_in_threadpool(live_studio, state)
    session = LiveSession(studio, settings, resolve=lambda name: str(state.catalog.ref(name).path))
    conn = _Connection(ws, session, settings)
    await conn.send({"type": "ready", "model": state.catalog.default.name, "debounce_ms": settings.debounce_ms,
                     "similarity": settings.similarity})
    tasks = [asyncio.create_task(conn.receive()), asyncio.create_task(conn.draw())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not isinstance(task.exception(), WebSocketDisconnect):
                task.result()  # an error of ours: raised, so it is logged
    finally:
        for task in tasks:
            task.cancel()
