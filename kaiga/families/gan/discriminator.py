"""The projection discriminator (Miyato & Koyama, 2018): how real an image looks *for this caption*.

Convolutions map the image to a feature vector h = φ(x); the logit is
    D(x, y) = ψ(h) + ⟨embed(y), h⟩                     (Miyato & Koyama 2018, eq. 3)
where y is the caption's text vector. The inner product makes the condition a learned direction in
feature space: an image scores high only when its features agree with its caption, which works
better than concatenating y to the input (the paper's §2).

h comes from a flattened 4×4 map (not global pooling), so where things are ("a car to the left of a
dog") stays visible to the inner product. No normalisation: the R1 penalty regularises D instead.

Example:
    >>> import torch
    >>> d = ProjectionDiscriminator(text_dim=6, channels=(8, 8), features=16, image_size=16)
    >>> d(torch.zeros(2, 3, 16, 16), torch.zeros(2, 6)).shape
    torch.Size([2])
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.functional import leaky_relu

from kaiga.nn.blocks import DownBlock


class ProjectionDiscriminator(nn.Module):
    """`channels[i]` feature maps at side/2^(i+1) pixels; the last map must be 4×4."""

    def __init__(self, text_dim: int, channels: tuple[int, ...], features: int, image_size: int = 64):
        super().__init__()
        side = image_size // 2 ** len(channels)
        if side != 4:
            raise ValueError(f"d_channels: {len(channels)} stages take {image_size} px to {side} px; "
                             f"give one stage per halving down to 4 px")
        # The first stage halves at once (a strided 4×4 "from RGB"): full-resolution 3×3 convs cost
        # most of D's time on a CPU and add little at 64 px.
        self.from_rgb = nn.Conv2d(3, channels[0], 4, stride=2, padding=1)
        self.downs = nn.Sequential(*(DownBlock(a, b) for a, b in zip(channels, channels[1:])))
        self.to_features = nn.Linear(channels[-1] * side * side, features)
        self.psi = nn.Linear(features, 1)  # the unconditional term ψ(h)
        self.embed = nn.Linear(text_dim, features, bias=False)  # the caption's direction embed(y)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        # x: [N, 3, S, S], text: [N, D] -> logits [N]
        assert x.ndim == 4 and text.ndim == 2 and len(x) == len(text), f"x {tuple(x.shape)}, text {tuple(text.shape)}"
        h = self.downs(leaky_relu(self.from_rgb(x), 0.2)).flatten(1)  # [N, C·4·4]
        h = leaky_relu(self.to_features(h), 0.2)  # φ(x): [N, F]
        return self.psi(h).squeeze(1) + (self.embed(text) * h).sum(1)  # eq. 3
