"""How the latent diffusion family makes images, written as the numbered steps of each method.

`sample` (text → image), `edit` (image → image, inpainting, outpainting) and `trajectory` (the
frames of `kaiga explain`) differ only in their start latents, the timesteps they run and the hooks
they give the one denoising loop (`kaiga.families.diffusion.denoise`).

Unlike diffusers' StableDiffusionPipeline, noise is drawn per image from that image's own seed, so
seed s gives the same picture whatever the batch size or `n`. Edits follow diffusers' img2img and
inpainting pipelines step for step (SDEdit, Meng et al. 2022): the init image's latents are drawn
from the autoencoder's posterior with the image's own generator, noised to the first step run, and
denoised from there; inpainting puts the init latents, noised to the next step's level, back
outside the mask after every step, and after decoding keeps the init image's own pixels there (as
A1111's overlay: the autoencoder reproduces the kept area closely but never exactly).
Mask convention: white (≥ 50 % grey in the latent mask) = repaint, black = keep.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.request import GenerationRequest
    >>> m = LatentDiffusion.create(tiny_config())
    >>> sample(m, GenerationRequest(prompt="a red car", steps=2), seeds=[1])[0].size
    (64, 64)
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from kaiga.capabilities import Capabilities, check_request, with_defaults
from kaiga.families.chaos import chaos_noise, shake, strength
from kaiga.families.diffusion.denoise import ComposedCond, denoise
from kaiga.families.diffusion.schedulers import make_scheduler, timesteps_to_run
from kaiga.families.diffusion.traced import unet_for
from kaiga.images import to_pil, to_tensor
from kaiga.prompt_syntax import is_composed, parts, schedule
from kaiga.request import GenerationRequest

Progress = Callable[[int, int], None]  # (steps done over all images, steps in all)


def latent_shape(model, width: int, height: int) -> tuple[int, int, int]:
    """[C, h, w] of the latent for an image of width × height."""
    f = model.vae_scale_factor
    return (model.unet.config.in_channels, height // f, width // f)


def as_run(model, request: GenerationRequest) -> GenerationRequest:
    """`request` checked against the model, with the model's defaults for what it leaves out (steps, guidance)."""
    caps = Capabilities.from_info(model.info)
    check_request(caps, request)
    return with_defaults(caps, request)


def run_guidance(request: GenerationRequest) -> float:
    """The guidance scale a request (as run) denoises with: its own, times `--stylize`'s factor
    (kaiga/styles/mix.py; exactly its own at the default stylize)."""
    if request.stylize is None:
        return request.guidance
    from kaiga.styles.mix import guidance_factor

    return request.guidance * guidance_factor(request.stylize)


def output_size(model, request: GenerationRequest) -> tuple[int, int, tuple[int, int, int]]:
    """Width, height and latent [C, h, w] of the request's images."""
    native = Capabilities.from_info(model.info).native_size
    width, height = request.width or native, request.height or native
    return width, height, latent_shape(model, width, height)


def steps_run(request: GenerationRequest) -> int:
    """Denoising steps an edit runs: the last int(steps · strength) of the schedule (as diffusers, A1111);
    `request` as run (`as_run`: its steps filled in)."""
    return min(int(request.steps * request.denoise_strength), request.steps)


def _text_states(model, prompts: list[str], negative: str,
                 request: GenerationRequest | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Text states of the prompts [1 or N, T, D] and of the negative prompt [1, T, D] (guidance's "uncond"):
    weighted (`(red:1.3)`) and, past the encoder's length, in chunks (`prompt_encoding`), as A1111; the
    request's styles mixed in (`kaiga.styles.mix.mixed`: each styled prompt encoded, then averaged)."""
    from kaiga.families.diffusion.prompt_encoding import text_states
    from kaiga.styles.mix import is_plain, mixed, resolve

    if request is None or is_plain(request.style, request.stylize):
        return text_states(model, prompts, negative)

    def encode(texts: list[str]) -> torch.Tensor:  # one call, so every text has the same number of chunks
        cond, uncond = text_states(model, texts[:-1], texts[-1])
        return torch.cat([cond, uncond])

    return mixed(encode, prompts, negative, resolve(request.style), request.stylize)


def _conditioning(model, request: GenerationRequest, prompts: list[str] | None, first_step: int = 0):
    """(cond, uncond) for the denoising loop: text states [1 or N, T, D], or a ComposedCond for a prompt with
    sub-prompts or prompt editing (kaiga/prompt_syntax.py), every text it reads encoded in one call (so all
    have the same length) with the request's styles; `first_step`: schedule steps an edit skips."""
    if prompts is not None and any(is_composed(p) for p in prompts):
        raise ValueError("prompts: one prompt per seed must be plain; a composed one (AND, ::, [from:to:when]) "
                         "goes in request.prompt")
    if prompts is not None or not is_composed(request.prompt):
        return _text_states(model, prompts or [request.prompt], request.negative_prompt, request)
    pieces = parts(request.prompt)
    schedules = [schedule(p.text, request.steps) for p in pieces]
    texts = list(dict.fromkeys(text for runs in schedules for _, text in runs))
    states, uncond = _text_states(model, texts, request.negative_prompt, request)
    runs = tuple(tuple((last, texts.index(text)) for last, text in runs) for runs in schedules)
    return ComposedCond(states, runs, tuple(p.weight for p in pieces), first_step), uncond


def _batch(cond, start: int, k: int):
    """The conditioning of images start .. start + k: a ComposedCond is the same for every image."""
    if isinstance(cond, ComposedCond):
        return cond
    return cond[start : start + k] if cond.shape[0] > 1 else cond.expand(k, -1, -1)


def _shaker(request: GenerationRequest, seeds: list[int], cond, first_step: int = 0):
    """The denoising loop's `shaken` for `--chaos` (kaiga/families/chaos.py): each image's text states plus its
    own noise, annealed over the request's steps; None without chaos."""
    if not request.chaos:
        return None
    shape = (cond.states if isinstance(cond, ComposedCond) else cond).shape[1:]
    noise = chaos_noise(seeds, shape)
    return lambda states, i: shake(states, noise, strength(request.chaos, first_step + i, request.steps))


def _chunks(seeds: list[int], batch_size: int):
    for start in range(0, len(seeds), batch_size):
        yield start, seeds[start : start + batch_size]


def _reporter(on_step: Progress | None, done_before: int, k: int, total: int):
    """The loop's on_step as overall progress: each of its steps advances k images by one."""
    if on_step is None:
        return None
    return lambda i, _n, _x, _x0: on_step(done_before + i * k, total)


@torch.no_grad()
def sample(
    model,
    request: GenerationRequest,
    seeds: list[int],
    batch_size: int = 16,
    on_step: Progress | None = None,
    prompts: list[str] | None = None,
) -> list[Image.Image]:
    """Text → image: one image per seed. `on_step(done, total)` reports progress over all batches.

    `prompts` (one per seed) replaces `request.prompt`, so an evaluation can batch many prompts.
    """
    if prompts is not None and len(prompts) != len(seeds):
        raise ValueError(f"one prompt per seed: got {len(prompts)} prompts for {len(seeds)} seeds")
    # 1. Check the request against what this model supports; its defaults for what the request leaves out.
    request = as_run(model, request)
    _, _, shape = output_size(model, request)

    # 2. Encode the prompt (each of its sub-prompts and edits) and the negative prompt once.
    cond_all, uncond_one = _conditioning(model, request, prompts)

    images: list[Image.Image] = []
    total = len(seeds) * request.steps
    for start, chunk in _chunks(seeds, batch_size):
        # 3. Initial noise from each image's own generator (on CPU, so it is the same on every device).
        gens = [torch.Generator().manual_seed(s) for s in chunk]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(model.device, model.dtype)
        cond = _batch(cond_all, start, len(chunk))
        uncond = uncond_one.expand(len(chunk), -1, -1)

        # 4. Reverse diffusion over the whole schedule with the chosen sampler.
        scheduler = make_scheduler(request.sampler, model.scheduler_config)
        timesteps = timesteps_to_run(scheduler, request.steps, device=model.device)
        x = noise * scheduler.init_noise_sigma
        report = _reporter(on_step, start * request.steps, len(chunk), total)
        latents = denoise(unet_for(model), scheduler, x, timesteps, cond, uncond, run_guidance(request), gens, report,
                          shaken=_shaker(request, chunk, cond_all))

        # 5. Decode latents to pixels.
        images += to_pil(model.decode(latents))
    return images


def _latent_mask(mask: Image.Image, h: int, w: int) -> torch.Tensor:
    """PIL L -> [1, 1, h, w] of 0 (keep) / 1 (repaint): binarised at half grey, then nearest to latent size."""
    m = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)[None, None]
    return F.interpolate((m >= 0.5).float(), size=(h, w))


@torch.no_grad()
def edit(
    model,
    request: GenerationRequest,
    init: Image.Image,
    seeds: list[int],
    mask: Image.Image | None = None,
    batch_size: int = 16,
    on_step: Progress | None = None,
) -> list[Image.Image]:
    """Image → image: one edit of `init` per seed; with `mask` (white = repaint) only the masked area changes.

    `init` and `mask` are resized (Lanczos) to the request's size, default the model's native size.
    `on_step(done, total)` reports progress over all batches.
    """
    # 1. Check the request; bring the inputs to the output size; soften the mask's edge (mask_blur, as A1111).
    request = as_run(model, request)
    width, height, (_, h, w) = output_size(model, request)
    init = init.convert("RGB").resize((width, height), Image.LANCZOS)
    init_pixels = to_tensor(init)
    if mask is not None:
        mask = mask.convert("L").resize((width, height), Image.LANCZOS)
        if request.mask_blur:
            mask = mask.filter(ImageFilter.GaussianBlur(request.mask_blur))
        mask_latent = _latent_mask(mask, h, w).to(model.device, model.dtype)

    # 2. Encode the prompt (each of its sub-prompts and edits) and the negative prompt once.
    cond_one, uncond_one = _conditioning(model, request, None, first_step=request.steps - steps_run(request))

    images: list[Image.Image] = []
    per_image = steps_run(request)
    total = len(seeds) * per_image
    for start, chunk in _chunks(seeds, batch_size):
        k = len(chunk)
        gens = [torch.Generator().manual_seed(s) for s in chunk]
        scheduler = make_scheduler(request.sampler, model.scheduler_config)
        timesteps = timesteps_to_run(scheduler, request.steps, request.denoise_strength, device=model.device)

        # 3. The init image's latents, a posterior draw per image, then each image's noise (in this
        #    order from the same generator, as diffusers' pipelines).
        z0 = torch.cat([model.encode_images(init_pixels, sample=True, generator=g) for g in gens])
        noise = torch.cat([torch.randn((1, *z0.shape[1:]), generator=g, dtype=model.dtype) for g in gens]).to(model.device)

        # 4. Start latents: the init latents noised to the first step run (pure noise when inpainting at strength 1).
        if mask is not None and request.denoise_strength == 1.0:
            x = noise * scheduler.init_noise_sigma
        else:
            x = scheduler.add_noise(z0, noise, timesteps[:1].repeat(k))

        # 5. Inpainting: after each step, the init latents at the next step's noise level outside the mask.
        blend = None
        if mask is not None:
            def blend(x, i, z0=z0, noise=noise, scheduler=scheduler, timesteps=timesteps):
                known = z0 if i == len(timesteps) - 1 else scheduler.add_noise(z0, noise, timesteps[i + 1 : i + 2])
                return (1 - mask_latent) * known + mask_latent * x

        # 6. Reverse diffusion over the last steps.
        report = _reporter(on_step, start * per_image, k, total)
        latents = denoise(unet_for(model), scheduler, x, timesteps, _batch(cond_one, 0, k),
                          uncond_one.expand(k, -1, -1), run_guidance(request), gens, report, blend,
                          _shaker(request, chunk, cond_one, request.steps - steps_run(request)))

        # 7. Decode; outside the mask, the init image's own pixels.
        out = to_pil(model.decode(latents))
        if mask is not None:
            out = [Image.composite(im, init, mask) for im in out]
        images += out
    return images


@torch.no_grad()
def trajectory(model, prompt: str, seed: int, steps: int = 20, guidance: float = 3.0, frames: int = 8):
    """`frames` snapshots of DDIM sampling: what the model believes the clean image is (x̂₀) so far.

    Returns (images, captions). Early frames show the layout and colours decided first; later ones
    the detail (the coarse-to-fine order that makes diffusion steerable).
    """
    request = GenerationRequest(prompt=prompt, steps=steps, guidance=guidance, seed=seed)
    _, _, shape = output_size(model, request)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)[None].to(model.device, model.dtype)
    cond, uncond = _text_states(model, [prompt], "")
    scheduler = make_scheduler("ddim", model.scheduler_config)
    timesteps = timesteps_to_run(scheduler, steps, device=x.device)
    keep = {round(i * (steps - 1) / (frames - 1)) for i in range(frames)}
    images, captions = [], []

    def snapshot(i, _n, _x, x0):
        if i - 1 in keep:
            images.extend(to_pil(model.decode(x0)))
            captions.append(f"step {i}/{steps} (t={int(timesteps[i - 1])}): predicted clean image")

    denoise(unet_for(model), scheduler, x * scheduler.init_noise_sigma, timesteps, cond, uncond, guidance, [gen],
            snapshot)
    return images, captions
