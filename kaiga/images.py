"""Image helpers shared by training, pipelines and interfaces: tensors to PIL and back, contact sheets.

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
import torch.nn.functional as F
from PIL import Image


def to_pil(pixels: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [-1, 1] -> PIL images."""
    x = ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in x]


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> [1, 3, H, W] float32 in [-1, 1] (as diffusers' image processor)."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None] * 2 - 1


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A Gaussian blur (9 taps, edges replicated) of each image of [B, 3, H, W] with its own sigma (B,) in pixels."""
    r = torch.arange(-4, 5, dtype=x.dtype)
    k = torch.exp(-(r[None] ** 2) / (2 * sigma[:, None] ** 2))
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(3, 0)  # (3B, 9)
    b, c, h, w = x.shape
    y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (4, 4, 0, 0), mode="replicate"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, 4, 4), mode="replicate"), k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


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


def grid(images: torch.Tensor, cols: int = 8, scale: int = 2) -> Image.Image:
    """[N, 3, H, W] in [-1, 1] -> one PIL image, upscaled by `scale` (nearest) for viewing."""
    return pil_grid(to_pil(images), cols, scale)


def pil_grid(images: list[Image.Image], cols: int = 8, scale: int = 2) -> Image.Image:
    """PIL images side by side without gaps, upscaled by `scale` (nearest) for viewing."""
    sheet = contact_sheet(images, cols=cols, gap=0)
    return sheet.resize((sheet.width * scale, sheet.height * scale), Image.NEAREST)


def captioned_strip(frames: list[Image.Image], captions: list[str], scale: int = 3, title: str = "") -> Image.Image:
    """Frames in a row, enlarged `scale`× (nearest), each with its caption below and a title above."""
    from PIL import ImageDraw

    big = [f.resize((f.width * scale, f.height * scale), Image.NEAREST) for f in frames]
    w, h = big[0].size
    gap, line = 6, 14
    sheet = Image.new("RGB", (len(big) * (w + gap) - gap, h + 3 * line + 2 * gap), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((0, 2), title, fill="black")
    for i, (im, text) in enumerate(zip(big, captions)):
        x = i * (w + gap)
        sheet.paste(im, (x, line + gap))
        for j, part in enumerate(_wrap(text, max(8, w // 6))[:2]):
            draw.text((x, line + 2 * gap + h + j * line), part, fill="black")
    return sheet


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return lines + ([cur] if cur else [])
