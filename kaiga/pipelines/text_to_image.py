"""Text → image for every family: the family's own `sample`, then an optional upscale for viewing
(`kaiga.upscaler`: the learned 4× network or Lanczos).

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
from kaiga.upscaler import upscale


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
    return upscale(images, request.upscale, request.upscale_method)
