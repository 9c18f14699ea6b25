"""Text → image sampling of the latent diffusion family, written as the numbered steps of the method.

Unlike diffusers' StableDiffusionPipeline, noise is drawn per image from that image's own seed, so
seed s gives the same picture whatever the batch size or `n`. `LatentDiffusion.sample` (the family
contract's verb) runs `sample` here.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.request import GenerationRequest
    >>> m = LatentDiffusion.create(tiny_config())
    >>> sample(m, GenerationRequest(prompt="a red car", steps=2), seeds=[1])[0].size
    (64, 64)
"""

from __future__ import annotations

from typing import Callable

import torch
from PIL import Image

from kaiga.families.diffusion.sampling import denoise, make_scheduler
from kaiga.images import to_pil
from kaiga.request import GenerationRequest, RequestError


def latent_shape(model, width: int, height: int) -> tuple[int, int, int]:
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


def output_size(model, request: GenerationRequest) -> tuple[int, int, tuple[int, int, int]]:
    """Width, height and latent [C, h, w] of the request's images; RequestError if the model cannot."""
    supported = model.info.get("samplers", [])
    if request.sampler.value not in supported:
        raise RequestError(f"sampler: this model supports {', '.join(supported)} (got {request.sampler.value!r})")
    native = int(model.info.get("native_size", 64))
    width, height = request.width or native, request.height or native
    return width, height, latent_shape(model, width, height)


@torch.no_grad()
def sample(
    model,
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
    context = torch.cat([model.encode_text(model.tokenize([""])), model.encode_text(model.tokenize([prompt]))])
    scheduler = make_scheduler("ddim", model.scheduler_config)
    scheduler.set_timesteps(steps, device=x.device)
    keep = {round(i * (steps - 1) / (frames - 1)) for i in range(frames)}
    images, captions = [], []
    for i, t in enumerate(scheduler.timesteps):
        pred_uncond, pred_cond = model.unet(torch.cat([x, x]), t, encoder_hidden_states=context).sample.chunk(2)
        out = scheduler.step(pred_uncond + guidance * (pred_cond - pred_uncond), t, x)
        x = out.prev_sample
        if i in keep:
            images += to_pil(model.decode(out.pred_original_sample))
            captions.append(f"step {i + 1}/{steps} (t={int(t)}): predicted clean image")
    return images, captions
