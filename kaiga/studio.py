"""The Studio: the one façade that makes images, for every interface (CLI, HTTP API, UI, Python).

It validates a request, checks it against the model's capabilities, loads and caches models, runs
the pipeline, and attaches to every image the `GenerationRecord` that makes it reproducible and
traceable. Variations (`vary`) and the frames of `kaiga explain` (`explain`) go through it too, so
every interface gets them the same way.

Example:
    >>> studio = Studio()
    >>> [img] = studio.generate("a red car on a snowy road at night", seed=7, steps=4)
    >>> img.record.seed, img.image.size
    (7, (64, 64))
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import torch
from PIL import Image

from kaiga.capabilities import Capabilities, check_request, ignored_fields, output_size, with_defaults
from kaiga.families.diffusion.traced import check_backend, compute_backend
from kaiga.finetune.embedding import apply_embeddings
from kaiga.metadata import GenerationRecord, png_bytes, write_atomic
from kaiga.model_files import ModelRef, load_model, model_hash, model_info, pick_device, resolve_model
from kaiga.paths import model_home
from kaiga.pipelines.precision import check_precision, compute_precision
from kaiga.pipelines.text_to_image import text_to_image
from kaiga.prompt_syntax import count_permutations, permutations
from kaiga.prompt_syntax import texts as prompt_texts
from kaiga.provenance.card import card_hash
from kaiga.provenance.credentials import sign_by_default
from kaiga.provenance.privacy import clean_upload
from kaiga.provenance.watermark import embed, payload_of
from kaiga.request import MAX_BLEND, MAX_SEED, GenerationRequest, RequestError
from kaiga.safety import SafetySettings, screen, screen_frames
from kaiga.store.uploads import UploadStore, check_image
from kaiga.text.tokenizer import unknown_words
from kaiga.upscaler import upscale
from kaiga.version import __version__

log = logging.getLogger("kaiga")


@dataclass
class GeneratedImage:
    """An image and the record of how it was made."""

    image: Image.Image
    record: GenerationRecord

    def save(self, path) -> Path:
        """Write a PNG carrying the record (kaiga JSON + A1111 `parameters`), signed (C2PA) when
        $KAIGA_HOME/signing holds a key (`kaiga keys init-signing`)."""
        return write_atomic(Path(path), sign_by_default(png_bytes(self.image, self.record), self.record))


def style_record(request: GenerationRequest) -> dict:
    """The record's `style` (the mix, with each style's templates as applied, so the image can be remade where the
    user's styles differ), `stylize` and `chaos`; {} for an unstyled request. RequestError for a style that does
    not exist."""
    from kaiga.styles.mix import check_style

    mix = check_style(request)
    out: dict = {}
    if mix is not None:
        out["style"] = {"mix": mix.describe(),
                        "templates": {s.name: {"prompt": s.prompt, "negative": s.negative} for s, _ in mix.parts}}
    if request.stylize is not None:
        out["stylize"] = request.stylize
    if request.chaos is not None:
        out["chaos"] = request.chaos
    return out


MAX_IMAGES = 64  # a request's images, every {a|b} combination counted: n × combinations


def check_prompt_expansion(request: GenerationRequest) -> None:
    """RequestError when the prompt's `{a|b}` groups make more than MAX_IMAGES images, or a wildcard it names
    has no list: said before any work."""
    from kaiga.styles.wildcards import check_wildcards, load_wildcards

    combos = count_permutations(request.prompt)
    if combos * request.n > MAX_IMAGES:
        raise RequestError(f"prompt: its {{a|b}} groups make {combos} prompts × n {request.n} = {combos * request.n} "
                           f"images; at most {MAX_IMAGES} a request")
    if "__" in request.prompt or "__" in request.negative_prompt:
        lists = load_wildcards()
        check_wildcards(request.prompt, lists)
        check_wildcards(request.negative_prompt, lists, "negative_prompt")


def prompt_runs(request: GenerationRequest, seeds: list[int]) -> list[tuple[str, str, list[int]]]:
    """(prompt, negative prompt, seeds) of each run the request makes: every `{a|b}` combination with all the
    seeds, and its `__wildcards__` drawn per seed (consecutive seeds that draw the same lines run together)."""
    from kaiga.styles.wildcards import expand, load_wildcards

    lists = load_wildcards() if "__" in request.prompt or "__" in request.negative_prompt else {}
    runs: list[tuple[str, str, list[int]]] = []
    for combo in permutations(request.prompt):
        for seed in seeds:
            prompt, negative = expand(combo, seed, lists), expand(request.negative_prompt, seed, lists)
            if runs and runs[-1][:2] == (prompt, negative) and runs[-1][2][-1] + 1 == seed:
                runs[-1][2].append(seed)
            else:
                runs.append((prompt, negative, [seed]))
    return runs


VARIATION_STRENGTH = 0.6  # a variation keeps the composition and colours and redraws the detail


def variation_fields(image: bytes | Image.Image) -> dict:
    """Request fields of a variation of `image`: the prompt and negative prompt that made it (from its
    kaiga record or A1111 parameters, `kaiga.variations.image_record`; empty when it has none) at a moderate
    strength."""
    from kaiga.variations import image_record

    record = image_record(image)
    return {"prompt": record.get("prompt", ""), "negative_prompt": record.get("negative_prompt", ""),
            "strength": VARIATION_STRENGTH}


@dataclass
class Explanation:
    """The frames of how a model builds one image, each with a caption, and the model that made them."""

    frames: list[Image.Image]
    captions: list[str]
    model: str
    family: str


@dataclass
class LoadedModel:
    ref: ModelRef
    model: torch.nn.Module
    hash: str
    load_seconds: float


class Studio:
    """Makes images from requests. Models load on first use and stay cached.

    `uploads`: where the init images and masks that requests name by hash are stored
    (default: `$KAIGA_HOME/uploads`, the CLI's; the server passes its own data dir's).
    `safety`: the safety filter's settings (default: from the environment, `kaiga.safety.settings`).
    """

    def __init__(self, device: str | None = None, batch_size: int = 16, config_dir: Path | None = None,
                 uploads: UploadStore | None = None, safety: SafetySettings | None = None, watermark: bool = True,
                 precision: str = "fp32", backend: str = "eager"):
        self.device = pick_device(device)
        self.precision = check_precision(precision)  # bf16: autocast (kaiga/pipelines/precision.py), said in records
        self.backend = check_backend(backend)  # jit: the UNet traced (kaiga/families/diffusion/traced.py), said too
        self.batch_size = batch_size
        self.config_dir = config_dir
        self.uploads = uploads or UploadStore(model_home() / "uploads")
        self._loaded: dict[Path, LoadedModel] = {}
        self.safety = safety or SafetySettings.from_env()  # a bad KAIGA_SAFETY* is an error here, before work
        self.watermark = watermark  # off only for measuring the models themselves (kaiga eval, bench/)

    def load(self, name: str | None = None) -> LoadedModel:
        ref = resolve_model(name)
        key = ref.path.resolve()
        if key not in self._loaded:
            t0 = time.perf_counter()
            model = load_model(ref, self.device, self.config_dir)
            self._loaded[key] = LoadedModel(ref, model, model_hash(ref), time.perf_counter() - t0)
        return self._loaded[key]

    def capabilities(self, name: str | None = None) -> Capabilities:
        """What the model can make and its defaults, read from its files without loading a weight (or from
        the loaded model)."""
        ref = resolve_model(name)
        loaded = self._loaded.get(ref.path.resolve())
        return Capabilities.from_info(loaded.model.info if loaded else model_info(ref, self.config_dir))

    def check(self, request: GenerationRequest) -> None:
        """RequestError naming what the request's model cannot make, before any work, even loading it (a size
        a Stable Diffusion checkpoint refuses is said at once, not after its load and hash)."""
        check_prompt_expansion(request)  # the request alone: its combinations and wildcard lists
        caps = self.capabilities(request.model)
        check_request(caps, request)
        style_record(request)  # every style it names exists (a StyleError is a RequestError)
        if request.lora.strip():
            from kaiga.finetune.lora import check_loras

            check_loras(caps.family, request.lora)  # each one found, not a pickle, a model with a UNet

    def generate(
        self,
        request: GenerationRequest | str,
        *,
        on_step: Callable[[int, int], None] | None = None,
        record_extra: dict | None = None,
        **fields,
    ) -> list[GeneratedImage]:
        """Generate `request.n` images per prompt (a `{red|blue}` prompt is one per combination, each with the
        same seeds); a string is a prompt, keyword arguments fill the request; `record_extra` joins every
        record's `extra` (what made the request: a remix, a grid)."""
        if isinstance(request, str):
            request = GenerationRequest(prompt=request, **fields)
        elif fields:
            request = request.model_copy(update=fields)
            request = GenerationRequest.model_validate(request.model_dump())
        self.check(request)  # before any work, even loading: sizes, sampler, edits, styles, wildcards
        first = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
        runs = prompt_runs(request, request.seeds(first))
        if len(runs) == 1 and runs[0][0] == request.prompt and runs[0][1] == request.negative_prompt:
            return self._generate(request, runs[0][2], on_step, record_extra=record_extra)  # no {a|b}, no __x__
        made, done_images, total_images = [], 0, sum(len(seeds) for *_, seeds in runs)
        for prompt, negative, seeds in runs:
            report = None
            if on_step is not None:  # one bar over every run: this run's steps after those of the runs before
                def report(done, total, before=done_images, k=len(seeds)):
                    per_image = total / k
                    on_step(round(before * per_image + done), round(total_images * per_image))
            run = request.model_copy(update={"prompt": prompt, "negative_prompt": negative})
            made += self._generate(run, seeds, report, template=request, record_extra=record_extra)
            done_images += len(seeds)
        return made

    def generate_seeds(self, request: GenerationRequest, seeds: list[int], *,
                       on_step: Callable[[int, int], None] | None = None,
                       record_extra: dict | None = None) -> list[GeneratedImage]:
        """One image per seed of `seeds`, in one batched run: the images of several requests that differ only in
        their seeds (the server's batched jobs); each is the image its seed makes alone. The prompt must be
        plain (no {a|b} combinations, no __wildcards__: those draw per request)."""
        self.check(request)
        if any(run[:2] != (request.prompt, request.negative_prompt) for run in prompt_runs(request, seeds)):
            raise RequestError("prompt: a batch of seeds takes a plain prompt, without {a|b} or __wildcards__")
        return self._generate(request, list(seeds), on_step, record_extra=record_extra)

    def _generate(self, request: GenerationRequest, seeds: list[int], on_step: Callable[[int, int], None] | None,
                  template: GenerationRequest | None = None, record_extra: dict | None = None) -> list[GeneratedImage]:
        """One image per seed of a request whose prompt has no permutation or wildcard left; `template`: the
        request as written, whose prompts the record keeps beside those drawn."""
        loaded = self.load(request.model)
        model = loaded.model
        caps = Capabilities.from_info(model.info)  # what `check` read from its files
        ignored = ignored_fields(caps, request)
        if ignored:
            log.warning("a %s model does not use %s; ignored", caps.family, ", ".join(ignored))
        request = with_defaults(caps, request)  # the model's steps, guidance, upscale where left out
        read = " ".join(prompt_texts(request.prompt, request.steps or 1)) + " " + request.negative_prompt
        unknown = unknown_words(model.tokenizer, read)
        if unknown:
            log.warning("the model does not know these words and ignores them: %s", ", ".join(dict.fromkeys(unknown)))
        loras = self._apply_loras(model, request)
        embeddings = apply_embeddings(model, [request.prompt, request.negative_prompt])  # by their words, as A1111
        t0 = time.perf_counter()
        native = request.model_copy(update={"upscale": 1})  # screened and marked at native size, then enlarged
        if request.is_edit:
            from kaiga.pipelines.image_to_image import image_to_image  # imports diffusers' SD pipelines

            if request.blend:
                init, mask = self._blended(model, request, output_size(caps, native)), None
            else:
                init, mask = self._upload("init_image", request.init_image), self._upload("mask", request.mask)
            with compute_precision(self.device, self.precision), compute_backend(self.backend):
                images = image_to_image(model, native, init, seeds, mask, batch_size=self.batch_size, on_step=on_step)
        else:
            with compute_precision(self.device, self.precision), compute_backend(self.backend):
                images = text_to_image(model, native, seeds, self.batch_size, on_step)
        per_image_ms = (time.perf_counter() - t0) * 1000 / len(images)
        width, height = output_size(caps, request)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        card = card_hash(loaded.ref.path)  # one read of the card for the whole request
        styled = style_record(request)  # and of the style library
        made = [
            GeneratedImage(
                image,
                GenerationRecord(
                    prompt=request.prompt,
                    negative_prompt=request.negative_prompt,
                    seed=seed,
                    # the other families read no sampler, steps or guidance
                    sampler=request.sampler.value if caps.denoises else "",
                    steps=request.steps if caps.denoises else 0,
                    guidance=request.guidance if caps.denoises else None,
                    width=width,
                    height=height,
                    model=loaded.ref.name,
                    model_hash=loaded.hash,
                    model_card=card,
                    family=loaded.ref.family,
                    upscale=request.upscale,
                    init_image=request.init_image,
                    mask=request.mask,
                    strength=request.denoise_strength if request.is_edit else None,
                    timings={"ms_per_image": round(per_image_ms, 1), "load_s": round(loaded.load_seconds, 3)},
                    kaiga_version=__version__,
                    created=created,
                    mask_blur=request.mask_blur if request.mask is not None else None,
                    extra={**request.family_options(), **styled,
                           **({"unknown_words": unknown} if unknown else {}),
                           **({"ignored_fields": ignored} if ignored else {}),
                           **({"precision": self.precision} if self.precision != "fp32" else {}),
                           **({"backend": self.backend} if self.backend != "eager" else {}),
                           **({"loras": [lora.record() for lora in loras]} if loras else {}),
                           **({"embeddings": [e.record() for e in embeddings]} if embeddings else {}),
                           **({"prompt_template": {"prompt": template.prompt,
                                                   "negative_prompt": template.negative_prompt}}
                              if template is not None else {}),
                           **({"upscaler": request.upscale_method.label}
                              if request.upscale > 1 else {}),
                           **self._init_privacy(request), **self._blend_note(request), **(record_extra or {})},
                ),
            )
            for image, seed in zip(images, seeds)
        ]
        # the safety filter: a flagged image leaves blurred and noted, its original dropped here
        screened = screen([g.image for g in made], [g.record for g in made], request.prompt, self.safety)
        finished = [self._watermarked(image, record) for image, record, _ in screened]
        enlarged = upscale([g.image for g in finished], request.upscale, request.upscale_method)
        return [GeneratedImage(image, g.record) for image, g in zip(enlarged, finished)]

    @staticmethod
    def _apply_loras(model, request: GenerationRequest) -> list:
        """The request's LoRAs active on the model's UNet at their weights (none: every adapter off, so the base
        model's pixels are its own); what the record lists."""
        unet = getattr(model, "unet", None)
        if unet is None or (not request.lora.strip() and not getattr(unet, "peft_config", None)):
            return []
        from kaiga.finetune.lora import apply_loras, requested_loras

        loras = requested_loras(request.lora)
        apply_loras(unet, loras)
        return loras

    def _watermarked(self, image: Image.Image, record: GenerationRecord) -> GeneratedImage:
        """The image with its record's payload hidden in it (last of all, so the record it names is final),
        and the record saying so."""
        if not self.watermark:
            return GeneratedImage(image, record)
        payload = payload_of(record)
        return GeneratedImage(embed(image, payload),
                              record.model_copy(update={"extra": {**record.extra, "watermark": f"{payload:08x}"}}))

    def vary(self, image: bytes | Image.Image, *, faces_consent: bool = False,
             on_step: Callable[[int, int], None] | None = None, **fields) -> list[GeneratedImage]:
        """Variations of `image` (image → image at `VARIATION_STRENGTH`, prompted by its own record);
        keyword arguments are request fields and win over what the image says. The image is stored cleaned, as
        every upload is (metadata stripped, faces blurred unless `faces_consent`)."""
        if isinstance(image, Image.Image):  # no file: only its pixels to clean (faces)
            sha = self._store_init(image, faces_consent=faces_consent)
        else:
            sha = self._store_init(check_image(image, "image"), image, faces_consent)  # limits before decoding
        request = GenerationRequest(**{**variation_fields(image), "init_image": sha, **fields})
        return self.generate(request, on_step=on_step)

    def _store_init(self, image: Image.Image, data: bytes | None = None, faces_consent: bool = False) -> str:
        """The SHA-256 of `image` stored as an init image, cleaned as every upload is (metadata stripped from its
        file's bytes `data`, or from its pixels as an RGB PNG; faces blurred unless `faces_consent`)."""
        if data is None:
            buf = io.BytesIO()
            image.convert("RGB").save(buf, format="PNG")
            data = buf.getvalue()
        init, report = clean_upload(data, image, faces_consent=faces_consent)
        return self.uploads.add(init, report.to_dict())

    def remix(self, plan, *, faces_consent: bool = False, **fields) -> list[GeneratedImage]:
        """Run an EditPlan (kaiga/variations.py: vary, zoom out, pan): its canvas and mask stored as uploads (the
        canvas cleaned as every upload is), its fields under the caller's; each record says which remix made it
        (`extra.remix`). A model that cannot edit (the image was a GAN's) gives way to the default model."""
        from kaiga.variations import MODEL_FIELDS

        uploads = {"init_image": self._store_init(plan.init, faces_consent=faces_consent)}
        if plan.mask is not None:
            uploads["mask"] = self.uploads.add(plan.mask)
        merged = {**plan.fields, **uploads, **fields}
        if "model" not in fields and merged.get("model") and not self._edits(merged["model"]):
            log.warning("%s cannot edit images; the default model makes the %s", merged["model"], plan.kind)
            merged = {k: v for k, v in merged.items() if k not in MODEL_FIELDS}
        return self.generate(GenerationRequest(**merged), record_extra={"remix": plan.kind, **(plan.note or {})})

    def blend(self, images: list[Image.Image], records: list[dict] | None = None, weights: list[float] | None = None,
              *, faces_consent: bool = False, **fields) -> list[GeneratedImage]:
        """Blend 2-4 images (the request's `blend`: their latents mixed by the model's autoencoder, redrawn)
        with their prompts composed; `records` (one per image: what made it, {} for none), `weights` (equal).
        Each image is stored at the size it was made at, cleaned as every upload is."""
        from kaiga.request import blend_spec, parse_blend_spec
        from kaiga.variations import blend_prompt, native

        records = records or [{} for _ in images]
        if not 2 <= len(images) <= MAX_BLEND:
            raise RequestError(f"blend: 2 to {MAX_BLEND} images (got {len(images)})")
        spec = blend_spec([self._store_init(native(im, r), faces_consent=faces_consent)
                           for im, r in zip(images, records)], weights)
        shares = [w for _, w in parse_blend_spec(spec)]
        name = fields.get("model") or next((r["model"] for r in records if r.get("model") and self._edits(r["model"])),
                                           None)
        request = GenerationRequest(**{"prompt": blend_prompt(records, shares), "model": name, **fields}, blend=spec)
        return self.generate(request, record_extra={"remix": "blend",
                                                    "blend_prompts": [r.get("prompt", "") for r in records]})

    def _edits(self, model: str) -> bool:
        try:
            return self.capabilities(model).edits
        except Exception:  # a recorded model that is not here: the default model
            return False

    def explain(self, prompt: str, *, model: str | None = None, seed: int = 0) -> Explanation:
        """How the model's family builds an image: a diffusion model's denoising trajectory, a transformer's
        token-by-token decoding, a latent walk for gan and vae. The prompt and seed are checked as a request's."""
        request = GenerationRequest(prompt=prompt, seed=seed, model=model).require_prompt()
        loaded = self.load(request.model)
        frames, captions = loaded.model.explain(request.prompt, seed)
        frames, flagged = screen_frames(frames, request.prompt, self.safety)  # screened as every image is
        captions = [f"{c} (blurred: safety filter)" if bad else c for c, bad in zip(captions, flagged)]
        return Explanation(frames, captions, loaded.ref.name, loaded.ref.family)

    def _init_privacy(self, request: GenerationRequest) -> dict:
        """What was removed from the init image before it was stored (faces, metadata), for the record's extra."""
        note = self.uploads.note(request.init_image) if request.init_image else None
        if not note:
            return {}
        keep = ("removed", "faces_blurred", "faces_consent", "orientation_applied")
        return {"init_image_privacy": {**{k: note[k] for k in keep if k in note}, "faces": len(note.get("faces", []))}}

    def _blended(self, model, request: GenerationRequest, size: tuple[int, int]) -> Image.Image:
        """The init image of a blend: its uploads' latents mixed by their shares (kaiga.variations.mix_latents)."""
        from kaiga.variations import mix_latents

        parts = request.blend_parts()
        return mix_latents(model, [self._upload("blend", sha) for sha, _ in parts], [w for _, w in parts], size)

    @staticmethod
    def _blend_note(request: GenerationRequest) -> dict:
        """What a blend's records say of it: the uploads mixed and their shares."""
        if not request.blend:
            return {}
        parts = request.blend_parts()
        return {"blend": {"images": [sha for sha, _ in parts], "weights": [round(w, 3) for _, w in parts]}}

    def _upload(self, field: str, sha256: str | None) -> Image.Image | None:
        if sha256 is None:
            return None
        try:
            return self.uploads.open(sha256)
        except FileNotFoundError:
            raise RequestError(f"{field}: no upload {sha256} in {self.uploads.folder}") from None
