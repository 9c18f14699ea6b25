"""CNN building blocks shared by the GAN and VAE families: conditioned up-sampling, down-sampling.

Hand-written because no well-kept library offers small text-conditioned convolution blocks for
pixel-space generators (diffusers' blocks assume a timestep embedding and cross-attention).
Conditioning is FiLM (Perez et al., 2018): a vector predicts a per-channel scale and shift after a
normalisation without its own affine parameters, which is how conditional BatchNorm in BigGAN and
the text-conditioned generators of the GAN literature inject a label or a sentence.

Example:
    >>> import torch
    >>> up = UpBlock(8, 4, cond_dim=6)
    >>> up(torch.zeros(2, 8, 4, 4), torch.zeros(2, 6)).shape
    torch.Size([2, 4, 8, 8])
    >>> DownBlock(4, 8)(torch.zeros(2, 4, 8, 8)).shape
    torch.Size([2, 8, 4, 4])
"""

from __future__ import annotations

import torch
from torch import nn


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 when the channels allow it (GroupNorm needs a divisor)."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class FiLM(nn.Module):
    """Normalise `x`, then scale and shift each channel by amounts predicted from `cond`."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels, affine=False)
        self.to_scale_shift = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.to_scale_shift.weight)  # starts as plain normalisation
        nn.init.zeros_(self.to_scale_shift.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.to_scale_shift(cond)[:, :, None, None].chunk(2, dim=1)
        return self.norm(x) * (1 + scale) + shift


class UpBlock(nn.Module):
    """×2 nearest up-sampling, then `convs` 3×3 convolutions, each FiLM-conditioned and activated."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, convs: int = 1):
        super().__init__()
        chans = [in_channels] + [out_channels] * convs
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(chans, chans[1:]))
        self.films = nn.ModuleList(FiLM(out_channels, cond_dim) for _ in range(convs))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        for conv, film in zip(self.convs, self.films):
            x = nn.functional.leaky_relu(film(conv(x), cond), 0.2)
        return x


class DownBlock(nn.Module):
    """A 3×3 convolution and a stride-2 4×4 convolution, LeakyReLU after each (DCGAN-style)."""

    def __init__(self, in_channels: int, out_channels: int, norm: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.down = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(_groups(out_channels), out_channels) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.leaky_relu(self.conv(x), 0.2)
        return nn.functional.leaky_relu(self.norm(self.down(x)), 0.2)
