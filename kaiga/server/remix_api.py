"""Midjourney's vary, pan and zoom out on a gallery image, queued as edit jobs (kaiga/variations.py makes the
canvas and mask; the job is a normal edit request, so its images land in the gallery with their records).

    POST /v1/gallery/images/{id}/vary   `{strength: "subtle" | "strong", n?, seed?, chaos?, steps?}`
    POST /v1/gallery/images/{id}/pan    `{direction: "left" | "right" | "up" | "down", amount?: 0.1-0.9, n?, seed?}`
    POST /v1/gallery/images/{id}/zoom   `{factor?: 1.1-4 (2), n?, seed?}`
    POST /v1/gallery/images/{id}/upscale `{factor?: 2-8 (4), method?: "learned" | "lanczos"}`
    POST /v1/gallery/images/blend       `{images: [2-4 ids], weights?, prompt?, n?, seed?}` (Midjourney's /blend)

Vary, pan, zoom and blend answer 202 with the job, as POST /v1/jobs does; upscale is quick (milliseconds: no job)
and answers 201 with the new gallery image, whose record says the enlargement. The web UI's buttons under
every result call them.

Example:
    >>> VaryBody(strength="subtle").strength
    'subtle'
"""

from __future__ import annotations

import io
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kaiga.metadata import GenerationRecord
from kaiga.request import LIMITS, MAX_BLEND, RequestError, UpscaleMethod
from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import edit_request, makes_edits, store_blend, store_remix
from kaiga.server.errors import ApiError
from kaiga.server.gallery_api import ImageId, _item, _store
from kaiga.server.jobs_api import describe_job
from kaiga.server.state import Principal, ServerState
from kaiga.variations import blend_prompt, native, pan_plan, vary_plan, zoom_plan

router = APIRouter(prefix="/v1/gallery/images", tags=["kaiga gallery"], dependencies=[Depends(authenticate)])


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(4, ge=1, le=LIMITS["n"][1])
    seed: int | None = Field(None, ge=0, le=LIMITS["seed"][1])
    chaos: int | None = Field(None, ge=0, le=100)
    steps: int | None = Field(None, ge=1, le=LIMITS["steps"][1])  # default: the image's own


class VaryBody(_Common):
    strength: Literal["subtle", "strong"] = "strong"


class PanBody(_Common):
    direction: Literal["left", "right", "up", "down"]
    amount: float = Field(0.5, ge=0.1, le=0.9)


class ZoomBody(_Common):
    factor: float = Field(2.0, ge=1.1, le=4.0)


class BlendBody(_Common):
    images: list[ImageId] = Field(min_length=2, max_length=MAX_BLEND, description="2 to 4 gallery images")
    weights: list[float] | None = Field(None, description="One share per image (default: equal)")
    prompt: str | None = Field(None, description="The blend's prompt (default: the images' prompts composed)")


async def _picture(state: ServerState, image_id: int) -> tuple[Image.Image, dict]:
    """A gallery image's pixels and record."""
    image = await _store(state.gallery.image, image_id)
    picture = Image.open(io.BytesIO((state.gallery.folder / image.path).read_bytes()))
    picture.load()
    return picture, image.record


async def _queue(request: Request, image_id: int, principal: Principal, body: _Common, make_plan) -> JSONResponse:
    state: ServerState = request.app.state.kaiga
    picture, record = await _picture(state, image_id)
    try:
        plan = await run_in_threadpool(make_plan, picture, record)
    except RequestError as e:
        raise ApiError(400, str(e), code="invalid_value") from None
    edit = await store_remix(state, plan, body.model_dump(include=set(_Common.model_fields)))
    job = await state.submit(edit, principal=principal,
                             fingerprint={"api": "gallery-remix", "image": image_id, "kind": plan.kind},
                             record_extra={"remix": plan.kind, "remixed_image": image_id, **(plan.note or {})})
    return JSONResponse({**await describe_job(state, request, job), "remix": plan.kind}, status_code=202)


@router.post("/{image_id}/vary", status_code=202)
async def vary(image_id: ImageId, body: VaryBody, request: Request, principal: Principal = Depends(authenticate)):
    """Variations of the image: subtle (strength 0.35) or strong (0.75), its prompt and model."""
    return await _queue(request, image_id, principal, body, lambda im, rec: vary_plan(im, rec, body.strength))


@router.post("/{image_id}/pan", status_code=202)
async def pan(image_id: ImageId, body: PanBody, request: Request, principal: Principal = Depends(authenticate)):
    """Move the view over the image; the revealed strip is painted, the rest kept."""
    return await _queue(request, image_id, principal, body,
                        lambda im, rec: pan_plan(im, rec, body.direction, body.amount))


@router.post("/{image_id}/zoom", status_code=202)
async def zoom(image_id: ImageId, body: ZoomBody, request: Request, principal: Principal = Depends(authenticate)):
    """Zoom out of the image: it shrinks into the middle and the border is painted around it."""
    return await _queue(request, image_id, principal, body, lambda im, rec: zoom_plan(im, rec, body.factor))


@router.post("/blend", status_code=202)
async def blend(body: BlendBody, request: Request, principal: Principal = Depends(authenticate)):
    """Blend 2-4 gallery images (Midjourney's /blend): their latents mixed, redrawn with their prompts composed, by
    the first of their models that edits (else the default model)."""
    state: ServerState = request.app.state.kaiga
    pictures = [await _picture(state, i) for i in body.images]
    records = [record for _, record in pictures]
    shares = body.weights or [1.0] * len(records)
    normal = [w / (sum(shares) or 1) for w in shares]  # as the request reads them; all 0 is refused below
    model = next((r["model"] for r in records if makes_edits(state, r.get("model"))), None)
    fields = {"model": model, "prompt": body.prompt if body.prompt is not None else blend_prompt(records, normal),
              **body.model_dump(include=set(_Common.model_fields), exclude_none=True)}
    edit = edit_request(fields, mask=False, blend=shares)
    images = []
    for picture, record in pictures:
        buf = io.BytesIO()
        (made_size := native(picture, record)).save(buf, format="PNG")
        images.append((made_size, buf.getvalue()))
    edit = await store_blend(state, edit, images)
    job = await state.submit(edit, principal=principal,
                             fingerprint={"api": "gallery-blend", "images": body.images, "weights": shares},
                             record_extra={"remix": "blend", "remixed_images": body.images,
                                           "blend_prompts": [r.get("prompt", "") for r in records]})
    return JSONResponse({**await describe_job(state, request, job), "remix": "blend"}, status_code=202)


class UpscaleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    factor: int = Field(4, ge=2, le=LIMITS["upscale"][1])
    method: UpscaleMethod = UpscaleMethod.LEARNED


@router.post("/{image_id}/upscale", status_code=201)
async def upscale(image_id: ImageId, body: UpscaleBody, request: Request):
    """The image enlarged (the learned upscaler by default), stored in the gallery as a new image."""
    from kaiga.upscaler import MAX_SIDE

    state: ServerState = request.app.state.kaiga
    image = await _store(state.gallery.image, image_id)
    picture = Image.open(io.BytesIO((state.gallery.folder / image.path).read_bytes()))
    picture.load()
    if max(picture.size) * body.factor > MAX_SIDE:
        raise ApiError(400, f"factor: {picture.width}x{picture.height} x{body.factor} is more than {MAX_SIDE} "
                            f"pixels a side", param="factor", code="invalid_value")
    new_id = await run_in_threadpool(_add_upscaled, state, picture, GenerationRecord.model_validate(image.record), body)
    return _item(request, await _store(state.gallery.image, new_id))


def _add_upscaled(state: ServerState, picture: Image.Image, record: GenerationRecord, body: UpscaleBody) -> int:
    from kaiga.upscaler import upscale as enlarge
    from kaiga.upscaler import upscaled_record

    [big] = enlarge([picture.convert("RGB")], body.factor, body.method.value)
    with state.db.session() as s:
        return state.gallery.add(s, big, upscaled_record(record, body.factor, body.method, picture.size))
