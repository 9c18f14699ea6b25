"""Image helpers shared by training, pipelines and interfaces: tensors to PIL, contact sheets.

Example:
    >>> import torch
    >>> [im] = to_pil(torch.zeros(1, 3, 8, 8))
    >>> im.getpixel((0, 0))
    (128, 128, 128)
    >>> contact_sheet([im] * 3, cols=2).size
    (20, 20)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [-1, 1] -> PIL images."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in x]


def contact_sheet(images: list[Image.Image], cols: int | None = None, gap: int = 4,
                  background=(255, 255, 255)) -> Image.Image:
    """Images in rows of `cols` (default: near-square), separated by `gap` pixels."""
    cols = cols or math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    w, h = images[0].size
    sheet = Image.new("RGB", (cols * w + (cols - 1) * gap, rows * h + (rows - 1) * gap), background)
    for i, im in enumerate(images):
        sheet.paste(im.convert("RGB"), ((i % cols) * (w + gap), (i // cols) * (h + gap)))
    return sheet
