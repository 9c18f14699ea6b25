"""The generator: noise z and a text vector -> a 64×64 RGB image in [-1, 1].

[z; text] is projected to a 4×4 feature map, then up-sampled ×2 per `UpBlock` to the image size;
every block is FiLM-conditioned on [z; text] (as BigGAN's conditional normalisation feeds the class
and z to every block). With `mapping`, z first moves to where the caption's images lie:
z' = μ(text) + σ(text)·z, a text-conditioned affine map (a conditional VAE's Gaussian prior has this
form, which lets a generator start from a trained VAE's decoder: `TextGAN.from_vae`). GroupNorm, never
BatchNorm: an image does not depend on the other images of its batch, so a seed gives the same picture
whatever the batch size.

Example:
    >>> import torch
    >>> g = Generator(z_dim=4, text_dim=6, channels=(8, 8, 8))
    >>> g(torch.zeros(2, 4), torch.zeros(2, 6)).shape
    torch.Size([2, 3, 16, 16])
"""

from __future__ import annotations

import torch
from torch import nn

from kaiga.nn.blocks import UpBlock

STEM_SIDE = 4  # the first feature map is 4×4, as in DCGAN / BigGAN


def image_side(channels: tuple[int, ...]) -> int:
    """Side of the generated image: one ×2 up-sampling per entry after the first."""
    return STEM_SIDE * 2 ** (len(channels) - 1)


class Generator(nn.Module):
    """`channels[i]` feature maps at 4·2^i pixels; `convs` 3×3 convolutions per up-sampling block."""

    def __init__(self, z_dim: int, text_dim: int, channels: tuple[int, ...], convs: int = 1, mapping: bool = False):
        super().__init__()
        cond = z_dim + text_dim
        self.mapping = (nn.Sequential(nn.Linear(text_dim, 2 * z_dim), nn.SiLU(), nn.Linear(2 * z_dim, 2 * z_dim))
                        if mapping else None)
        self.stem = nn.Linear(cond, channels[0] * STEM_SIDE * STEM_SIDE)
        self.ups = nn.ModuleList(UpBlock(a, b, cond, convs=convs) for a, b in zip(channels, channels[1:]))
        self.to_rgb = nn.Conv2d(channels[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        # z: [N, Z], text: [N, D] -> [N, 3, S, S] in [-1, 1]
        assert z.ndim == 2 and text.ndim == 2 and len(z) == len(text), f"z {tuple(z.shape)}, text {tuple(text.shape)}"
        if self.mapping is not None:
            mean, logvar = self.mapping(text).chunk(2, dim=1)
            z = mean + z * (0.5 * logvar.clamp(-12, 8)).exp()  # z' = μ(text) + σ(text)·z
        cond = torch.cat([z, text], dim=1)
        h = self.stem(cond).view(len(z), -1, STEM_SIDE, STEM_SIDE)  # [N, C0, 4, 4]
        # channels-last: on CPU (oneDNN) the convolutions and up-sampling run ~1.5× faster, training too
        h = h.contiguous(memory_format=torch.channels_last)
        for up in self.ups:
            h = up(h, cond)  # [N, Ci, 4·2^i, 4·2^i]
        return torch.tanh(self.to_rgb(h)).contiguous()
