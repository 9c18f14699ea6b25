"""OpenAI-compatible Images API: `POST /v1/images/generations`, `GET /v1/models`, image files.

(Edits and variations, which take uploads, are in `kaiga.server.openai_edits`; they answer through `answer`.)

Field mapping onto `GenerationRequest` (every limit stays enforced there):

| OpenAI field | kaiga |
|---|---|
| prompt, n, model | prompt, n, model (a name from `GET /v1/models`; default: the server's model) |
| size `WxH` / `auto` | width, height / the model's native size |
| quality low / standard, medium, auto / hd, high | steps 10 / 20 / 40 |
| style natural / vivid | guidance 2 / 4.5 (default: the request's guidance, 3) |
| response_format url / b64_json | a URL on this server (the gallery's content-addressed file) / base64 PNG |
| user | the job's user, for fair queueing |
| (answer) revised_prompt | the prompt the model was given, with the words it did not know and ignored named |

kaiga's own fields may be added (the openai client's `extra_body`): every other field of
`GenerationRequest` under its own name (negative_prompt, seed, steps, guidance, sampler, upscale, and
for gan / vae / transformer models truncation, temperature, top_k, top_p, candidates), derived from
the request (`GENERATION_FIELDS`). Any other field is refused, as OpenAI does.

Example:
    >>> to_request(ImageGenerationBody(prompt="a red car", size="64x64", quality="hd")).steps
    40
    >>> try:
    ...     parse_size("64 by 64")
    ... except ApiError as e:
    ...     print(e.param, e.message)
    size size: must be WIDTHxHEIGHT in pixels, e.g. 64x64, or auto (got '64 by 64')
"""

from __future__ import annotations

import base64
import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaiga.request import GenerationRequest, RequestError, field_specs
from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import SREF_HELP, style_reference
from kaiga.server.errors import ApiError, from_validation
from kaiga.server.personalize import ChooseFrom, Personalize, personalization
from kaiga.server.request_fields import request_body, request_values, taken_fields
from kaiga.server.state import UNKNOWN_WORDS_NOTE, Principal, ServerState, unknown_words
from kaiga.store.gallery import is_sha256

router = APIRouter(tags=["OpenAI-compatible"])

QUALITY_STEPS = {"low": 10, "medium": 20, "standard": 20, "auto": None, "high": 40, "hd": 40}
STYLE_GUIDANCE = {"natural": 2.0, "vivid": 4.5}
_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")


# How OpenAI's API names the request's fields: `size` ("WxH" or auto) stands for width and height. Every
# other field of GenerationRequest is a body field under its own name: OpenAI's own (prompt, n, model) or
# kaiga's, which the openai client sends as `extra_body`.
SIZE_FIELDS = ("width", "height")
EDIT_ONLY = ("init_image", "mask", "blend", "strength")  # /v1/images/edits: the uploaded files, and how much to redraw
# OpenAI's own `style` is dall-e-3's vivid / natural (guidance here): kaiga's style mix is `styles` in this API.
OPENAI_RENAME = {"style": "styles"}
GENERATION_FIELDS = taken_fields(exclude=(*SIZE_FIELDS, *EDIT_ONLY), rename=OPENAI_RENAME)


class OpenAIFields(BaseModel):
    """OpenAI's own fields that are not the request's, shared by generations, edits and variations."""

    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, as OpenAI does

    size: str | None = None
    response_format: Literal["url", "b64_json"] | None = None
    user: Annotated[str | None, Field(max_length=255)] = None


class ImageGenerationBody(request_body("GenerationFields", GENERATION_FIELDS, base=OpenAIFields)):
    """The body of `POST /v1/images/generations`."""

    prompt: str = Field(description=field_specs()["prompt"].help)  # required, as OpenAI's
    quality: Literal["low", "medium", "standard", "auto", "high", "hd"] | None = None
    style: Literal["vivid", "natural"] | None = None
    output_format: Literal["png"] | None = None  # the only format kaiga writes
    sref: str | None = Field(None, description=SREF_HELP)
    grid_x: str | None = Field(None, description=(
        "kaiga: A1111's X/Y/Z plot, as POST /v1/grids' x: FIELD=v1,v2,... over any request field (prompt=a,b "
        "replaces a in the prompt); data[0] is the labelled sheet, then one image a cell (n stays 1)."))
    grid_y: str | None = Field(None, description="kaiga: the plot's rows, as grid_x.")
    grid_z: str | None = Field(None, description="kaiga: one sheet per value (give grid_y first), as grid_x.")
    personalize: Personalize = None
    choose_from: ChooseFrom = 4


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    if size is None or size == "auto":
        return None, None
    m = _SIZE.match(size)
    if m is None:
        raise ApiError(400, f"size: must be WIDTHxHEIGHT in pixels, e.g. 64x64, or auto (got {size!r})",
                       param="size", code="invalid_value")
    return int(m[1]), int(m[2])


def to_request(body: ImageGenerationBody) -> GenerationRequest:
    """The kaiga request an OpenAI body asks for; ApiError(400, param=...) when it is out of range."""
    width, height = parse_size(body.size)
    fields = request_values(body, GENERATION_FIELDS) | {"width": width, "height": height}
    fields.setdefault("steps", QUALITY_STEPS[body.quality or "auto"])
    fields.setdefault("guidance", STYLE_GUIDANCE.get(body.style or ""))
    try:
        return GenerationRequest(**{k: v for k, v in fields.items() if v is not None}).require_prompt()
    except ValidationError as e:
        raise from_validation(e, size_renames(body.steps)) from None
    except RequestError as e:  # OpenAI requires a prompt; A1111 and the request itself take an empty one
        raise ApiError(400, str(e), param="prompt", code="invalid_value") from None


def size_named(e: ApiError) -> ApiError:
    """An error about the width or the height as OpenAI's clients know them: about `size`.

    >>> size_named(ApiError(400, "width: at most 256 for this model (got 1024)", param="width")).message
    'size: width at most 256 for this model (got 1024)'
    """
    m = re.match(r"(width|height): (.*)", e.message, re.DOTALL)
    if e.param not in (*SIZE_FIELDS, "size") or m is None:
        return e
    return ApiError(e.status, f"size: {m[1]} {m[2]}", param="size", code=e.code, headers=e.headers)


def size_renames(steps: int | None) -> dict[str, str]:
    """Request fields as the OpenAI client named them, for errors: `size`, and `quality` when it set the steps."""
    return dict.fromkeys(SIZE_FIELDS, "size") | ({"steps": "quality"} if steps is None else {})


def revised_prompt(record: dict) -> str:
    """OpenAI's `revised_prompt`: the prompt as the model read it, naming the words it did not know.

    >>> revised_prompt({"prompt": "a zebra car", "extra": {"unknown_words": ["zebra"]}})
    'a zebra car (the model does not know these words and ignored them: zebra)'
    """
    words = unknown_words([record])
    return f"{record['prompt']} ({UNKNOWN_WORDS_NOTE}: {', '.join(words)})" if words else record["prompt"]


def file_url(request: Request, sha256: str) -> str:
    return str(request.url_for("image_file", name=f"{sha256}.png"))


@router.post("/v1/images/generations", response_model=ImagesResponse, response_model_exclude_none=True)
async def create_image(body: ImageGenerationBody, request: Request, response: Response,
                       principal: Principal = Depends(authenticate),
                       idempotency_key: Annotated[str | None, Header()] = None):
    """Generate images (waits for the job). Send `Idempotency-Key` to make a retry safe."""
    state: ServerState = request.app.state.kaiga
    gen = to_request(body)
    check_model(state, gen.model)
    gen, record_extra = await style_reference(gen, body.sref)
    plot = body.grid_x or body.grid_y or body.grid_z
    personal = await personalization(state, principal, body.personalize, body.choose_from, "grid_x" if plot else None)
    if plot:
        return await _grid(request, state, gen, body, principal, record_extra)
    return await answer(request, response, gen, principal=principal, user=body.user, idempotency_key=idempotency_key,
                        fingerprint={"api": "openai", "body": body.model_dump(exclude_none=True)},
                        response_format=body.response_format, record_extra=record_extra, personalize=personal)


async def _grid(request: Request, state: ServerState, gen: GenerationRequest, body: ImageGenerationBody,
                principal: Principal, record_extra: dict | None) -> ImagesResponse:
    """Generations with kaiga's grid_x (grid_y, grid_z): the X/Y/Z plot of POST /v1/grids, every cell a job and a
    gallery image; answered as OpenAI's images, the labelled sheet(s) first."""
    from kaiga.model_files import ModelError
    from kaiga.server.gallery_api import _store
    from kaiga.server.grid_api import checked_cells, parse_axes, run_cells
    from kaiga.server.state import with_seed

    names = ("grid_x", "grid_y", "grid_z")
    try:
        if not body.grid_x:
            raise RequestError("grid_x: a plot needs its x axis first (FIELD=v1,v2,...)")
        axes = parse_axes(body.grid_x, body.grid_y, body.grid_z, names)
        todo = checked_cells(state, with_seed(gen), axes)
    except (RequestError, ModelError) as e:
        field = str(e).split(":", 1)[0]
        raise size_named(ApiError(400, str(e), param=field if field.isidentifier() else None,
                                  code="invalid_value")) from None
    spec = {name: v for name, v in zip("xyz", (body.grid_x, body.grid_y, body.grid_z)) if v}
    sheet_ids, made, jobs = await run_cells(state, todo, axes, gen.prompt, spec, principal,
                                            {"api": "openai-grid", "body": body.model_dump(exclude_none=True)},
                                            record_extra)
    rows = [await _store(state.gallery.image, i) for i in sheet_ids] + [row for row, _ in made]
    if (body.response_format or "url") == "url":
        data = [ImageData(url=file_url(request, row.sha256), revised_prompt=revised_prompt(row.record)) for row in rows]
    else:
        data = [ImageData(b64_json=base64.b64encode((state.gallery.folder / row.path).read_bytes()).decode(),
                          revised_prompt=revised_prompt(row.record)) for row in rows]
    return ImagesResponse(created=int(jobs[0].created.timestamp()), data=data)


def check_model(state: ServerState, model: str | None) -> None:
    try:
        state.catalog.ref(model)
    except ValueError as e:
        raise ApiError(400, str(e), param="model", code="invalid_value") from None


async def answer(request: Request, response: Response, gen: GenerationRequest, *, principal: Principal,
                 user: str | None, idempotency_key: str | None, fingerprint: dict,
                 response_format: str | None, record_extra: dict | None = None,
                 personalize: dict | None = None) -> ImagesResponse:
    """Queue `gen`, wait for its job, and answer its images as OpenAI does (generations, edits, variations)."""
    state: ServerState = request.app.state.kaiga
    job = await state.submit(gen, principal=principal, user=user, idempotency_key=idempotency_key,
                             fingerprint=fingerprint, record_extra=record_extra, personalize=personalize)
    response.headers["X-Kaiga-Job-Id"] = job.id
    job = await state.wait(job)
    if job.status != "done":
        raise ApiError(409, f"job {job.id} was {job.status}", code=f"job_{job.status}")
    as_url = (response_format or "url") == "url"
    images = await state.images(job, with_bytes=not as_url)
    if as_url:
        data = [ImageData(url=file_url(request, row.sha256), revised_prompt=revised_prompt(row.record))
                for row, _ in images]
    else:
        data = [ImageData(b64_json=base64.b64encode(png).decode(), revised_prompt=revised_prompt(row.record))
                for row, png in images]
    return ImagesResponse(created=int(job.created.timestamp()), data=data)


@router.get("/v1/models")
async def list_models(request: Request, principal: Principal = Depends(authenticate)):
    """The models this server can generate with, as OpenAI lists models; `kaiga` says what each can do
    (sizes, samplers, edits, family options, default steps and guidance) and which is the default."""
    state: ServerState = request.app.state.kaiga
    return {"object": "list", "data": [{"id": ref.name, "object": "model", "created": 0, "owned_by": f"kaiga ({ref.source})",
                                        "kaiga": state.catalog.describe(ref.name)}
                                       for ref in state.catalog.models]}


@router.get("/v1/images/files/{name}", name="image_file", response_class=FileResponse)
async def image_file(name: str, request: Request):
    """An image of the gallery by its SHA-256 (`<hash>.png`); the hash is the capability, no key needed."""
    state: ServerState = request.app.state.kaiga
    sha = name.removesuffix(".png")
    if not name.endswith(".png") or not is_sha256(sha):
        raise ApiError(404, "no such image", code="not_found")
    path = state.gallery.file(sha)
    if not path.is_file():
        raise ApiError(404, "no such image", code="not_found")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "public, max-age=31536000, immutable"})


