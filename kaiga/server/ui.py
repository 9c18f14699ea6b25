"""The web UI: a static page at `/` (kaiga/server/ui/) that speaks only the server's public HTTP API.

Hand-written HTML, CSS and JavaScript rather than Gradio: Gradio would be a second server framework
with its own queue beside ours, while this page uses the same job queue, gallery and auth as every
other client (generate through `/v1/jobs`, edit through `/v1/images/edits`, browse `/v1/gallery`), so
the UI cannot do anything the API does not. No build step and no CDN: it works offline.

The form's inputs take their ranges, defaults and sampler choices from `GET /v1/schema/request`, the
request's own fields (`kaiga.request.request_schema`), so the page has no second copy of the limits.

Example:
    >>> (UI_DIR / "index.html").is_file()
    True
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from kaiga.request import request_schema
from kaiga.server.auth import authenticate
from kaiga.server.errors import ApiError

UI_DIR = Path(__file__).parent / "ui"
# How the tests and scripts/screenshot_ui.py drive the page in Debian's chromium, headless. Without the
# background-networking flags chromium keeps trying to reach Google's hosts on a closed network.
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")

router = APIRouter(include_in_schema=False)
schema_router = APIRouter(tags=["kaiga schema"])


@router.get("/")
async def index():
    return FileResponse(UI_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@schema_router.get("/v1/schema/request")
async def request_fields():
    """Every field of a generation request: type, default, range, choices and help (the UI's form is built
    from them)."""
    return request_schema()


@schema_router.get("/v1/styles", dependencies=[Depends(authenticate)])
async def styles():
    """The style library that a request's `style` names: kaiga's presets and the server's $KAIGA_HOME/styles/,
    each with its templates, group and description (the UI's style picker)."""
    from kaiga.styles.library import FORMAT, StyleError, load_library

    try:
        library = await run_in_threadpool(load_library)
    except StyleError as e:
        raise ApiError(500, str(e)) from None
    return {"format": FORMAT, "data": [{**s.to_json(), "source": "kaiga" if s.source == "kaiga" else "user"}
                                       for s in library.values()]}


@schema_router.get("/v1/wildcards", dependencies=[Depends(authenticate)])
async def wildcards():
    """The wildcard lists a prompt's `__name__` draws from: kaiga's and the server's $KAIGA_HOME/wildcards/."""
    from kaiga.request import RequestError
    from kaiga.styles.wildcards import BUNDLED, load_wildcards, wildcard_files

    try:
        files, lists = await run_in_threadpool(lambda: (wildcard_files(), load_wildcards()))
    except RequestError as e:
        raise ApiError(500, str(e)) from None
    return {"data": [{"name": name, "lines": lines, "source": "kaiga" if files[name].is_relative_to(BUNDLED) else "user"}
                     for name, lines in lists.items()]}


def mount_ui(app: FastAPI) -> None:
    """Serve the page at `/`, its script and stylesheet under `/ui/`, and the request schema its form reads."""
    app.include_router(router)
    app.include_router(schema_router)
    app.mount("/ui", StaticFiles(directory=UI_DIR), name="ui")
