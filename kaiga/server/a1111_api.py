"""AUTOMATIC1111-compatible API (`/sdapi/v1/...`), for the clients and plugins written for A1111.

Responses are shaped as A1111's: `images` are base64 PNGs without a `data:` prefix, `parameters`
echoes the request, `info` is a JSON *string* (with kaiga's `unknown_words`: the prompt's words the
model did not know and ignored). Fields of A1111 that kaiga has no equivalent for
(hires fix, face restoration, tiling, scripts) are accepted at their "off" values and refused with
a 422 naming the field when switched on, rather than silently ignored.

Example:
    >>> body = Txt2ImgBody(prompt="a red car", sampler_name="Euler a", batch_size=2, n_iter=2, cfg_scale=4)
    >>> r = to_request(body, model=None)
    >>> r.sampler.value, r.n, r.guidance
    ('euler-a', 4, 4.0)
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from kaiga.metadata import A1111_SAMPLER_NAMES, SAMPLER_FROM_A1111, MetadataError, read_metadata
from kaiga.request import GenerationRequest, Sampler, field_specs
from kaiga.server.auth import authenticate
from kaiga.server.errors import ApiError, from_validation
from kaiga.server.request_fields import request_body, request_values, taken_fields
from kaiga.server.state import Principal, ServerState, unknown_words

router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111-compatible"], dependencies=[Depends(authenticate)])

MAX_PNG_INFO_BYTES = 50 * 2**20  # png-info reads text chunks only, but the upload itself is capped


# How A1111 names the request's fields (request -> A1111). n is batch_size × n_iter, the sampler may be
# A1111's name ("Euler a"), the model is the checkpoint of override_settings or of POST /options, and
# img2img (kaiga.server.a1111_img2img) takes the image, the mask and the strength. Every other field of
# GenerationRequest is taken under its own name: A1111's (prompt, steps, width, ...) or kaiga's own.
RENAME = {"n": "batch_size", "guidance": "cfg_scale", "sampler": "sampler_name", "strength": "denoising_strength",
          "model": "sd_model_checkpoint", "init_image": "init_images", "mask": "mask"}
TXT2IMG_FIELDS = taken_fields(exclude=set(RENAME) - {"guidance"}, rename=RENAME)  # cfg_scale is guidance as it is


class _A1111Fields(BaseModel):
    model_config = ConfigDict(extra="allow")  # A1111's fields that kaiga does not use are accepted


class Txt2ImgBody(request_body("Txt2ImgFields", TXT2IMG_FIELDS, base=_A1111Fields)):
    """The body of `POST /sdapi/v1/txt2img` (A1111's names; unlisted A1111 fields are accepted and unused)."""

    # A1111's own defaults and conventions for fields the request also has.
    prompt: str = ""
    negative_prompt: str = ""
    seed: int = -1  # -1: random
    sampler_name: str | None = Field(None, description=field_specs()["sampler"].help + " Or A1111's name (Euler a).")
    sampler_index: str | None = None  # A1111's older name for the sampler
    batch_size: Annotated[int, Field(ge=1)] = 1  # their product is kaiga's n, limited by the request type
    n_iter: Annotated[int, Field(ge=1)] = 1
    # A1111's features that kaiga lacks: accepted at their "off" values only.
    enable_hr: bool = False
    restore_faces: bool | None = False
    tiling: bool | None = False
    script_name: str | None = None
    override_settings: dict[str, Any] = {}
    send_images: bool = True


_UNSUPPORTED = {"enable_hr": "hires fix", "restore_faces": "face restoration", "tiling": "tiling",
                "script_name": "scripts"}


def sampler_of(name: str | None) -> str | None:
    """A1111's sampler name ("Euler a") or kaiga's ("euler-a") as kaiga's; unknown names pass through."""
    if name is None:
        return None
    return SAMPLER_FROM_A1111.get(name, name)


def to_request(body: Txt2ImgBody, model: str | None) -> GenerationRequest:
    return _validated(request_fields(body, model))


def request_fields(body: Txt2ImgBody, model: str | None) -> dict:
    """The kaiga request fields of an A1111 body (None: the default); 422 for a feature kaiga lacks."""
    for field, what in _UNSUPPORTED.items():
        if getattr(body, field):
            raise ApiError(422, f"{field}: kaiga has no {what}; leave it off", param=field)
    return {**request_values(body, TXT2IMG_FIELDS), "seed": None if body.seed == -1 else body.seed,
            "n": body.batch_size * body.n_iter, "sampler": sampler_of(body.sampler_name or body.sampler_index),
            "model": model}


def _validated(fields: dict) -> GenerationRequest:
    try:
        return GenerationRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        error = from_validation(e, RENAME)
        error.status = 422
        raise error from None


def _model_title(state: ServerState, name: str) -> str:
    return f"{name} [{state.catalog.hash(name)}]"


def _model_from_option(state: ServerState, value: str) -> str:
    """A checkpoint option ("name" or A1111's "name [hash]") as a model name of the catalog."""
    name = value.split(" [", 1)[0].strip()
    try:
        return state.catalog.ref(name).name
    except ValueError as e:
        raise ApiError(422, str(e).replace("model:", "sd_model_checkpoint:", 1), param="sd_model_checkpoint") from None


def _info(images, request: GenerationRequest, job) -> str:
    """A1111's `info`: a JSON string describing the batch."""
    records = [r.record for r in images]
    first = records[0] if records else {}
    from kaiga.metadata import GenerationRecord, to_a1111_parameters

    infotexts = [to_a1111_parameters(GenerationRecord.model_validate(r)) for r in records]
    return json.dumps({
        "prompt": request.prompt, "all_prompts": [request.prompt] * len(records),
        "negative_prompt": request.negative_prompt, "all_negative_prompts": [request.negative_prompt] * len(records),
        "seed": first.get("seed", request.seed), "all_seeds": [r["seed"] for r in records],
        "subseed": -1, "all_subseeds": [-1] * len(records), "subseed_strength": 0,
        "width": first.get("width", request.width), "height": first.get("height", request.height),
        "sampler_name": A1111_SAMPLER_NAMES.get(request.sampler.value, request.sampler.value),
        "cfg_scale": request.guidance, "steps": request.steps, "batch_size": request.n, "restore_faces": False,
        "face_restoration_model": None, "sd_model_name": first.get("model"), "sd_model_hash": first.get("model_hash"),
        "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": request.denoise_strength if request.is_edit else None,
        "extra_generation_params": {}, "index_of_first_image": 0, "infotexts": infotexts, "styles": [],
        "job_timestamp": job.created.strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": f"kaiga {first.get('kaiga_version', '')}".strip(),
        "kaiga_job_id": job.id, "unknown_words": unknown_words(records),
    })


@router.post("/txt2img")
async def txt2img(body: Txt2ImgBody, request: Request, response: Response,
                  principal: Principal = Depends(authenticate),
                  idempotency_key: Annotated[str | None, Header()] = None):
    """Generate images from text (waits for the job)."""
    gen = to_request(body, model_of(request.app.state.kaiga, body))
    return await answer(request, response, body, gen, principal=principal, idempotency_key=idempotency_key,
                        fingerprint={"api": "a1111", "body": body.model_dump()})


def model_of(state: ServerState, body: Txt2ImgBody) -> str | None:
    """The model a body asks for: its override_settings' checkpoint, else the one set by POST /options."""
    checkpoint = body.override_settings.get("sd_model_checkpoint") or state.a1111_options.get("sd_model_checkpoint")
    return _model_from_option(state, checkpoint) if checkpoint else None


async def answer(request: Request, response: Response, body: Txt2ImgBody, gen: GenerationRequest, *,
                 principal: Principal, idempotency_key: str | None, fingerprint: dict,
                 parameters: dict | None = None) -> dict:
    """Queue `gen`, wait for its job, and answer as A1111's txt2img and img2img do."""
    state: ServerState = request.app.state.kaiga
    job = await state.submit(gen, principal=principal, idempotency_key=idempotency_key, fingerprint=fingerprint)
    response.headers["X-Kaiga-Job-Id"] = job.id
    job = await state.wait(job)
    images = await state.images(job, with_bytes=body.send_images) if job.status == "done" else []
    rows = [row for row, _ in images]
    info = _info(rows, GenerationRequest.model_validate(job.request), job)
    return {"images": [base64.b64encode(png).decode() for _, png in images] if body.send_images else [],
            "parameters": body.model_dump() if parameters is None else parameters, "info": info}


@router.get("/sd-models")
async def sd_models(request: Request):
    state: ServerState = request.app.state.kaiga
    return [{"title": _model_title(state, ref.name), "model_name": ref.name, "hash": state.catalog.hash(ref.name),
             "sha256": None, "filename": str(ref.path), "config": None} for ref in state.catalog.models]


@router.get("/samplers")
async def samplers():
    return [{"name": A1111_SAMPLER_NAMES.get(s.value, s.value), "aliases": [s.value], "options": {}} for s in Sampler]


@router.get("/options")
async def get_options(request: Request):
    state: ServerState = request.app.state.kaiga
    current = state.a1111_options.get("sd_model_checkpoint") or state.catalog.default.name
    return {**state.a1111_options, "sd_model_checkpoint": _model_title(state, current), "samples_format": "png"}


@router.post("/options")
async def set_options(options: dict[str, Any], request: Request):
    """Only `sd_model_checkpoint` (the default model of A1111 requests) changes what kaiga does."""
    state: ServerState = request.app.state.kaiga
    if "sd_model_checkpoint" in options:
        options = {**options, "sd_model_checkpoint": _model_from_option(state, str(options["sd_model_checkpoint"]))}
    state.a1111_options.update(options)  # A1111 answers null


@router.get("/progress")
async def progress(request: Request):
    state: ServerState = request.app.state.kaiga
    current = state.workers.current() if state.workers is not None else None
    depth = await run_in_threadpool(state.queue.depth)
    if current is None:
        return {"progress": 0.0, "eta_relative": 0.0, "current_image": None, "textinfo": None,
                "state": {"skipped": False, "interrupted": False, "job": "", "job_count": depth,
                          "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}}
    import time

    elapsed = time.monotonic() - current.started
    p = current.progress
    eta = elapsed / p - elapsed if p > 0 else 0.0
    return {"progress": p, "eta_relative": eta, "current_image": None, "textinfo": None,
            "state": {"skipped": False, "interrupted": False, "job": current.job_id, "job_count": depth,
                      "job_timestamp": datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"), "job_no": 0,
                      "sampling_step": current.step, "sampling_steps": current.total}}


@router.post("/interrupt")
async def interrupt(request: Request):
    """Stop the job running now (it ends as cancelled); queued jobs stay queued."""
    state: ServerState = request.app.state.kaiga
    if state.workers is not None:
        state.workers.interrupt()
    return {}


class PngInfoBody(BaseModel):
    image: str  # base64, with or without a data: prefix


@router.post("/png-info")
async def png_info(body: PngInfoBody):
    """The generation parameters in an image (kaiga, A1111 or ComfyUI metadata); pixels are not decoded."""
    encoded = body.image.split(",", 1)[1] if body.image.startswith("data:") else body.image
    if len(encoded) > MAX_PNG_INFO_BYTES * 4 // 3 + 4:
        raise ApiError(413, f"image: at most {MAX_PNG_INFO_BYTES // 2**20} MiB", param="image")
    try:
        data = base64.b64decode(encoded, validate=True)
        meta = await run_in_threadpool(read_metadata, data)
    except (binascii.Error, ValueError, MetadataError) as e:
        raise ApiError(422, f"image: not a readable base64 image ({e})", param="image") from None
    except Exception as e:  # PIL's DecompressionBombError and other refusals of odd files
        raise ApiError(422, f"image: {type(e).__name__}: {e}", param="image") from None
    info = meta.raw.get("parameters", "")
    items = {k: v for k, v in meta.raw.items() if k != "parameters"}
    return {"info": info, "items": items, "parameters": meta.parameters}
