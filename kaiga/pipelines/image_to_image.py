"""Image → image, inpainting and outpainting, for every family whose capabilities include edits.

The family's own `edit` does the work (for diffusion: SDEdit on the one denoising loop, see
`kaiga.families.diffusion.generate`); this pipeline enlarges the results for viewing, as
`text_to_image` does. Mask convention: white = repaint, black = keep.

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

from PIL import Image

from kaiga.capabilities import Capabilities, with_defaults
from kaiga.families.diffusion.generate import steps_run  # noqa: F401 (the steps an edit runs, for callers)
from kaiga.request import GenerationRequest
from kaiga.upscaler import upscale


def image_to_image(model, request: GenerationRequest, init: Image.Image, seeds: list[int],
                   mask: Image.Image | None = None, **batching) -> list[Image.Image]:
    """One edit of `init` per seed; with `mask` (white = repaint) only the masked area changes.

    `batching`: `batch_size` and `on_step(done, total)`, as the family's `edit` takes them.
    """
    request = with_defaults(Capabilities.from_info(model.info), request)
    return upscale(model.edit(request, init, seeds, mask, **batching), request.upscale, request.upscale_method)
