"""OpenAI-compatible image edits and variations: `POST /v1/images/edits`, `POST /v1/images/variations`.

Both take multipart forms, as OpenAI's, and answer as `/v1/images/generations` does; their jobs go
through the same durable queue. Mapping onto `GenerationRequest`:

| OpenAI | kaiga |
|---|---|
| image (PNG, JPEG or WebP, ≤ 4 MiB, ≤ 16 Mpx) | init_image: the upload's hash in the server's upload store |
| mask: its fully transparent pixels mark the area to edit | mask, converted to kaiga's white = repaint |
| no mask, but an image with transparent pixels | those pixels are the mask (as OpenAI) |
| no mask, no transparency | an edit of the whole image (image-to-image) |
| 2-4 images (`image[]`, as for gpt-image-1), no mask | a blend (Midjourney's /blend): their latents mixed and redrawn at strength 0.6 with the prompt; kaiga's `blend_weights` ("2,1") shares them |
| prompt, n, size, model, response_format, user, quality | as for generations |
| variations | image-to-image at strength 0.6, prompted by the image's own kaiga/A1111 metadata, else empty |
| variations with kaiga's `vary` (subtle, strong), `pan` (left, right, up, down; `pan_amount` 0.1-0.9) or `zoom` (1.1-4) | Midjourney's vary, pan and zoom out (kaiga.variations), with the image's own prompt and model as its metadata says |

kaiga's own fields may be added (the openai client's `extra_body`): every other field of
`GenerationRequest` under its own name, as for generations, and strength (default 1.0 with a mask:
the area is drawn anew, as OpenAI's; 0.75 without). Any other field is refused, as OpenAI does.

Example:
    >>> EditForm(prompt="a red car", n="2").n
    2
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from kaiga.request import MAX_BLEND, MAX_UPLOAD_BYTES, RequestError, field_specs
from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import (
    edit_request,
    has_transparency,
    mask_from_alpha,
    read_image,
    store_blend,
    store_inputs,
    store_remix,
)
from kaiga.server.errors import ApiError
from kaiga.server.openai_api import (
    OPENAI_RENAME,
    QUALITY_STEPS,
    SIZE_FIELDS,
    ImagesResponse,
    OpenAIFields,
    answer,
    check_model,
    parse_size,
    size_renames,
)
from kaiga.server.request_fields import request_body, request_values, taken_fields
from kaiga.server.state import Principal
from kaiga.store.uploads import too_large
from kaiga.studio import variation_fields
from kaiga.variations import image_record, remix_plan

MASKED_STRENGTH = 1.0  # OpenAI redraws the masked area from scratch

router = APIRouter(tags=["OpenAI-compatible"])  # bodies are bounded by kaiga.server.body_limit


# The request fields each form takes under their own names (as generations: `size` for width and height);
# the image and the mask are the files.
EDIT_FIELDS = taken_fields(exclude=(*SIZE_FIELDS, "init_image", "mask", "blend"), rename=OPENAI_RENAME)
VARIATION_FIELDS = taken_fields(exclude=(*SIZE_FIELDS, "init_image", "mask", "blend", "prompt"), rename=OPENAI_RENAME)  # prompt: the image's own


class VariationForm(request_body("VariationFields", VARIATION_FIELDS, base=OpenAIFields)):
    """The text fields of `POST /v1/images/variations` (the file is `image`)."""

    faces_consent: bool = Field(False, description=(
        "kaiga: the people in the image consent to show their faces; else faces found in it are blurred before "
        "it is stored (the image's record says which)."))
    vary: Literal["subtle", "strong"] | None = Field(None, description=(
        "kaiga: Midjourney's Vary (Subtle) or (Strong): image to image at strength 0.35 or 0.75."))
    pan: Literal["left", "right", "up", "down"] | None = Field(None, description=(
        "kaiga: Midjourney's pan: the view moved this way by pan_amount of the image, the revealed strip painted."))
    pan_amount: float | None = Field(None, ge=0.1, le=0.9, description="kaiga: how far a pan moves (0.5).")
    zoom: float | None = Field(None, ge=1.1, le=4.0, description=(
        "kaiga: Midjourney's zoom out by this factor (1.5, 2): the image shrunk into the middle, the border painted."))


class EditForm(request_body("EditFields", EDIT_FIELDS, base=OpenAIFields)):
    """The text fields of `POST /v1/images/edits` (the files are `image` and `mask`)."""

    prompt: str = Field(description=field_specs()["prompt"].help)  # required, as OpenAI's
    quality: Literal["low", "medium", "standard", "auto", "high", "hd"] | None = None
    output_format: Literal["png"] | None = None  # the only format kaiga writes
    faces_consent: bool = Field(False, description=(
        "kaiga: the people in the image consent to show their faces; else faces found in it are blurred before "
        "it is stored (the image's record says which)."))
    blend_weights: str | None = Field(None, description=(
        "kaiga: with 2-4 images (a blend), one share per image separated by commas, e.g. 2,1 (default: equal)."))


def _openapi(form: type[BaseModel], files: dict[str, str]) -> dict:
    schema = form.model_json_schema()
    properties = {name: {"type": "string", "format": "binary", "description": text} for name, text in files.items()}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image", *schema.get("required", [])],
        "properties": {**properties, **schema["properties"]}}}}}}


async def _parse(request: Request, form_type: type[BaseModel], files: tuple[str, ...], images: int = 1):
    """The form's text fields (validated) and its files' bytes (each read to at most the upload limit + 1);
    `data["image"]` is a list of up to `images` files, any other file one."""
    form = await request.form(max_files=len(files) + images, max_fields=50)
    fields, data = {}, {"image": []}
    for key, value in form.multi_items():
        name = key.removesuffix("[]")  # newer clients send image[] for a list of images
        if name in files:
            full = len(data["image"]) >= images if name == "image" else name in data
            if not isinstance(value, UploadFile) or full:
                expected = f"at most {images} files" if name == "image" and images > 1 else "one file"
                raise ApiError(400, f"{name}: {expected} expected", param=name, code="invalid_value")
            if value.size is not None and value.size > MAX_UPLOAD_BYTES:  # the parser counted it (the body is bounded)
                raise ApiError(400, too_large(name, value.size, MAX_UPLOAD_BYTES), param=name, code="invalid_image")
            content = await value.read(MAX_UPLOAD_BYTES + 1)  # one byte over is enough to refuse
            if name == "image":
                data["image"].append(content)
            else:
                data[name] = content
        else:
            fields[key] = value
    try:
        parsed = form_type.model_validate(fields)
    except ValidationError as e:
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in e.errors()]) from None
    if not data["image"]:
        raise ApiError(400, "Missing required parameter: 'image'.", param="image", code="missing")
    return parsed, data


def _fields(form: BaseModel, fields: dict[str, str]) -> dict:
    width, height = parse_size(form.size)
    return request_values(form, fields) | {"width": width, "height": height}


def _fingerprint(api: str, form: BaseModel, data: dict[str, bytes]) -> dict:
    return {"api": api, "body": form.model_dump(exclude_none=True),
            "files": {name: [hashlib.sha256(c).hexdigest() for c in content] if isinstance(content, list)
                      else hashlib.sha256(content).hexdigest() for name, content in data.items()}}


@router.post("/v1/images/edits", response_model=ImagesResponse, response_model_exclude_none=True,
             openapi_extra=_openapi(EditForm, {"image": "PNG, JPEG or WebP, at most 4 MiB",
                                               "mask": "PNG whose fully transparent pixels mark the area to edit"}))
async def create_edit(request: Request, response: Response, principal: Principal = Depends(authenticate),
                      idempotency_key: Annotated[str | None, Header()] = None):
    """Edit an image: repaint the area a mask marks, or the whole image; blend 2-4 images (waits for the job)."""
    form, data = await _parse(request, EditForm, ("image", "mask"), images=MAX_BLEND)
    if len(data["image"]) > 1:
        return await _blend(request, response, principal, idempotency_key, form, data)
    if form.blend_weights is not None:
        raise ApiError(400, "blend_weights: applies to a blend; send 2 to 4 images", param="blend_weights",
                       code="invalid_value")
    [image_data] = data["image"]
    image = await read_image(image_data, "image")
    mask = await read_image(data["mask"], "mask") if "mask" in data else None
    if mask is not None and mask.size != image.size:
        raise ApiError(400, f"mask: must have the image's size {image.width}x{image.height} "
                            f"(got {mask.width}x{mask.height})", param="mask", code="invalid_value")
    if mask is not None:
        mask = await run_in_threadpool(mask_from_alpha, mask, "mask")
    elif await run_in_threadpool(has_transparency, image):
        mask = await run_in_threadpool(mask_from_alpha, image, "image")
    fields = _fields(form, EDIT_FIELDS)
    fields.setdefault("steps", QUALITY_STEPS[form.quality or "auto"])
    if mask is not None:
        fields.setdefault("strength", MASKED_STRENGTH)
    gen = edit_request(fields, mask=mask is not None, rename=size_renames(form.steps))
    state = request.app.state.kaiga
    check_model(state, gen.model)
    gen = await store_inputs(state, gen, image, mask, init_data=image_data, faces_consent=form.faces_consent)
    return await answer(request, response, gen, principal=principal, user=form.user, idempotency_key=idempotency_key,
                        fingerprint=_fingerprint("openai-edits", form, data), response_format=form.response_format)


async def _blend(request: Request, response: Response, principal: Principal, idempotency_key: str | None,
                 form: EditForm, data: dict):
    """An edit of 2-4 images: their blend (the request's `blend`), prompted as given; no mask."""
    if "mask" in data:
        raise ApiError(400, "mask: a blend repaints the whole mix; send no mask", param="mask", code="invalid_value")
    try:
        shares = [float(w) for w in form.blend_weights.split(",")] if form.blend_weights else None
    except ValueError:
        raise ApiError(400, f"blend_weights: numbers separated by commas, one per image (got {form.blend_weights!r})",
                       param="blend_weights", code="invalid_value") from None
    images = [(await read_image(d, "image"), d) for d in data["image"]]
    fields = _fields(form, EDIT_FIELDS)
    fields.setdefault("steps", QUALITY_STEPS[form.quality or "auto"])
    gen = edit_request(fields, mask=False, rename=size_renames(form.steps), blend=shares or [1.0] * len(images))
    state = request.app.state.kaiga
    check_model(state, gen.model)
    gen = await store_blend(state, gen, images, faces_consent=form.faces_consent)
    return await answer(request, response, gen, principal=principal, user=form.user, idempotency_key=idempotency_key,
                        fingerprint=_fingerprint("openai-blend", form, data), response_format=form.response_format,
                        record_extra={"remix": "blend"})


@router.post("/v1/images/variations", response_model=ImagesResponse, response_model_exclude_none=True,
             openapi_extra=_openapi(VariationForm, {"image": "PNG, JPEG or WebP, at most 4 MiB"}))
async def create_variation(request: Request, response: Response, principal: Principal = Depends(authenticate),
                           idempotency_key: Annotated[str | None, Header()] = None):
    """Variations of an image: image-to-image at a moderate strength, prompted by the image's own metadata."""
    form, data = await _parse(request, VariationForm, ("image",))
    [image_data] = data["image"]
    image = await read_image(image_data, "image")
    if any(v is not None for v in (form.vary, form.pan, form.pan_amount, form.zoom)):
        return await _remix(request, response, principal, idempotency_key, form, data, image)
    # The Studio says what a variation is (the image's own prompt, a moderate strength); the form's fields win.
    own = await run_in_threadpool(variation_fields, image_data)
    fields = {**_fields(form, VARIATION_FIELDS), "prompt": own["prompt"],
              "negative_prompt": form.negative_prompt or own["negative_prompt"] or None}
    fields.setdefault("strength", own["strength"])
    gen = edit_request(fields, mask=False, rename=size_renames(0))
    state = request.app.state.kaiga
    check_model(state, gen.model)
    gen = await store_inputs(state, gen, image, None, init_data=image_data, faces_consent=form.faces_consent)
    return await answer(request, response, gen, principal=principal, user=form.user, idempotency_key=idempotency_key,
                        fingerprint=_fingerprint("openai-variations", form, data), response_format=form.response_format)


async def _remix(request: Request, response: Response, principal: Principal, idempotency_key: str | None,
                 form: VariationForm, data: dict, image) -> ImagesResponse:
    """A variation with `vary`, `pan` or `zoom`: Midjourney's remix of the image, from what its metadata says
    made it (prompt, model, size), as the gallery's remix endpoints make it; the form's fields win."""
    [image_data] = data["image"]
    record = await run_in_threadpool(image_record, image_data)
    try:
        plan = await run_in_threadpool(partial(remix_plan, image, record, vary=form.vary, pan=form.pan,
                                               pan_amount=form.pan_amount, zoom=form.zoom))
    except RequestError as e:
        field = str(e).split(":", 1)[0]
        raise ApiError(400, str(e), param=field, code="invalid_value") from None
    fields = _fields(form, VARIATION_FIELDS)
    state = request.app.state.kaiga
    check_model(state, fields.get("model"))
    gen = await store_remix(state, plan, fields, rename=size_renames(0), faces_consent=form.faces_consent)
    return await answer(request, response, gen, principal=principal, user=form.user, idempotency_key=idempotency_key,
                        fingerprint=_fingerprint("openai-remix", form, data), response_format=form.response_format,
                        record_extra={"remix": plan.kind, **(plan.note or {})})
