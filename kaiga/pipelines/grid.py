"""Contact sheets: many images as one, for people to compare.

Example:
    >>> from PIL import Image
    >>> contact_sheet([Image.new("RGB", (8, 8))] * 3, cols=2).size
    (20, 20)
"""

from __future__ import annotations

import math

from PIL import Image


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
