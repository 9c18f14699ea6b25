"""`chaos` (Midjourney's `--chaos 0..100`): how different the images of one request are from each other.

Seeds alone make a model's images of one prompt alike when guidance pins the layout (docs/EVAL.md's seed
variety). Following CADS (Sadat et al. 2024, "CADS: Unleashing the diversity of diffusion models through
condition-annealed sampling"), chaos adds Gaussian noise to the text condition, strongest at the first
step and annealed to none halfway through the steps, so the early, layout-deciding steps see a shaken
prompt and the late, detail-drawing ones the prompt itself; each image's noise comes from its own seed
(salted, so the image noise is untouched), and the shaken states are rescaled to the statistics of the
condition (CADS's ψ = 1) so the UNet never sees states out of their range:

    ĉ = c + a(i) · std(c) · ε,  a(i) = chaos/100 · MAX_SHAKE · max(0, 1 − i / (ANNEAL · steps)),
    then ĉ rescaled to c's mean and std

Families without steps (GAN, VAE) shake their text vector once, by chaos/100 · VECTOR_SHAKE; the transformer
samples its tokens at a temperature raised by up to half (chaos 100). Chaos 0 (or none) changes nothing.

Hand-written: CADS is a sampler change a few lines long; diffusers has no such option.

Example:
    >>> import torch
    >>> c = torch.randn(2, 4, 8)
    >>> torch.equal(shake(c, chaos_noise([1, 2], (4, 8)), 0.0), c)
    True
    >>> shaken = shake(c, chaos_noise([1, 2], (4, 8)), 1.0)
    >>> bool(torch.allclose(shaken.std(dim=(1, 2)), c.std(dim=(1, 2)))), bool((shaken - c).abs().mean() > 0.1)
    (True, True)
"""

from __future__ import annotations

import torch

SALT = 0x9E3779B1  # each image's chaos noise: its seed, salted, so the image's own noise stays the same
MAX_SHAKE = 6.0  # noise of 6× the condition's own std at chaos 100, first step (1× barely moves scenes-diffusion)
ANNEAL = 0.5  # no noise from half the steps on
VECTOR_SHAKE = 0.3  # GAN / VAE: the one shake of the text vector at chaos 100 (0.6 breaks the bundled GAN's images)
TEMPERATURE_RISE = 0.5  # transformer: temperature × (1 + 0.5) at chaos 100


def chaos_noise(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """Noise [N, *shape], image i's from its own salted seed (on the CPU: the same on every device)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed((s ^ SALT) % 2**63))
                        for s in seeds])


def strength(chaos: int | None, step: int = 0, steps: int = 1) -> float:
    """a(i): the noise's size at loop step `step` of `steps` (0 without chaos or from half the steps on)."""
    if not chaos:
        return 0.0
    return chaos / 100 * MAX_SHAKE * max(0.0, 1.0 - step / (ANNEAL * steps))


def vector_strength(chaos: int | None) -> float:
    """The one shake of a GAN's or VAE's text vector."""
    return (chaos or 0) / 100 * VECTOR_SHAKE


def shake(cond: torch.Tensor, noise: torch.Tensor, a: float) -> torch.Tensor:
    """cond [N, ...] + a · std · noise, each image rescaled to its own condition's mean and std; cond if a is 0."""
    if a == 0:
        return cond
    dims = tuple(range(1, cond.dim()))
    mean, std = cond.mean(dim=dims, keepdim=True), cond.std(dim=dims, keepdim=True)
    shaken = cond + a * std * noise.to(cond)
    return (shaken - shaken.mean(dim=dims, keepdim=True)) / shaken.std(dim=dims, keepdim=True) * std + mean
