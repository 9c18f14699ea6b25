"""Text → image for the latent diffusion family, written as the numbered steps of the method.

Unlike diffusers' StableDiffusionPipeline, noise is drawn per image from that image's own seed, so
seed s gives the same picture whatever the batch size or `n`.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.request import GenerationRequest
    >>> m = LatentDiffusion.create(tiny_config())
    >>> out = text_to_image(m, GenerationRequest(prompt="a red car", steps=2), seeds=[1])
    >>> out[0].size
    (64, 64)
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from kaiga.families.diffusion.model import LatentDiffusion
from kaiga.families.diffusion.sampling import denoise, make_scheduler
from kaiga.images import to_pil
from kaiga.request import GenerationRequest, RequestError


def latent_shape(model: LatentDiffusion, width: int, height: int) -> tuple[int, int, int]:
    """[C, h, w] of the latent for an image of width × height, checking the model can make it."""
    vae_factor = 2 ** (len(model.vae.config.block_out_channels) - 1)
    unet_factor = 2 ** (len(model.unet.config.block_out_channels) - 1)
    step = vae_factor * unet_factor
    max_size = int(model.info.get("max_size", 2048))
    for name, v in (("width", width), ("height", height)):
        if v % step:
            raise RequestError(f"{name}: must be a multiple of {step} for this model (got {v})")
        if v > max_size:
            raise RequestError(f"{name}: at most {max_size} for this model (got {v})")
    return (model.unet.config.in_channels, height // vae_factor, width // vae_factor)


def output_size(model: LatentDiffusion, request: GenerationRequest) -> tuple[int, int, tuple[int, int, int]]:
    """Width, height and latent [C, h, w] of the request's images; RequestError if the model cannot."""
    supported = model.info.get("samplers", [])
    if request.sampler.value not in supported:
        raise RequestError(f"sampler: this model supports {', '.join(supported)} (got {request.sampler.value!r})")
    native = int(model.info.get("native_size", 64))
    width, height = request.width or native, request.height or native
    return width, height, latent_shape(model, width, height)


def enlarge(images: list[Image.Image], factor: int) -> list[Image.Image]:
    """Lanczos upscale for viewing (the record keeps the native size)."""
    if factor <= 1:
        return images
    return [im.resize((im.width * factor, im.height * factor), Image.LANCZOS) for im in images]


@torch.no_grad()
def text_to_image(
    model: LatentDiffusion,
    request: GenerationRequest,
    seeds: list[int],
    batch_size: int = 16,
    on_step: Callable[[int, int], None] | None = None,
    prompts: list[str] | None = None,
) -> list[Image.Image]:
    """One image per seed. `on_step(done, total)` reports progress over all batches.

    `prompts` (one per seed) replaces `request.prompt`, so an evaluation can batch many prompts.
    """
    if prompts is not None and len(prompts) != len(seeds):
        raise ValueError(f"one prompt per seed: got {len(prompts)} prompts for {len(seeds)} seeds")
    # 1. Check the sampler and size against what this model supports.
    _, _, shape = output_size(model, request)

    # 2. Encode the prompt and the negative prompt (the "unconditional" branch of guidance) once.
    cond_all = model.encode_text(model.tokenize(prompts or [request.prompt]))  # [1 or N, T, D]
    uncond_one = model.encode_text(model.tokenize([request.negative_prompt]))

    images: list[Image.Image] = []
    total = len(seeds) * request.steps
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        # 3. Initial noise from each image's own generator (on CPU, so it is the same on every device).
        gens = [torch.Generator().manual_seed(s) for s in chunk]
        noise = torch.stack([torch.randn(shape, generator=g) for g in gens]).to(model.device, model.dtype)
        cond = cond_all[start : start + len(chunk)] if prompts else cond_all.expand(len(chunk), -1, -1)
        uncond = uncond_one.expand(len(chunk), -1, -1)

        # 4. Reverse diffusion with the chosen sampler and classifier-free guidance.
        scheduler = make_scheduler(request.sampler, model.scheduler_config)
        done_before = start * request.steps

        def report(i, n, _x, done_before=done_before, k=len(chunk)):
            if on_step is not None:
                on_step(done_before + i * k, total)

        latents = denoise(model.unet, scheduler, noise, cond, uncond, request.steps, request.guidance, gens, report)

        # 5. Decode latents to pixels.
        images += to_pil(model.decode(latents))
    return enlarge(images, request.upscale)
