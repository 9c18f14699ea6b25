"""Image uploads of the edit endpoints: body caps, base64, mask conventions, and submitting an edit.

Every uploaded image passes `kaiga.store.uploads.check_image` (bytes, format and pixel count checked
before decoding); a refusal is a 400 naming the field, and nothing is written. The whole request
body is bounded before any of this, while it arrives (`kaiga.server.body_limit`).

Masks are stored in kaiga's convention, white = repaint; the APIs' own conventions are converted
here: OpenAI's (transparent = repaint) by `mask_from_alpha`, A1111's (white = repaint, or the alpha
channel when it has one; `inpainting_mask_invert`) by `a1111_mask`; its `mask_blur` is the request's.

Example:
    >>> from PIL import Image
    >>> rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 255)); rgba.putpixel((1, 0), (0, 0, 0, 0))
    >>> list(mask_from_alpha(rgba, "mask").getdata())
    [0, 255]
    >>> decode_base64("data:image/png;base64,aGk=", "mask", limit=10)
    b'hi'
"""

from __future__ import annotations

import base64
import binascii
import io
from functools import partial

from PIL import Image, ImageChops
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from kaiga.model_files import ModelError
from kaiga.provenance.privacy import clean_upload
from kaiga.request import GenerationRequest, RequestError, blend_spec
from kaiga.server.errors import ApiError, from_validation
from kaiga.server.state import ServerState
from kaiga.store.uploads import PENDING, UploadError, UploadStore, check_image, too_large


async def read_image(data: bytes, field: str) -> Image.Image:
    """The decoded upload, or a 400 naming `field` (decoding runs off the event loop)."""
    try:
        return await run_in_threadpool(check_image, data, field)
    except UploadError as e:
        raise ApiError(400, str(e), param=field, code="invalid_image") from None


def decode_base64(text: str, field: str, limit: int) -> bytes:
    """Base64 with or without a `data:` prefix, refused before decoding when longer than `limit` bytes."""
    encoded = text.split(",", 1)[1] if text.startswith("data:") else text
    if len(encoded) > (limit + 2) // 3 * 4:
        raise ApiError(400, too_large(field, len(encoded) * 3 // 4, limit), param=field, code="invalid_image")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"{field}: not valid base64", param=field, code="invalid_image") from None


SREF_HELP = ("kaiga: take the style of this image (Midjourney's --sref; base64 PNG, JPEG or WebP, or a data: URL): "
             "the scenes judge reads its style, which becomes the request's style preset; the record says so.")


async def style_reference(gen: GenerationRequest, encoded: str | None) -> tuple[GenerationRequest, dict | None]:
    """`gen` with the style the judge reads in the `sref` image, and what the records keep of it (as the CLI's
    `--sref`); `gen` and None without one; a 400 naming `sref` for a bad image or a style given beside it."""
    import hashlib

    if encoded is None:
        return gen, None

    from kaiga.eval.describe import sref_style
    from kaiga.store.uploads import MAX_UPLOAD_BYTES

    if gen.style.strip():
        raise ApiError(400, "sref: give a style or sref, not both (sref chooses the style)", param="sref",
                       code="invalid_value")
    data = decode_base64(encoded, "sref", MAX_UPLOAD_BYTES)
    image = await read_image(data, "sref")
    style, note = await run_in_threadpool(sref_style, image)
    return gen.model_copy(update={"style": style}), {"sref": {"sha256": hashlib.sha256(data).hexdigest(), **note}}


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") and image.getchannel("A").getextrema()[0] == 0


def mask_from_alpha(image: Image.Image, field: str) -> Image.Image:
    """OpenAI's mask: fully transparent pixels are the area to edit → white = repaint."""
    if image.mode not in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA") if "transparency" in image.info else image
    if image.mode not in ("RGBA", "LA", "PA"):
        raise ApiError(400, f"{field}: must have an alpha channel; its fully transparent pixels mark the area to edit",
                       param=field, code="invalid_image")
    return image.getchannel("A").point(lambda a: 255 if a == 0 else 0)


def a1111_mask(image: Image.Image, invert: bool) -> Image.Image:
    """A1111's mask: its alpha channel if not fully opaque, else its grey levels; white = repaint. (Its
    `mask_blur` is the request's: the family blurs the mask at the output size.)"""
    if image.mode in ("RGBA", "LA") and image.getchannel("A").getextrema() != (255, 255):
        mask = image.getchannel("A").point(lambda a: 255 if a > 128 else 0)
    else:
        mask = image.convert("L")
    if invert:
        mask = ImageChops.invert(mask)
    return mask


def edit_request(fields: dict, *, mask: bool, rename: dict[str, str] | None = None,
                 status: int = 400, blend: list[float] | None = None) -> GenerationRequest:
    """The request of an edit, checked before its images are stored (their hashes filled in later); `blend`:
    the shares of the images to blend instead of one init image."""
    fields = {k: v for k, v in fields.items() if v is not None}
    try:
        if blend is not None:
            return GenerationRequest(**fields, blend=blend_spec([PENDING] * len(blend), blend))
        return GenerationRequest(**fields, init_image=PENDING, mask=PENDING if mask else None)
    except ValidationError as e:
        error = from_validation(e, rename)
        error.status = status
        raise error from None
    except RequestError as e:  # the blend's count or shares
        raise ApiError(status, str(e), param="blend", code="invalid_value") from None


def _check(state: ServerState, request: GenerationRequest, status: int) -> None:
    try:
        state.catalog.check(request)  # a request the model refuses writes no file
    except (RequestError, ModelError) as e:
        field = str(e).split(":", 1)[0]
        raise ApiError(status, str(e), param=field if field.isidentifier() else None, code="invalid_value") from None


async def _store_cleaned(store: UploadStore, image: Image.Image, data: bytes, faces_consent: bool) -> str:
    """The upload's hash, stored cleaned (`kaiga.provenance.privacy.clean_upload`: faces blurred unless
    `faces_consent`), its report read from the uploaded bytes and kept beside it for the records made from it."""
    cleaned, report = await run_in_threadpool(partial(clean_upload, faces_consent=faces_consent), data, image)
    return await run_in_threadpool(store.add, cleaned, report.to_dict())


async def store_inputs(state: ServerState, request: GenerationRequest, init: Image.Image,
                       mask: Image.Image | None, status: int = 400, *, init_data: bytes,
                       faces_consent: bool = False) -> GenerationRequest:
    """Check `request` against its model, then store the images (the init image cleaned) and put their hashes
    in it."""
    _check(state, request, status)
    store = UploadStore(state.settings.uploads_dir())
    init_sha = await _store_cleaned(store, init, init_data, faces_consent)
    mask_sha = await run_in_threadpool(store.add, mask) if mask is not None else None
    return request.model_copy(update={"init_image": init_sha, "mask": mask_sha})


async def store_blend(state: ServerState, request: GenerationRequest, images: list[tuple[Image.Image, bytes]],
                      status: int = 400, *, faces_consent: bool = False) -> GenerationRequest:
    """Check the blend `request` (from `edit_request(..., blend=shares)`) against its model, then store its
    images, cleaned as an init image is, and put their hashes in it."""
    _check(state, request, status)
    store = UploadStore(state.settings.uploads_dir())
    shas = [await _store_cleaned(store, image, data, faces_consent) for image, data in images]
    return request.model_copy(update={"blend": blend_spec(shas, [w for _, w in request.blend_parts()])})


def makes_edits(state: ServerState, model: str | None) -> bool:
    """Whether the catalog has `model` and it edits images (a recorded model may be gone, or a GAN)."""
    try:
        return bool(model) and state.catalog.capabilities(model).edits
    except ModelError:
        return False


async def store_remix(state: ServerState, plan, fields: dict, *, rename: dict[str, str] | None = None,
                      status: int = 400, faces_consent: bool = False) -> GenerationRequest:
    """The request of a remix plan (kaiga.variations: vary, pan, zoom out), checked, its canvas and mask stored:
    the plan's fields under the caller's `fields` (None: not given). A recorded model that cannot edit (the
    image was a GAN's) or is gone gives way to the default model, as `Studio.remix` does."""
    from kaiga.variations import MODEL_FIELDS

    given = {k: v for k, v in fields.items() if v is not None}
    base = dict(plan.fields)
    if "model" not in given and base.get("model") and not makes_edits(state, base["model"]):
        base = {k: v for k, v in base.items() if k not in MODEL_FIELDS}
    gen = edit_request({**base, **given}, mask=plan.mask is not None, rename=rename, status=status)
    buf = io.BytesIO()
    plan.init.save(buf, format="PNG")
    return await store_inputs(state, gen, plan.init, plan.mask, status, init_data=buf.getvalue(),
                              faces_consent=faces_consent)
