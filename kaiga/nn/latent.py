"""Latent-space helpers shared by the families that sample a Gaussian latent (gan, vae).

Example:
    >>> import torch
    >>> a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    >>> [round(v, 3) for v in slerp(a, b, torch.tensor([0.5]))[0].tolist()]
    [0.707, 0.707]
"""

from __future__ import annotations

import torch


def slerp(a: torch.Tensor, b: torch.Tensor, ts: torch.Tensor) -> torch.Tensor:
    """Points [len(ts), Z] on the great circle from `a` to `b` [Z] (Shoemake 1985); lerp if parallel.

    For Gaussian latents slerp keeps the norm typical, where lerp passes through short, atypical z.
    """
    omega = torch.arccos((a / a.norm()).dot(b / b.norm()).clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.stack([torch.lerp(a, b, t) for t in ts])
    return torch.stack([(torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega) for t in ts])
