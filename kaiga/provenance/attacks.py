"""What a watermark must survive: real attacks on PIL images (for measuring) and their training twins on tensors.

The measured attacks are the issue's: JPEG quality 50, a 0.5× resize, a 10 % crop (a random window of 90 % of
each side, kept at that size), Gaussian noise σ 0.02 on a [0, 1] scale. Training draws from wider ranges of the
same kinds, plus blur, so the measured points are inside what the decoder has seen, not at its edge. JPEG in
training is the real codec (Pillow's libjpeg) with a straight-through gradient: the forward pass sees exactly
what a JPEG file holds, the backward pass treats it as the identity.

Example:
    >>> from PIL import Image
    >>> im = Image.new("RGB", (64, 64), "white")
    >>> [ATTACKS[name](im, 0).size for name in ("jpeg50", "resize0.5", "crop10")]
    [(64, 64), (32, 32), (58, 58)]
"""

from __future__ import annotations

import io
import random
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def resize(image: Image.Image, factor: float) -> Image.Image:
    return image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.BICUBIC)


def crop(image: Image.Image, fraction: float, seed: int) -> Image.Image:
    """A random window of (1 - fraction) of each side."""
    rng = random.Random(seed)
    w, h = round(image.width * (1 - fraction)), round(image.height * (1 - fraction))
    x, y = rng.randint(0, image.width - w), rng.randint(0, image.height - h)
    return image.crop((x, y, x + w, y + h))


def noise(image: Image.Image, sigma: float, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    a = np.asarray(image.convert("RGB"), dtype=np.float32) / 255 + rng.normal(0, sigma, (image.height, image.width, 3))
    return Image.fromarray((a.clip(0, 1) * 255).round().astype(np.uint8))


# name → attack(image, seed); the rows of bench/watermark.py
ATTACKS: dict[str, Callable[[Image.Image, int], Image.Image]] = {
    "clean": lambda im, seed: im,
    "jpeg50": lambda im, seed: jpeg(im, 50),
    "resize0.5": lambda im, seed: resize(im, 0.5),
    "crop10": lambda im, seed: crop(im, 0.10, seed),
    "noise0.02": lambda im, seed: noise(im, 0.02, seed),
    "blur1": lambda im, seed: im.filter(ImageFilter.GaussianBlur(1)),
    "jpeg75+resize0.75": lambda im, seed: jpeg(resize(im, 0.75), 75),
}


# --- training twins on tensors in [-1, 1], (B, 3, H, W) -----------------------------------------------------


def straight_through(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """y in the forward pass, x's gradient in the backward pass."""
    return x + (y - x).detach()


def quantize(x: torch.Tensor) -> torch.Tensor:
    """8-bit pixels, as every saved PNG has."""
    return straight_through(x, torch.round((x + 1) * 127.5) / 127.5 - 1)


def jpeg_tensor(x: torch.Tensor, quality: int) -> torch.Tensor:
    pixels = ((x.detach() + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).cpu().numpy()
    out = [np.asarray(jpeg(Image.fromarray(p), quality)) for p in pixels]
    y = torch.from_numpy(np.stack(out)).to(x.device).permute(0, 3, 1, 2).float() / 127.5 - 1
    return straight_through(x, y)


def _resize_tensor(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


def random_attack(x: torch.Tensor, rng: random.Random, p_attack: float = 1.0) -> torch.Tensor:
    """One attack drawn at random for the whole batch (kinds and strengths a little past the measured ones);
    with probability 1 - `p_attack` only the 8-bit rounding (training starts easy: see kaiga.train.watermark)."""
    kinds = ["jpeg", "jpeg", "resize", "crop", "noise", "blur", "resize+jpeg", "crop+jpeg"]
    kind = rng.choice(kinds) if rng.random() < p_attack else "none"
    h, w = x.shape[-2:]
    if "resize" in kind:
        f = rng.uniform(0.35, 0.9)
        x = _resize_tensor(x, (max(8, round(h * f)), max(8, round(w * f))))
    if "crop" in kind:  # put back where it was, the lost border filled from its edge, as the reader's search does
        f = rng.uniform(0.70, 0.95)
        ch, cw = round(x.shape[2] * f), round(x.shape[3] * f)
        top, left = rng.randint(0, x.shape[2] - ch), rng.randint(0, x.shape[3] - cw)
        x = F.pad(x[:, :, top:top + ch, left:left + cw],
                  (left, x.shape[3] - cw - left, top, x.shape[2] - ch - top), mode="replicate")
    if kind == "noise":
        x = x + torch.randn_like(x) * 2 * rng.uniform(0.005, 0.04)
    if kind == "blur":
        sigma = rng.uniform(0.4, 1.3)
        r = torch.arange(-3, 4, dtype=x.dtype, device=x.device)
        k = torch.exp(-(r**2) / (2 * sigma**2))
        k = k / k.sum()
        x = F.conv2d(F.pad(x, (3, 3, 3, 3), mode="replicate"), k.view(1, 1, 1, 7).repeat(3, 1, 1, 1), groups=3)
        x = F.conv2d(x, k.view(1, 1, 7, 1).repeat(3, 1, 1, 1), groups=3)
    x = quantize(x.clamp(-1, 1))
    if "jpeg" in kind:
        x = jpeg_tensor(x, rng.randint(30, 90))
    return x
