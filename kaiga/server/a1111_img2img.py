"""AUTOMATIC1111-compatible `POST /sdapi/v1/img2img`: image-to-image and inpainting.

The body is txt2img's plus A1111's img2img fields; the answer is shaped as txt2img's (`images` as
base64 PNGs without prefix, `parameters`, `info` as a JSON string, with `denoising_strength`).

| A1111 | kaiga |
|---|---|
| init_images: one base64 image (with or without `data:` prefix) | init_image, via the upload store |
| init_images: 2-4 images and kaiga's `blend: true` (`blend_weights` optional) | blend: their latents mixed (Midjourney's /blend) |
| kaiga's `vary` (subtle, strong; with a mask: its region), `pan` (left, right, up, down; `pan_amount`) or `zoom` (1.1-4) | Midjourney's vary, pan and zoom out of the init image, from what its metadata says made it (kaiga.variations); the body's fields that it sets win |
| mask: white = repaint (or its alpha channel, when not fully opaque) | mask, white = repaint |
| inpainting_mask_invert 1 | the mask inverted first |
| mask_blur (pixels, default 4) | mask_blur: Gaussian blur of the mask's edge, a soft seam (the request's, default 0) |
| denoising_strength | strength |
| resize_mode 0 (just resize) | the image resized to width × height; other modes refused (422) |
| width × height the model cannot make (512 on a 64-pixel model) | made near its native size and enlarged, as txt2img |

Accepted but without effect, as kaiga has one way of doing them: `inpainting_fill` (kaiga always
starts the masked area from the init image's own content, A1111's "original"), `inpaint_full_res`
(kaiga repaints at the whole image's resolution), `image_cfg_scale` (instruct-pix2pix only).
`parameters` leaves out the images unless `include_init_images`, as A1111's.

Example:
    >>> Img2ImgBody(init_images=["aGk="], denoising_strength=0.4).mask_blur
    4
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from kaiga.request import BLEND_STRENGTH, DEFAULT_STRENGTH, MAX_BLEND, MAX_UPLOAD_BYTES, RequestError, field_specs
from kaiga.server.a1111_api import RENAME, Txt2ImgBody, answer, fit_size, model_of, request_fields
from kaiga.server.a1111_xyz import is_xyz
from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import (
    a1111_mask,
    decode_base64,
    edit_request,
    read_image,
    store_blend,
    store_inputs,
    store_remix,
    style_reference,
)
from kaiga.server.errors import ApiError
from kaiga.server.state import Principal, ServerState
from kaiga.variations import image_record, remix_plan

# The body (image and mask in base64) is bounded by kaiga.server.body_limit, sized for it.
router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111-compatible"], dependencies=[Depends(authenticate)])


class Img2ImgBody(Txt2ImgBody):
    """The body of `POST /sdapi/v1/img2img` (A1111's names; unlisted A1111 fields are accepted and unused)."""

    init_images: list[str] = []
    mask: str | None = None
    denoising_strength: float = Field(DEFAULT_STRENGTH, description=field_specs()["strength"].help)  # A1111's too
    inpainting_mask_invert: Annotated[int, Field(ge=0, le=1)] = 0
    mask_blur: int = Field(4, ge=0, le=64, description=field_specs()["mask_blur"].help)  # A1111's default 4
    resize_mode: int = 0
    include_init_images: bool = False
    faces_consent: bool = Field(False, description=(
        "kaiga: the people in the image consent to show their faces; else faces found in it are blurred first."))
    blend: bool = Field(False, description=(
        "kaiga: blend the 2-4 init_images (Midjourney's /blend): their latents mixed by the model's autoencoder, "
        "redrawn at denoising_strength (0.6 if not given) with the prompt."))
    blend_weights: list[float] | None = Field(None, description="kaiga: one share per init image of a blend (equal).")
    vary: Literal["subtle", "strong"] | None = Field(None, description=(
        "kaiga: Midjourney's Vary (Subtle) or (Strong) of the init image (strength 0.35 or 0.75); with a mask, of its "
        "region only (Vary (Region))."))
    pan: Literal["left", "right", "up", "down"] | None = Field(None, description=(
        "kaiga: Midjourney's pan: the view moved this way by pan_amount of the image, the revealed strip painted."))
    pan_amount: float | None = Field(None, ge=0.1, le=0.9, description="kaiga: how far a pan moves (0.5).")
    zoom: float | None = Field(None, ge=1.1, le=4.0, description=(
        "kaiga: Midjourney's zoom out by this factor (1.5, 2): the image shrunk into the middle, the border painted "
        "(A1111's outpainting)."))


@router.post("/img2img")
async def img2img(body: Img2ImgBody, request: Request, response: Response,
                  principal: Principal = Depends(authenticate),
                  idempotency_key: Annotated[str | None, Header()] = None):
    """Edit an image: the whole of it, or the area a mask marks (waits for the job)."""
    state: ServerState = request.app.state.kaiga
    if is_xyz(body.script_name):
        raise ApiError(422, "script_name: kaiga's X/Y/Z plot runs on txt2img (a grid makes no edits)",
                       param="script_name")
    if body.blend:
        return await _blend(body, request, response, principal, idempotency_key)
    if len(body.init_images) != 1:
        raise ApiError(422, f"init_images: exactly one image per request (got {len(body.init_images)}; "
                            f"kaiga's blend: true mixes 2 to {MAX_BLEND})", param="init_images")
    if body.resize_mode != 0:
        raise ApiError(422, f"resize_mode: kaiga only resizes (0) (got {body.resize_mode})", param="resize_mode")
    init_data = decode_base64(body.init_images[0], "init_images", MAX_UPLOAD_BYTES)
    init = await read_image(init_data, "init_images")
    mask = None
    if body.mask:
        mask = await read_image(decode_base64(body.mask, "mask", MAX_UPLOAD_BYTES), "mask")
        mask = await run_in_threadpool(a1111_mask, mask, bool(body.inpainting_mask_invert))
    model = model_of(state, body)
    if any(v is not None for v in (body.vary, body.pan, body.pan_amount, body.zoom)):
        return await _remix(body, request, response, principal, idempotency_key, init_data, init, mask, model)
    fields = {**request_fields(body, model), "strength": body.denoising_strength}
    gen = edit_request(fields, mask=mask is not None, rename=RENAME, status=422)
    gen, enlarged = fit_size(gen, state.catalog.capabilities(model))
    gen, record_extra = await style_reference(gen, body.sref)
    gen = await store_inputs(state, gen, init, mask, init_data=init_data, faces_consent=body.faces_consent)  # what the model cannot do: 400, as from txt2img
    parameters = body.model_dump()
    if not body.include_init_images:
        parameters.update(init_images=None, mask=None)
    return await answer(request, response, body, gen, principal=principal, idempotency_key=idempotency_key,
                        fingerprint={"api": "a1111-img2img", "body": body.model_dump()}, parameters=parameters,
                        enlarged=enlarged, record_extra=record_extra)


async def _blend(body: Img2ImgBody, request: Request, response: Response, principal: Principal,
                 idempotency_key: str | None):
    """img2img with `blend: true`: the 2-4 init images blended (the request's `blend`), prompted as given."""
    state: ServerState = request.app.state.kaiga
    if body.mask:
        raise ApiError(422, "mask: a blend repaints the whole mix; send no mask", param="mask")
    if not 2 <= len(body.init_images) <= MAX_BLEND:
        raise ApiError(422, f"init_images: a blend takes 2 to {MAX_BLEND} images (got {len(body.init_images)})",
                       param="init_images")
    datas = [decode_base64(encoded, "init_images", MAX_UPLOAD_BYTES) for encoded in body.init_images]
    images = [(await read_image(data, "init_images"), data) for data in datas]
    model = model_of(state, body)
    given = "denoising_strength" in body.model_fields_set
    fields = {**request_fields(body, model), "strength": body.denoising_strength if given else BLEND_STRENGTH}
    gen = edit_request(fields, mask=False, rename=RENAME, status=422,
                       blend=body.blend_weights or [1.0] * len(images))
    gen, enlarged = fit_size(gen, state.catalog.capabilities(model))
    gen, record_extra = await style_reference(gen, body.sref)
    gen = await store_blend(state, gen, images, faces_consent=body.faces_consent)
    parameters = body.model_dump()
    if not body.include_init_images:
        parameters.update(init_images=None)
    return await answer(request, response, body, gen, principal=principal, idempotency_key=idempotency_key,
                        fingerprint={"api": "a1111-img2img", "body": body.model_dump()}, parameters=parameters,
                        enlarged=enlarged, record_extra={"remix": "blend", **(record_extra or {})})


async def _remix(body: Img2ImgBody, request: Request, response: Response, principal: Principal,
                 idempotency_key: str | None, init_data: bytes, init, mask, model: str | None):
    """img2img with `vary`, `pan` or `zoom`: Midjourney's remix of the init image, as the gallery's remix endpoints
    make it; only the body's fields that the caller set override what the image's metadata says made it."""
    state: ServerState = request.app.state.kaiga
    record = await run_in_threadpool(image_record, init_data)
    try:
        plan = await run_in_threadpool(partial(remix_plan, init, record, vary=body.vary, pan=body.pan,
                                               pan_amount=body.pan_amount, zoom=body.zoom, region=mask))
    except RequestError as e:
        field = str(e).split(":", 1)[0]
        raise ApiError(422, str(e), param=field) from None
    given = body.model_fields_set
    fields = {k: v for k, v in request_fields(body, model).items()
              if k not in ("prompt", "negative_prompt") or RENAME.get(k, k) in given}
    if "denoising_strength" in given:
        fields["strength"] = body.denoising_strength
    gen = await store_remix(state, plan, fields, rename=RENAME, status=422, faces_consent=body.faces_consent)
    gen, enlarged = fit_size(gen, state.catalog.capabilities(gen.model))
    gen, sref = await style_reference(gen, body.sref)
    parameters = body.model_dump()
    if not body.include_init_images:
        parameters.update(init_images=None, mask=None)
    return await answer(request, response, body, gen, principal=principal, idempotency_key=idempotency_key,
                        fingerprint={"api": "a1111-img2img", "body": body.model_dump()}, parameters=parameters,
                        enlarged=enlarged, record_extra={"remix": plan.kind, **(plan.note or {}), **(sref or {})})
