"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc`, served whole by this server.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on a machine without
internet. Here their scripts, stylesheet and icon come from the installed `fastapi-offline` package
(MIT; it ships Swagger UI 5, Apache-2.0, and ReDoc 2, MIT), mounted under `/docs-assets/`.

The schema says what the server answers: outside /sdapi/ a request the server cannot validate is
answered 400 in OpenAI's error shape (kaiga.server.app), never FastAPI's 422, and the schema says so.

Example:
    >>> (ASSETS / "swagger-ui-bundle.js").is_file() and (ASSETS / "redoc.standalone.js").is_file()
    True
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel

from kaiga.server.errors import is_a1111

ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs-assets"


class ErrorDetail(BaseModel):
    message: str  # one line naming the field and the allowed range
    type: str  # invalid_request_error, rate_limit_error or server_error
    param: str | None  # the field at fault, as the client named it
    code: str | None  # e.g. invalid_value, invalid_json, request_too_large


class ErrorBody(BaseModel):
    """An error answered by the OpenAI-compatible and kaiga routes (OpenAI's shape)."""

    error: ErrorDetail


def mount_docs(app: FastAPI) -> None:
    """`/docs` and `/redoc` over local assets (`app` made with docs_url=None, redoc_url=None), and the
    schema's 400s."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon.png")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url, title=f"{app.title} API",
                              redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False)

    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document_400(build())
        return app.openapi_schema

    app.openapi = openapi


def document_400(schema: dict) -> None:
    """Outside /sdapi/, each operation that takes input answers a bad one 400 in OpenAI's shape, not 422."""
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.update(error.pop("$defs"), ErrorBody=error)
    bad = {"description": "Bad request: `param` names the field at fault, `message` the allowed values",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for path, operations in schema["paths"].items():
        if is_a1111(path):
            continue
        for operation in operations.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None or "requestBody" in operation:
                responses["400"] = bad
