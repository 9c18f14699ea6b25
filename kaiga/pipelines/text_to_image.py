"""Text → image for every family: the family's own `sample`, then an optional upscale for viewing.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.request import GenerationRequest
    >>> m = LatentDiffusion.create(tiny_config())
    >>> out = text_to_image(m, GenerationRequest(prompt="a red car", steps=2, upscale=2), seeds=[1])
    >>> out[0].size
    (128, 128)
"""

from __future__ import annotations

from typing import Callable

from PIL import Image

from kaiga.capabilities import Capabilities, with_defaults
from kaiga.request import GenerationRequest


def enlarge(images: list[Image.Image], factor: int) -> list[Image.Image]:
    """Lanczos upscale for viewing (the record keeps the native size)."""
    if factor <= 1:
        return images
    return [im.resize((im.width * factor, im.height * factor), Image.LANCZOS) for im in images]


def text_to_image(
    model,
    request: GenerationRequest,
    seeds: list[int],
    batch_size: int = 16,
    on_step: Callable[[int, int], None] | None = None,
    prompts: list[str] | None = None,
) -> list[Image.Image]:
    """One image per seed from any family's model. `on_step(done, total)` reports progress.

    `prompts` (one per seed) replaces `request.prompt`, so an evaluation can batch many prompts.
    """
    request = with_defaults(Capabilities.from_info(model.info), request)
    images = model.sample(request, seeds, batch_size=batch_size, on_step=on_step, prompts=prompts)
    return enlarge(images, request.upscale)
