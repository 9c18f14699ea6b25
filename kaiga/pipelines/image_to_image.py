"""Image → image and inpainting for the latent diffusion family, on diffusers' Stable Diffusion pipelines.

`StableDiffusionImg2ImgPipeline` and `StableDiffusionInpaintPipeline` are assembled around the loaded
model's own modules (no weights copied) with a fresh scheduler from our sampler registry. The method
(SDEdit, Meng et al. 2022): noise the init image's latents to step `int(steps · strength)` from the
end and denoise from there; inpainting also re-imposes the noised init latents outside the mask
after every step. Where we call the pipelines differently from their defaults, and why:

- Text states come from `model.encode_text(model.tokenize(...))` and go in as `prompt_embeds`: the
  pipelines' own tokenizer call pads to `model_max_length`, which our word tokenizer and text
  encoder do not share.
- One CPU generator per image (so seed s gives the same image whatever the batch), and for
  inpainting one copy of the init image per generator: given a single image, diffusers VAE-encodes
  it with generator[0] alone, which would shift image 0's noise against the same seed elsewhere.
- Our UNet has 4 latent channels, not the 9 (latents + mask + masked image) of SD-inpainting
  checkpoints. For those, diffusers' inpaint pipeline blends `(1 - mask) · noised init latents +
  mask · latents` after each step (the branch `num_channels_unet == 4`). `masked_image_latents` feeds
  only 9-channel UNets, so we pass zeros instead of letting it VAE-encode the masked image (and draw
  from generator[0]) for nothing.
- After decoding, pixels outside the mask are the init image's own (as A1111's overlay): the
  autoencoder reproduces the kept area closely but never exactly. A soft mask blends.
- Classifier-free guidance: the pipelines apply it only when guidance > 1; `text_to_image` whenever
  guidance ≠ 1. Guidance below 1 therefore means "no guidance" here.

Mask convention: white (≥ 50 % grey in the latent mask) = repaint, black = keep.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.request import GenerationRequest
    >>> m = LatentDiffusion.create(tiny_config())
    >>> init = Image.new("RGB", (100, 80), "blue")
    >>> req = GenerationRequest(prompt="a red car", steps=2, strength=0.5, init_image="0" * 64)
    >>> [out] = image_to_image(m, req, init, seeds=[1])
    >>> out.size
    (64, 64)
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline
from PIL import Image

from kaiga.families.diffusion.model import LatentDiffusion
from kaiga.families.diffusion.sampling import make_scheduler
from kaiga.pipelines.text_to_image import enlarge, output_size
from kaiga.request import GenerationRequest


def _pipeline(model: LatentDiffusion, request: GenerationRequest, inpaint: bool):
    cls = StableDiffusionInpaintPipeline if inpaint else StableDiffusionImg2ImgPipeline
    # The scheduler is registered after construction: the constructor would "update" a config with
    # steps_offset 0 to 1, which with our trailing spacing starts the schedule at t = 1000 (out of range).
    pipe = cls(vae=model.vae, text_encoder=model.text_encoder, tokenizer=model.tokenizer, unet=model.unet,
               scheduler=None, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.register_modules(scheduler=make_scheduler(request.sampler, model.scheduler_config))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def steps_run(request: GenerationRequest) -> int:
    """Denoising steps an edit runs: the last int(steps · strength) of the schedule (as diffusers, A1111)."""
    return min(int(request.steps * request.denoise_strength), request.steps)


@torch.no_grad()
def image_to_image(
    model: LatentDiffusion,
    request: GenerationRequest,
    init: Image.Image,
    seeds: list[int],
    mask: Image.Image | None = None,
    batch_size: int = 16,
    on_step: Callable[[int, int], None] | None = None,
) -> list[Image.Image]:
    """One edit of `init` per seed; with `mask` (white = repaint) only the masked area changes.

    `init` and `mask` are resized (Lanczos) to the request's size, default the model's native size.
    `on_step(done, total)` reports progress over all batches.
    """
    # 1. Check the sampler and size; bring the inputs to the output size.
    width, height, (channels, h, w) = output_size(model, request)
    init = init.convert("RGB").resize((width, height), Image.LANCZOS)
    if mask is not None:
        mask = mask.convert("L").resize((width, height), Image.LANCZOS)

    # 2. Encode the prompt and the negative prompt once.
    cond = model.encode_text(model.tokenize([request.prompt]))  # [1, T, D]
    uncond = model.encode_text(model.tokenize([request.negative_prompt]))

    images: list[Image.Image] = []
    per_image = steps_run(request)
    total = len(seeds) * per_image
    for start in range(0, len(seeds), batch_size):
        chunk = seeds[start : start + batch_size]
        k = len(chunk)

        def report(_pipe, i, _t, _tensors, done_before=start * per_image, k=k):
            if on_step is not None:
                on_step(done_before + (i + 1) * k, total)
            return {}

        # 3. Noise the init latents to the strength's step and denoise (per-image generators).
        kwargs = dict(prompt_embeds=cond, negative_prompt_embeds=uncond, num_images_per_prompt=k,
                      strength=request.denoise_strength, num_inference_steps=request.steps,
                      guidance_scale=request.guidance, generator=[torch.Generator().manual_seed(s) for s in chunk],
                      output_type="pil", callback_on_step_end=report)
        if mask is None:
            out = _pipeline(model, request, inpaint=False)(image=init, **kwargs).images
        else:
            unused = torch.zeros(1, channels, h, w, device=model.device, dtype=model.dtype)
            out = _pipeline(model, request, inpaint=True)(
                image=[init] * k, mask_image=mask, masked_image_latents=unused, width=width, height=height,
                **kwargs).images
            # 4. Keep the init image's own pixels outside the mask.
            out = [Image.composite(im, init, mask) for im in out]
        images += out
    return enlarge(images, request.upscale)
