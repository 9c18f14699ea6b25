"""Differentiable augmentation (DiffAugment; Zhao et al., 2020) applied to every image the discriminator sees.

A discriminator trained on a few thousand images memorises them and its gradients stop teaching the
generator. DiffAugment applies the same kinds of random transforms (colour, translation, cutout) to
real and to fake images before D, and because every transform is differentiable the generator is
still trained through them. Unlike augmenting the dataset, the generator never learns to *produce*
augmented images: D only ever compares augmented reals with augmented fakes.

Hand-written with plain torch ops (a few lines per transform) so that every random number comes from
the caller's `torch.Generator` on the CPU: a batch is augmented the same way on any device, and a
resumed training run repeats its augmentations exactly. (kornia's augmentations draw from the global
RNG.)

Example:
    >>> import torch
    >>> x = torch.zeros(2, 3, 16, 16)
    >>> y = diff_augment(x, AugmentConfig(), torch.Generator().manual_seed(0))
    >>> y.shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    color: bool = True  # random brightness, saturation and contrast per image
    translation: float = 0.125  # largest shift, as a share of the side (zero-padded); 0 = off
    cutout: float = 0.5  # side of the square set to 0 (grey), as a share of the side; 0 = off


def _uniform(n: int, generator: torch.Generator, like: torch.Tensor) -> torch.Tensor:
    """[n, 1, 1, 1] uniform in [0, 1), drawn on the CPU then moved to `like`'s device and dtype."""
    return torch.rand(n, 1, 1, 1, generator=generator).to(like)


def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness ±0.5, saturation ×[0, 2), contrast ×[0.5, 1.5) per image (DiffAugment's `color`)."""
    n = len(x)
    x = x + (_uniform(n, generator, x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)  # per-pixel grey
    x = (x - mean) * (_uniform(n, generator, x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)  # per-image mean
    return (x - mean) * (_uniform(n, generator, x) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator, ratio: float) -> torch.Tensor:
    """Shift each image by up to `ratio`·side pixels in x and y; what enters from outside is 0."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (n, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(-sx, sx + 1, (n, 1, 1), generator=generator).to(x.device)
    # Gather from a 1-pixel zero border: source indices beyond the image are clamped onto it.
    iy = (torch.arange(h, device=x.device)[None, :, None] + dy + 1).clamp(0, h + 1)  # [N, H, 1]
    ix = (torch.arange(w, device=x.device)[None, None, :] + dx + 1).clamp(0, w + 1)  # [N, 1, W]
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1)).permute(0, 2, 3, 1)  # [N, H+2, W+2, C]
    rows = torch.arange(n, device=x.device)[:, None, None]
    return padded[rows, iy, ix].permute(0, 3, 1, 2)  # [N, C, H, W]


def cutout(x: torch.Tensor, generator: torch.Generator, ratio: float) -> torch.Tensor:
    """Set a square of side `ratio`·side, centred anywhere in the image, to 0 in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=generator).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy).abs() * 2 < ch) & ((xs - cx).abs() * 2 < cw)  # [N, H, W]
    return x * (~inside).unsqueeze(1).to(x.dtype)


def diff_augment(x: torch.Tensor, c: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Augment images [N, C, H, W] with DiffAugment's `color, translation, cutout` policy."""
    assert x.ndim == 4, f"expected [N, C, H, W], got {tuple(x.shape)}"
    if c.color:
        x = color(x, generator)
    if c.translation:
        x = translation(x, generator, c.translation)
    if c.cutout:
        x = cutout(x, generator, c.cutout)
    return x
