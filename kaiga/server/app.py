"""`create_app(settings)`: the FastAPI app with the OpenAI-, A1111-compatible and job APIs.

On start-up it opens the database (applying migrations), re-queues jobs a crash interrupted, and
starts the job workers (kaiga.worker, one thread per model); on shutdown it stops them, and an
unfinished job goes back to the queue. The OpenAPI schema is at /docs.

Example:
    >>> app = create_app(ServerSettings(data_dir="/tmp/kaiga-doc"))
    >>> "/v1/images/generations" in app.openapi()["paths"]
    True
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kaiga.provenance.credentials import sign_by_default
from kaiga.server import (
    a1111_api,
    a1111_img2img,
    campaign_api,
    gallery_api,
    grid_api,
    jobs_api,
    live_api,
    openai_api,
    openai_describe,
    openai_edits,
    personalize,
    remix_api,
)
from kaiga.server.body_limit import BodyLimit
from kaiga.server.catalog import Catalog
from kaiga.server.docs import mount_docs
from kaiga.server.errors import ApiError, body_for, is_a1111, openai_body
from kaiga.server.settings import ServerSettings
from kaiga.server.state import ServerState
from kaiga.server.ui import mount_ui
from kaiga.server.waiters import Waiters
from kaiga.store.db import open_database
from kaiga.store.gallery import Gallery
from kaiga.store.jobs import JobQueue
from kaiga.store.uploads import UploadStore
from kaiga.version import __version__
from kaiga.worker import Worker, Workers

log = logging.getLogger("kaiga.server")


def build_state(settings: ServerSettings) -> ServerState:
    """Open everything the server needs (without starting the worker)."""
    db = open_database(settings.database_url())
    queue = JobQueue(db, max_queued=settings.max_queued, max_attempts=settings.max_attempts)
    # Signed with the user's identity in $KAIGA_HOME/signing (made on first use), whatever --data-dir: the key
    # belongs to the person running kaiga, and `kaiga verify` trusts the same root; KAIGA_SIGNING=off: unsigned.
    gallery = Gallery(db, settings.gallery_dir(), finish=sign_by_default)
    catalog = Catalog(settings.default_model, settings.extra_models)
    waiters = Waiters(queue, settings.poll_s)
    workers = None
    if settings.run_worker:
        uploads = UploadStore(settings.uploads_dir())
        workers = Workers(catalog.names, catalog.default.name, lambda models: Worker(
            queue, gallery, lambda name: catalog.ref(name).path, device=settings.device,
            batch_size=settings.batch_size, poll_s=settings.poll_s, on_finished=waiters.notify, uploads=uploads,
            models=models, precision=settings.precision, batch_jobs=settings.batch_jobs,
            backend=settings.backend))
    return ServerState(settings, db, queue, gallery, catalog, waiters, workers)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = build_state(settings)
        requeued, failed = state.queue.recover()
        if requeued or failed:
            log.warning("recovered after a stop: %d interrupted jobs re-queued, %d failed after %d attempts",
                        requeued, failed, settings.max_attempts)
        app.state.kaiga = state
        if state.workers is not None:
            state.workers.start()
        yield
        if state.workers is not None:
            state.workers.stop()
        state.db.engine.dispose()

    app = FastAPI(title="kaiga", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="kaiga's studio server: OpenAI- and AUTOMATIC1111-compatible image generation "
                              "over a durable job queue.")
    app.include_router(openai_api.router)
    app.include_router(openai_edits.router)
    app.include_router(openai_describe.router)
    app.include_router(jobs_api.router)
    app.include_router(a1111_api.router)
    app.include_router(a1111_img2img.router)
    app.include_router(gallery_api.router)
    app.include_router(remix_api.router)
    app.include_router(grid_api.router)
    app.include_router(campaign_api.router)
    app.include_router(personalize.router)
    app.include_router(live_api.router)
    mount_ui(app)
    mount_docs(app)  # /docs and /redoc without a CDN
    app.add_middleware(BodyLimit)  # outermost but for the 500 handler: before routing, auth and parsing

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        if request.url.path.startswith("/v1/images/"):  # OpenAI's clients send a size, not a width and height
            e = openai_api.size_named(e)
        return JSONResponse(body_for(request.url.path, e), status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, e: RequestValidationError):
        if is_a1111(request.url.path):  # A1111 answers FastAPI's own 422
            return JSONResponse({"detail": jsonable(e.errors())}, status_code=422)
        err = e.errors()[0]
        if err["type"] == "json_invalid":  # its location is a character offset, not a field
            message = f"body: not valid JSON ({err['ctx']['error']} at character {err['loc'][-1]})"
            return JSONResponse(openai_body(ApiError(400, message, code="invalid_json")), status_code=400)
        loc = [str(p) for p in err["loc"]]
        if loc and loc[0] in ("body", "path", "query", "header", "cookie"):  # where it was, not which field
            loc = loc[1:]
        param = loc[0] if loc else None
        if err["type"] == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}"
        elif err["type"] == "missing":
            message = f"Missing required parameter: '{param}'."
        elif err["type"] == "literal_error":
            message = f"Invalid value for '{param}': {err['msg'].removeprefix('Input should be ')} (got {err.get('input')!r})"
        else:
            message = f"{param or 'body'}: {err['msg']}"
        return JSONResponse(openai_body(ApiError(400, message, param=param, code="invalid_value")), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        """Starlette's and FastAPI's own errors (unknown route, wrong method, a body it cannot parse) in
        OpenAI's shape outside /sdapi/, where A1111 answers FastAPI's `{"detail": ...}` as it is."""
        if is_a1111(request.url.path) or e.status_code < 400:
            return await http_exception_handler(request, e)
        message, code = str(e.detail), None
        if isinstance(e.__cause__, RecursionError):  # json.loads on thousands of nested brackets
            message, code = "body: JSON nested too deeply to parse", "invalid_json"
        elif e.status_code == 404:
            code = "not_found"
        return JSONResponse(openai_body(ApiError(e.status_code, message, code=code)), status_code=e.status_code,
                            headers=e.headers)

    return app


def jsonable(errors: list[dict]) -> list[dict]:
    """Validation errors with the exception objects pydantic may put in `ctx` made printable."""
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(errors, custom_encoder={Exception: str})
