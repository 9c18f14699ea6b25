"""kaiga's gallery endpoints: browse, search, curate, delete, export and re-run stored images.

Every route needs the same auth as the rest of /v1 (`kaiga.server.auth`); errors are OpenAI-shaped.
Images are shared by all callers; boards belong to the caller (another user's board is a 404).

Images (an item is `{id, sha256, url, prompt, created, favourite, rating, boards: [{id, name}], review, record}`;
`review` is null, "held" (flagged by the safety filter: stored blurred, its note in record.extra.safety)
or "approved"):
    GET    /v1/gallery/images               newest first: `{object: "list", data, next_cursor, total}`;
           query: limit (1-200, default 50), cursor (a page's next_cursor), q (prompt substring, any
           case; % and _ are plain characters), favourite (true/false), rating (1-5, exactly),
           min_rating (1-5), board (a board id of yours), held (true: only the images held for
           review; without it, every image but those)
    GET    /v1/gallery/images/{id}          one image
    PATCH  /v1/gallery/images/{id}          `{favourite?: bool, rating?: 1-5 | null}` (null clears)
    DELETE /v1/gallery/images/{id}          the row, its board memberships, then its file
    POST   /v1/gallery/images/{id}/review   `{decision: "approve" | "reject"}` on a held image: approve lists it
                                            again (still blurred), reject deletes it (row and file)
    POST   /v1/gallery/images/{id}/rerun    queue a job with the image's recorded settings (same seed:
                                            same pixels); answers 202 with the job, as POST /v1/jobs
    GET    /v1/gallery/export               a zip: images/<sha256>.png plus records.jsonl; same filters
                                            as the list (without limit and cursor)
Boards (a board is `{id, name, created, images}`):
    GET    /v1/gallery/boards               your boards, by name
    POST   /v1/gallery/boards               `{name}` (1-100 characters, unique among yours): 201
    PATCH  /v1/gallery/boards/{id}          `{name}`
    DELETE /v1/gallery/boards/{id}          the board; its images stay in the gallery
    PUT    /v1/gallery/boards/{id}/images/{image_id}     put an image on the board (idempotent)
    DELETE /v1/gallery/boards/{id}/images/{image_id}     take it off

Example:
    >>> ImageFilter.model_validate({"q": "red", "min_rating": "4"}).query()
    ImageQuery(text='red', favourite=None, rating=None, min_rating=4, board_id=None, held=False)
"""

from __future__ import annotations

from typing import Annotated, Any, Callable, Literal

from fastapi import APIRouter, Depends, Header, Path, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from kaiga.request import MAX_PROMPT_CHARS, GenerationRequest
from kaiga.server.auth import authenticate
from kaiga.server.errors import ApiError, from_validation
from kaiga.server.jobs_api import describe_job
from kaiga.server.openai_api import file_url
from kaiga.server.state import Principal, ServerState
from kaiga.store.boards import MAX_NAME, BoardExists, BoardNotFound, Boards, BoardView
from kaiga.store.gallery import DECISIONS, MAX_PAGE, ImageNotFound, ImageQuery, ImageView

router = APIRouter(prefix="/v1/gallery", tags=["kaiga gallery"], dependencies=[Depends(authenticate)])

Rating = Annotated[StrictInt, Field(ge=1, le=5)]
MAX_ID = 2**31 - 1  # an SQL INTEGER (PostgreSQL: 32 bits); a larger id failed in the database, a 500
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
ImageId = Annotated[int, Path(ge=1, le=MAX_ID)]
BoardId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ImageFilter(BaseModel):
    """The list's and the export's query parameters."""

    model_config = ConfigDict(extra="forbid")

    q: Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS)] = None
    favourite: bool | None = None
    rating: Annotated[int | None, Field(ge=1, le=5)] = None
    min_rating: Annotated[int | None, Field(ge=1, le=5)] = None
    board: Id | None = None
    held: bool | None = None  # true: only the images held for review

    def query(self) -> ImageQuery:
        return ImageQuery(text=self.q or None, favourite=self.favourite, rating=self.rating,
                          min_rating=self.min_rating, board_id=self.board, held=bool(self.held))


class ListParams(ImageFilter):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    cursor: Id | None = None


class ImagePatch(BaseModel):
    """What to change on an image; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    favourite: StrictBool | None = None
    rating: Rating | None = None  # null clears the rating


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal[DECISIONS]


class BoardBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME)]

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must contain some text")
        return v


def _documented(model: type[BaseModel]) -> dict:
    """The OpenAPI description of `model` as query parameters (FastAPI cannot see them through `_params`)."""
    fields = model.model_json_schema()["properties"]
    return {"parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                           for name, schema in fields.items()]}


def _params(model: type[BaseModel]) -> Callable[[Request], Any]:
    """A dependency that checks the query string against `model`: a 400 naming the parameter, as for bodies."""
    def parse(request: Request):
        try:
            return model.model_validate(dict(request.query_params))
        except ValidationError as e:
            raise from_validation(e) from None

    return parse


async def _store(fn: Callable, *args):
    """Run a store call in the thread pool, its errors as API errors."""
    try:
        return await run_in_threadpool(fn, *args)
    except ImageNotFound as e:
        raise ApiError(404, f"no image {e.args[0]}", param="image_id", code="not_found") from None
    except BoardNotFound as e:
        raise ApiError(404, f"no board {e.args[0]} of yours", param="board_id", code="not_found") from None
    except BoardExists as e:
        raise ApiError(409, str(e), param="name", code="board_exists") from None
    except ValueError as e:
        field = str(e).split(":", 1)[0]
        raise ApiError(400, str(e), param=field if field.isidentifier() else None, code="invalid_value") from None


def _item(request: Request, im: ImageView) -> dict:
    return {"id": im.id, "sha256": im.sha256, "url": file_url(request, im.sha256), "prompt": im.prompt,
            "created": im.created.isoformat(), "favourite": im.favourite, "rating": im.rating,
            "boards": [{"id": b.id, "name": b.name} for b in im.boards], "review": im.review, "record": im.record}


def _board(b: BoardView) -> dict:
    return {"id": b.id, "name": b.name, "created": b.created.isoformat(), "images": b.images}


async def _checked_query(state: ServerState, principal: Principal, f: ImageFilter) -> ImageQuery:
    if f.board is not None:
        await _store(Boards(state.db).get, principal.name, f.board)  # 404 unless it is the caller's
    return f.query()


def rerun_request(record: dict) -> GenerationRequest:
    """The request that makes the recorded image again: every recorded setting the request has, one image (the
    family options and the style mix are kept under the record's `extra`)."""
    extra = record.get("extra") or {}
    recorded = {**extra, **record, "style": (extra.get("style") or {}).get("mix", "")}
    fields = {name: recorded[name] for name in GenerationRequest.model_fields
              if name != "n" and recorded.get(name) is not None}
    try:
        return GenerationRequest(**fields)
    except ValidationError as e:
        raise from_validation(e) from None


# --- images --------------------------------------------------------------------------------------
@router.get("/images", openapi_extra=_documented(ListParams))
async def list_images(request: Request, params: ListParams = Depends(_params(ListParams)),
                      principal: Principal = Depends(authenticate)):
    """Images, newest first, a page at a time; filter by prompt text, favourite, rating, board."""
    state: ServerState = request.app.state.kaiga
    query = await _checked_query(state, principal, params)
    page = await _store(lambda: state.gallery.page(query, limit=params.limit, cursor=params.cursor,
                                                   owner=principal.name))
    return {"object": "list", "data": [_item(request, im) for im in page.items], "next_cursor": page.next_cursor,
            "total": page.total}


@router.get("/images/{image_id}")
async def get_image(image_id: ImageId, request: Request, principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    return _item(request, await _store(state.gallery.image, image_id, principal.name))


@router.get("/images/{image_id}/verify")
async def verify_image(image_id: ImageId, request: Request, principal: Principal = Depends(authenticate)):
    """What `kaiga verify` says of the stored file: its content credentials (C2PA, against this server's signing
    root), its invisible watermark and whether it names the record, and the record; `ok` when all agree."""
    from kaiga.provenance.verify import verify_image as verify

    state: ServerState = request.app.state.kaiga
    image = await _store(state.gallery.image, image_id, principal.name)
    data = await run_in_threadpool((state.gallery.folder / image.path).read_bytes)
    result = await run_in_threadpool(verify, data)
    return {"id": image_id, **{k: v for k, v in result.items() if k != "record"}}


@router.patch("/images/{image_id}")
async def update_image(image_id: ImageId, body: ImagePatch, request: Request,
                       principal: Principal = Depends(authenticate)):
    """Mark or unmark as favourite, rate 1-5 or clear the rating (`"rating": null`)."""
    state: ServerState = request.app.state.kaiga
    given = body.model_fields_set
    if not given:
        raise ApiError(400, "give favourite and/or rating", code="invalid_value")
    if "favourite" in given and body.favourite is None:
        raise ApiError(400, "favourite: must be true or false (got null)", param="favourite", code="invalid_value")
    await _store(state.gallery.image, image_id)  # 404 first, whatever the body
    if "favourite" in given:
        await _store(state.gallery.set_favourite, image_id, body.favourite)
    if "rating" in given:
        await _store(state.gallery.set_rating, image_id, body.rating)
    return _item(request, await _store(state.gallery.image, image_id, principal.name))


@router.delete("/images/{image_id}")
async def delete_image(image_id: ImageId, request: Request):
    """Delete the image: its row and board memberships, then its file (once no row names it)."""
    state: ServerState = request.app.state.kaiga
    await _store(state.gallery.delete, image_id)
    return {"id": image_id, "object": "image", "deleted": True}


@router.post("/images/{image_id}/review")
async def review_image(image_id: ImageId, body: ReviewBody, request: Request,
                       principal: Principal = Depends(authenticate)):
    """Approve an image held by the safety filter (listed again, still blurred) or reject it (deleted)."""
    state: ServerState = request.app.state.kaiga
    if not await _store(state.gallery.review, image_id, body.decision):
        return {"id": image_id, "object": "image", "review": "rejected", "deleted": True}
    return _item(request, await _store(state.gallery.image, image_id, principal.name))


@router.post("/images/{image_id}/rerun", status_code=202)
async def rerun_image(image_id: ImageId, request: Request, principal: Principal = Depends(authenticate),
                      idempotency_key: Annotated[str | None, Header()] = None):
    """Queue the image's recorded request again (one image, same seed); answers with the job, as POST /v1/jobs."""
    state: ServerState = request.app.state.kaiga
    image = await _store(state.gallery.image, image_id)
    job = await state.submit(rerun_request(image.record), principal=principal, idempotency_key=idempotency_key,
                             fingerprint={"api": "gallery-rerun", "image": image_id})
    return JSONResponse(await describe_job(state, request, job), status_code=202)


@router.get("/export", openapi_extra=_documented(ImageFilter))
async def export(request: Request, params: ImageFilter = Depends(_params(ImageFilter)),
                 principal: Principal = Depends(authenticate)):
    """A zip of the matching images' PNGs and a records.jsonl, streamed as it is written."""
    state: ServerState = request.app.state.kaiga
    query = await _checked_query(state, principal, params)
    return StreamingResponse(state.gallery.export_zip(query, owner=principal.name), media_type="application/zip",
                             headers={"Content-Disposition": 'attachment; filename="kaiga-gallery.zip"'})


# --- boards --------------------------------------------------------------------------------------
@router.get("/boards")
async def list_boards(request: Request, principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    return {"object": "list", "data": [_board(b) for b in await _store(Boards(state.db).list, principal.name)]}


@router.post("/boards", status_code=201)
async def create_board(body: BoardBody, request: Request, principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    return _board(await _store(Boards(state.db).create, principal.name, body.name))


@router.patch("/boards/{board_id}")
async def rename_board(board_id: BoardId, body: BoardBody, request: Request,
                       principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    return _board(await _store(Boards(state.db).rename, principal.name, board_id, body.name))


@router.delete("/boards/{board_id}")
async def delete_board(board_id: BoardId, request: Request, principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    await _store(Boards(state.db).delete, principal.name, board_id)
    return {"id": board_id, "object": "board", "deleted": True}


@router.put("/boards/{board_id}/images/{image_id}")
async def add_to_board(board_id: BoardId, image_id: ImageId, request: Request,
                       principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    added = await _store(Boards(state.db).add_image, principal.name, board_id, image_id)
    return {"board_id": board_id, "image_id": image_id, "added": added}


@router.delete("/boards/{board_id}/images/{image_id}")
async def remove_from_board(board_id: BoardId, image_id: ImageId, request: Request,
                            principal: Principal = Depends(authenticate)):
    state: ServerState = request.app.state.kaiga
    removed = await _store(Boards(state.db).remove_image, principal.name, board_id, image_id)
    return {"board_id": board_id, "image_id": image_id, "removed": removed}
