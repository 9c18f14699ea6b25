"""AUTOMATIC1111-compatible API (`/sdapi/v1/...`), for the clients and plugins written for A1111.

Responses are shaped as A1111's: `images` are base64 PNGs without a `data:` prefix, `parameters`
echoes the request, `info` is a JSON *string* (with kaiga's `unknown_words`: the prompt's words the
model did not know and ignored; `ignored_fields`: what it does not read, e.g. steps for a GAN). Fields of A1111 that kaiga has no equivalent for
(hires fix, face restoration, tiling, scripts, a scheduler other than "automatic") are accepted at
their "off" values and refused with a 422 naming the field when switched on, rather than silently ignored.

A1111 clients send A1111's defaults: 512×512 (webuiapi, Krita, SillyTavern) and an empty prompt (an
unconditional image, as A1111 makes). A size the model cannot make (512 on kaiga's 64-pixel models, whose
largest is 256) is made at about the model's native size with the same aspect, enlarged by an integer
factor by the learned upscaler (the request's `upscale`, at most 8; `upscale_method` "lanczos" for Lanczos) and, where that is not exactly the size asked
for, resized to it, so the client gets the size it asked for; `info` says so in `kaiga_note`, and its
`width`/`height` are the size the model made (as A1111's are the first pass's under hires fix). Sizes
the model can make are made as asked. The prompt may weigh words as A1111's do: `(red:1.3)`, `[fog]`.

Example:
    >>> body = Txt2ImgBody(prompt="a red car", sampler_name="Euler a", batch_size=2, n_iter=2, cfg_scale=4)
    >>> r = to_request(body, model=None)
    >>> r.sampler.value, r.n, r.guidance
    ('euler-a', 4, 4.0)
    >>> from kaiga.capabilities import Capabilities
    >>> r, enlarged = fit_size(r.model_copy(update={"width": 768, "height": 512}),
    ...                        Capabilities.from_info({"native_size": 64, "max_size": 256, "size_multiple": 16}))
    >>> (r.width, r.height, r.upscale), enlarged.note
    ((96, 64, 8), 'made at 96x64 (the model makes 64x64 natively, at most 256x256) and enlarged to 768x512 with kaiga-4x')
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from PIL import Image, PngImagePlugin
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from kaiga.capabilities import Capabilities
from kaiga.metadata import (
    A1111_SAMPLER_NAMES,
    SAMPLER_FROM_A1111,
    GenerationRecord,
    MetadataError,
    read_metadata,
    record_of,
)
from kaiga.request import LIMITS, GenerationRequest, Sampler, UpscaleMethod, field_specs, parse_style_spec
from kaiga.server.a1111_xyz import is_xyz, xyz_plot
from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import SREF_HELP, decode_base64, read_image, style_reference
from kaiga.server.errors import ApiError, from_validation
from kaiga.server.personalize import ChooseFrom, Personalize, personalization
from kaiga.server.request_fields import request_body, request_values, taken_fields
from kaiga.server.settings import is_loopback
from kaiga.server.state import Principal, ServerState, noted, unknown_words
from kaiga.store.gallery import Gallery
from kaiga.store.jobs import split_request

router = APIRouter(prefix="/sdapi/v1", tags=["AUTOMATIC1111-compatible"], dependencies=[Depends(authenticate)])

MAX_PNG_INFO_BYTES = 50 * 2**20  # png-info reads text chunks only, but the upload itself is capped


# How A1111 names the request's fields (request -> A1111). n is batch_size × n_iter, the sampler may be
# A1111's name ("Euler a"), the model is the checkpoint of override_settings or of POST /options, and
# img2img (kaiga.server.a1111_img2img) takes the image, the mask and the strength. Every other field of
# GenerationRequest is taken under its own name: A1111's (prompt, steps, width, ...) or kaiga's own.
RENAME = {"n": "batch_size", "guidance": "cfg_scale", "sampler": "sampler_name", "strength": "denoising_strength",
          "model": "sd_model_checkpoint", "init_image": "init_images", "mask": "mask", "blend": "init_images"}
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
    styles: list[str] = Field([], description="A1111's style names (`GET /sdapi/v1/prompt-styles`), mixed with "
                                              "equal shares; kaiga's `style` gives each its own share.")
    sref: str | None = Field(None, description=SREF_HELP)
    personalize: Personalize = None
    choose_from: ChooseFrom = 4
    # A1111's features that kaiga lacks: accepted at their "off" values only.
    enable_hr: bool = False
    restore_faces: bool | None = False
    tiling: bool | None = False
    script_name: str | None = Field(None, description="A1111's script: kaiga runs \"X/Y/Z plot\" (kaiga/server/a1111_xyz.py).")
    script_args: list[Any] = []
    scheduler: str | None = None  # A1111 1.9+: the noise schedule; kaiga's samplers run the model's own
    override_settings: dict[str, Any] = {}
    send_images: bool = True


_UNSUPPORTED = {"enable_hr": "hires fix", "restore_faces": "face restoration", "tiling": "tiling"}
SCHEDULERS = ("automatic",)  # A1111's "Automatic": each sampler's own schedule, the only one kaiga runs
UPSCALERS = ("None", *(m.label for m in UpscaleMethod))  # A1111's names of kaiga's enlargements: none, and each
# `upscale_method` (the learned kaiga-4x, the default, and Lanczos)


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
    if body.script_name and not is_xyz(body.script_name):
        raise ApiError(422, f"script_name: kaiga runs one of A1111's scripts, \"X/Y/Z plot\" "
                            f"(got {body.script_name!r})", param="script_name")
    if body.scheduler is not None and body.scheduler.lower() not in SCHEDULERS:
        raise ApiError(422, f"scheduler: kaiga's samplers run the model's own schedule, {SCHEDULERS[0]!r} "
                            f"(got {body.scheduler!r})", param="scheduler")
    values = request_values(body, TXT2IMG_FIELDS)
    if body.styles:
        if any("," in name or ":" in name for name in body.styles):
            raise ApiError(422, "styles: names only (no ',' or ':'); give shares in `style`", param="styles")
        values["style"] = ",".join([*body.styles, *([values["style"]] if values.get("style") else [])])
    return {**values, "seed": None if body.seed == -1 else body.seed,
            "n": body.batch_size * body.n_iter, "sampler": sampler_of(body.sampler_name or body.sampler_index),
            "model": model}


def _validated(fields: dict) -> GenerationRequest:
    try:
        return GenerationRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        error = from_validation(e, RENAME)
        error.status = 422
        raise error from None


@dataclass(frozen=True)
class Enlargement:
    """A size the model cannot make: made at `made`, enlarged `factor` times by `upscaler`, resized to `size`."""

    made: tuple[int, int]  # width, height the model makes
    factor: int  # the request's `upscale`
    size: tuple[int, int]  # width, height the client asked for and gets
    native: int  # the model's native size and its largest, for the note
    largest: int
    upscaler: str = UpscaleMethod.LEARNED.label  # the request's upscale_method, by its A1111 name

    @property
    def resized(self) -> bool:
        """Whether the enlarged images need resizing to the exact size asked for."""
        return (self.made[0] * self.factor, self.made[1] * self.factor) != self.size

    @property
    def note(self) -> str:
        made, size = "x".join(map(str, self.made)), "x".join(map(str, self.size))
        why = ("the model's native size" if self.made == (self.native, self.native) else
               f"the model makes {self.native}x{self.native} natively, at most {self.largest}x{self.largest}")
        how = "enlarged" if self.size[0] * self.size[1] > self.made[0] * self.made[1] else "resized"
        return f"made at {made} ({why}) and {how} to {size} with {self.upscaler}"


def _can_make(caps: Capabilities, side: int | None) -> bool:
    return side is None or (side <= caps.max_size and not (caps.one_size and side != caps.native_size))


def _made_side(side: float, caps: Capabilities) -> int:
    """A side the model can make near `side`: a multiple of its size multiple, within its largest."""
    m = caps.size_multiple
    return min(max(m, round(side / m) * m), caps.max_size // m * m)


def fit_size(gen: GenerationRequest, caps: Capabilities) -> tuple[GenerationRequest, Enlargement | None]:
    """`gen` as the model can make it: as asked, or, for a size it cannot make, at about its native size
    with the same aspect and the integer enlargement (`upscale`, at most 8) closest to the size asked for."""
    if _can_make(caps, gen.width) and _can_make(caps, gen.height):
        return gen, None
    if gen.upscale not in (None, 1):
        raise ApiError(422, f"upscale: this model cannot make {gen.width}x{gen.height}, so kaiga chooses the "
                            f"enlargement to it; leave upscale out", param="upscale")
    width, height = gen.width or caps.native_size, gen.height or caps.native_size
    factor = max(1, min(LIMITS["upscale"][1], round(max(width, height) / caps.native_size)))
    if caps.one_size:
        made = (caps.native_size, caps.native_size)
    else:
        made = (_made_side(width / factor, caps), _made_side(height / factor, caps))
    enlarged = Enlargement(made, factor, (width, height), caps.native_size, caps.max_size, gen.upscale_method.label)
    return gen.model_copy(update={"width": made[0], "height": made[1], "upscale": factor}), enlarged


def _resized_png(png: bytes, size: tuple[int, int], gallery: Gallery, record: dict) -> bytes:
    """The PNG resized (Lanczos) to `size`, its text chunks (kaiga's record, A1111's parameters) kept, then
    finished as the gallery finishes what it stores (signed anew: a resized image is a new asset)."""
    with Image.open(io.BytesIO(png)) as image:
        info = PngImagePlugin.PngInfo()
        for key, value in image.text.items():
            info.add_text(key, value)
        out = io.BytesIO()
        image.resize(size, Image.LANCZOS).save(out, format="PNG", pnginfo=info)
    data = out.getvalue()
    return gallery.finish(data, GenerationRecord.model_validate(record)) if gallery.finish is not None else data


def _model_title(state: ServerState, name: str) -> str:
    return f"{name} [{state.catalog.hash(name)}]"


def _model_from_option(state: ServerState, value: str) -> str:
    """A checkpoint option ("name" or A1111's "name [hash]") as a model name of the catalog."""
    name = value.split(" [", 1)[0].strip()
    try:
        return state.catalog.ref(name).name
    except ValueError as e:
        raise ApiError(422, str(e).replace("model:", "sd_model_checkpoint:", 1), param="sd_model_checkpoint") from None


def _info(images, request: GenerationRequest, job, enlarged: Enlargement | None = None) -> str:
    """A1111's `info`: a JSON string describing the batch (and, if it was enlarged, how: `kaiga_note`)."""
    records = [r.record for r in images]
    first = records[0] if records else {}
    from kaiga.metadata import GenerationRecord, to_a1111_parameters

    infotexts = [to_a1111_parameters(GenerationRecord.model_validate(r)) for r in records]
    return json.dumps({
        # each image's prompt as drawn ({a|b} combinations, __wildcards__), as A1111's dynamic prompts reports them
        "prompt": request.prompt, "all_prompts": [r.get("prompt", request.prompt) for r in records],
        "negative_prompt": request.negative_prompt,
        "all_negative_prompts": [r.get("negative_prompt", request.negative_prompt) for r in records],
        "seed": first.get("seed", request.seed), "all_seeds": [r["seed"] for r in records],
        "subseed": -1, "all_subseeds": [-1] * len(records), "subseed_strength": 0,
        "width": first.get("width", request.width), "height": first.get("height", request.height),
        "sampler_name": A1111_SAMPLER_NAMES.get(request.sampler.value, request.sampler.value),
        "cfg_scale": first.get("guidance", request.guidance), "steps": first.get("steps", request.steps),
        "batch_size": request.n, "restore_faces": False,
        "face_restoration_model": None, "sd_model_name": first.get("model"), "sd_model_hash": first.get("model_hash"),
        "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": request.denoise_strength if request.is_edit else None,
        "extra_generation_params": {}, "index_of_first_image": 0, "infotexts": infotexts,
        "styles": [name for name, _ in parse_style_spec(request.style)] if request.style.strip() else [],
        "job_timestamp": job.created.strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": f"kaiga {first.get('kaiga_version', '')}".strip(),
        "kaiga_job_id": job.id, "unknown_words": unknown_words(records),
        "ignored_fields": noted(records, "ignored_fields"),
        **({"kaiga_note": enlarged.note} if enlarged is not None else {}),
    })


@router.post("/txt2img")
async def txt2img(body: Txt2ImgBody, request: Request, response: Response,
                  principal: Principal = Depends(authenticate),
                  idempotency_key: Annotated[str | None, Header()] = None):
    """Generate images from text (waits for the job)."""
    state: ServerState = request.app.state.kaiga
    model = model_of(state, body)
    gen, enlarged = fit_size(to_request(body, model), state.catalog.capabilities(model))
    gen, record_extra = await style_reference(gen, body.sref)
    plot = is_xyz(body.script_name)
    personal = await personalization(state, principal, body.personalize, body.choose_from,
                                     "the X/Y/Z plot" if plot else None)
    if plot:
        return await xyz_plot(state, body, gen, principal)
    return await answer(request, response, body, gen, principal=principal, idempotency_key=idempotency_key,
                        fingerprint={"api": "a1111", "body": body.model_dump()}, enlarged=enlarged,
                        record_extra=record_extra, personalize=personal)


def model_of(state: ServerState, body: Txt2ImgBody) -> str | None:
    """The model a body asks for: its override_settings' checkpoint, else the one set by POST /options."""
    checkpoint = body.override_settings.get("sd_model_checkpoint") or state.a1111_options.get("sd_model_checkpoint")
    return _model_from_option(state, checkpoint) if checkpoint else None


async def answer(request: Request, response: Response, body: Txt2ImgBody, gen: GenerationRequest, *,
                 principal: Principal, idempotency_key: str | None, fingerprint: dict,
                 parameters: dict | None = None, enlarged: Enlargement | None = None,
                 record_extra: dict | None = None, personalize: dict | None = None) -> dict:
    """Queue `gen`, wait for its job, and answer as A1111's txt2img and img2img do (the images resized to
    the size asked for where `fit_size` enlarged them by an integer factor that does not reach it exactly)."""
    state: ServerState = request.app.state.kaiga
    job = await state.submit(gen, principal=principal, idempotency_key=idempotency_key, fingerprint=fingerprint,
                             record_extra=record_extra, personalize=personalize)
    response.headers["X-Kaiga-Job-Id"] = job.id
    job = await state.wait(job)
    images = await state.images(job, with_bytes=body.send_images) if job.status == "done" else []
    rows = [row for row, _ in images]
    if body.send_images and enlarged is not None and enlarged.resized:
        images = [(row, await run_in_threadpool(_resized_png, png, enlarged.size, state.gallery, row.record))
                  for row, png in images]
    info = _info(rows, GenerationRequest.model_validate(split_request(job.request)[0]), job, enlarged)
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


@router.get("/schedulers")
async def schedulers():
    """A1111's noise schedules (1.9+): kaiga's samplers each run the model's own, A1111's "Automatic"."""
    return [{"name": "automatic", "label": "Automatic", "aliases": None, "default_rho": -1, "need_inner_model": False}]


@router.get("/prompt-styles")
async def prompt_styles():
    """The style library (kaiga's presets and $KAIGA_HOME/styles/) in A1111's shape: name, prompt, negative_prompt."""
    from kaiga.styles.library import StyleError, load_library

    try:
        library = await run_in_threadpool(load_library)
    except StyleError as e:
        raise ApiError(500, str(e)) from None
    return [{"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative} for s in library.values()]


@router.get("/upscalers")
async def upscalers():
    """kaiga's enlargements as A1111's upscalers: none, the learned kaiga-4x and Lanczos (at most `upscale` 8)."""
    scales = {"None": 1, UpscaleMethod.LEARNED.label: 4, UpscaleMethod.LANCZOS.label: LIMITS["upscale"][1]}
    return [{"name": name, "model_name": "kaiga-4x (scenes)" if name == UpscaleMethod.LEARNED.label else None,
             "model_path": None, "model_url": None, "scale": scales[name]} for name in UPSCALERS]


@router.get("/loras")
async def loras():
    """The LoRAs a request's `lora` field can name (A1111's {name, alias, path, metadata}): the .safetensors in
    $KAIGA_HOME/loras, with what each says of itself (kaiga's: base model, rank, alpha, dataset)."""
    from kaiga.finetune.lora import list_loras

    return [{"name": p.stem, "alias": p.stem, "path": str(p), "metadata": info} for p, info in list_loras()]


@router.get("/embeddings")
async def embeddings():
    """The textual-inversion words a prompt can use (A1111's {"loaded": {name: {step, sd_checkpoint,
    sd_checkpoint_name, shape, vectors}}, "skipped": {...}}): the .safetensors in $KAIGA_HOME/embeddings; a file that
    cannot be read is skipped. `shape` is the vectors' width, which says the text encoder it fits (384: kaiga's)."""
    from kaiga.finetune.embedding import EmbeddingError, list_embeddings, read_embedding

    loaded, skipped = {}, {}
    for path, info in list_embeddings():
        try:
            vectors = read_embedding(path)
        except EmbeddingError:
            skipped[path.stem] = {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None, "shape": None,
                                  "vectors": None}
            continue
        base = info.get("base") or {}
        runs = (info.get("training") or {}).get("runs") or [{}]
        loaded[path.stem] = {"step": runs[-1].get("steps"), "sd_checkpoint": base.get("model_hash"),
                             "sd_checkpoint_name": base.get("model"), "shape": int(vectors.shape[1]),
                             "vectors": int(vectors.shape[0])}
    return {"loaded": loaded, "skipped": skipped}


@router.get("/cmd-flags")
async def cmd_flags(request: Request):
    """A1111's command-line flags as this server runs: the API and the web UI, where it listens, the default
    model and data folder. Only flags with a kaiga meaning are listed; credentials never are."""
    state: ServerState = request.app.state.kaiga
    host, port = request.scope.get("server") or (None, None)
    return {"api": True, "nowebui": False, "listen": host is not None and not is_loopback(host), "port": port,
            "api_auth": None if not state.settings.api_auth else "(set; not shown)",
            "ckpt": str(state.catalog.default.path), "data_dir": str(state.settings.home()),
            "disable_safe_unpickle": False,  # kaiga never unpickles: checkpoints are safetensors only
            "lowvram": False, "medvram": False, "xformers": False}


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


class InterrogateBody(BaseModel):
    image: str  # base64, with or without a data: prefix
    model: str = "clip"  # A1111's interrogators (clip, deepdanbooru): kaiga has one, the scenes judge


@router.post("/interrogate")
async def interrogate(body: InterrogateBody):
    """A1111's interrogate (Midjourney's /describe): the prompt that would make the image again, read by the scenes
    judge (kaiga/eval/describe.py); `prompts` holds others in other words, `confidence` how sure the judge is."""
    from kaiga.eval.describe import LOW_CONFIDENCE, describe
    from kaiga.store.uploads import MAX_UPLOAD_BYTES

    image = await read_image(decode_base64(body.image, "image", MAX_UPLOAD_BYTES), "image")
    d = await run_in_threadpool(describe, image)
    return {"caption": d.prompts[0], "prompts": d.prompts, "confidence": round(d.confidence, 3),
            "low_confidence": d.confidence < LOW_CONFIDENCE, "interrogator": "kaiga scenes judge"}


class ExtraSingleImageBody(BaseModel):
    """A1111's Extras tab for one image: an enlargement (resize_mode 0: by upscaling_resize; 1: to
    upscaling_resize_w x upscaling_resize_h) with upscaler_1. Face restoration and a second upscaler are
    refused when switched on (kaiga has neither)."""

    model_config = ConfigDict(extra="allow")
    image: str  # base64, with or without a data: prefix
    resize_mode: int = 0
    upscaling_resize: float = 2.0
    upscaling_resize_w: int = 512
    upscaling_resize_h: int = 512
    upscaling_crop: bool = True
    upscaler_1: str = "None"
    upscaler_2: str = "None"
    extras_upscaler_2_visibility: float = 0.0
    gfpgan_visibility: float = 0.0
    codeformer_visibility: float = 0.0


def _extras_size(body: ExtraSingleImageBody, size: tuple[int, int]) -> tuple[int, int]:
    """The size the extras body asks for an image of `size`; 422 naming the field for one kaiga cannot make."""
    from kaiga.upscaler import MAX_SIDE

    if body.resize_mode == 0:
        if not 1 <= body.upscaling_resize <= LIMITS["upscale"][1]:
            raise ApiError(422, f"upscaling_resize: must be between 1 and {LIMITS['upscale'][1]} "
                                f"(got {body.upscaling_resize:g})", param="upscaling_resize")
        out = (round(size[0] * body.upscaling_resize), round(size[1] * body.upscaling_resize))
    elif body.resize_mode == 1:
        out = (body.upscaling_resize_w, body.upscaling_resize_h)
        if min(out) < 1:
            raise ApiError(422, "upscaling_resize_w, upscaling_resize_h: must be at least 1", param="upscaling_resize_w")
    else:
        raise ApiError(422, f"resize_mode: 0 (scale by upscaling_resize) or 1 (to upscaling_resize_w x "
                            f"upscaling_resize_h) (got {body.resize_mode})", param="resize_mode")
    if max(out) > MAX_SIDE:
        raise ApiError(422, f"upscaling_resize: {out[0]}x{out[1]} is more than {MAX_SIDE} pixels a side",
                       param="upscaling_resize")
    return out


def _extras_checks(body: ExtraSingleImageBody) -> UpscaleMethod | None:
    """The upscale method upscaler_1 names (None: "None"); 422 for what kaiga does not do."""
    for field, what in (("gfpgan_visibility", "face restoration (GFPGAN)"),
                        ("codeformer_visibility", "face restoration (CodeFormer)"),
                        ("extras_upscaler_2_visibility", "second upscaler to blend in")):
        if getattr(body, field) > 0:
            raise ApiError(422, f"{field}: kaiga has no {what}; leave it at 0", param=field)
    by_label = {m.label.lower(): m for m in UpscaleMethod} | {m.value: m for m in UpscaleMethod}
    name = body.upscaler_1.strip().lower()
    if name == "none":
        return None
    if name not in by_label:
        raise ApiError(422, f"upscaler_1: one of {', '.join(UPSCALERS)} (got {body.upscaler_1!r})", param="upscaler_1")
    return by_label[name]


@router.post("/extra-single-image")
async def extra_single_image(body: ExtraSingleImageBody, request: Request):
    """A1111's Extras for one image: enlarged by upscaler_1 (kaiga-4x, the learned upscaler, or Lanczos; "None"
    resizes with Lanczos as A1111 does). A kaiga image keeps its record, which then says the enlargement;
    the PNG is signed as the gallery signs what it stores. `html_info` says what was done."""
    from kaiga.store.uploads import MAX_UPLOAD_BYTES

    method = _extras_checks(body)
    data = decode_base64(body.image, "image", MAX_UPLOAD_BYTES)
    image = await read_image(data, "image")
    size = _extras_size(body, image.size)
    state: ServerState = request.app.state.kaiga
    png, note = await run_in_threadpool(_enlarged_png, data, image, size, method, state.gallery)
    return {"image": base64.b64encode(png).decode(), "html_info": f"<p>{note}</p>"}


def _enlarged_png(data: bytes, image: Image.Image, size: tuple[int, int], method: UpscaleMethod | None,
                  gallery: Gallery) -> tuple[bytes, str]:
    """The image at `size` (enlarged by `method`, then Lanczos to the exact size) as a PNG, and what was done.
    A kaiga record is kept where the result is an exact integer enlargement (its `upscale` says it)."""
    import math

    from kaiga.metadata import png_bytes
    from kaiga.upscaler import upscale, upscaled_record

    factor = max(1, math.ceil(max(size[0] / image.width, size[1] / image.height)))
    if method is None or factor == 1:
        out, how = image.convert("RGB").resize(size, Image.LANCZOS), f"Lanczos to {size[0]}x{size[1]}"
    else:
        [out] = upscale([image.convert("RGB")], factor, method.value)
        how = f"{method.label} x{factor}"
        if out.size != size:
            out, how = out.resize(size, Image.LANCZOS), f"{how}, then Lanczos to {size[0]}x{size[1]}"
    record = record_of(data)
    if record is None or method is None or out.size != (image.width * factor, image.height * factor):
        buf = io.BytesIO()
        out.save(buf, format="PNG")
        return buf.getvalue(), how if record is None else f"{how} (written without its record: not an exact enlargement)"
    record = upscaled_record(record, factor, method, image.size)
    png = png_bytes(out, record)
    return (gallery.finish(png, record) if gallery.finish is not None else png), how
