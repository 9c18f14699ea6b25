"""Exponential moving average of weights (Polyak averaging), kept as a plain tensor dict.

Example:
    >>> import torch
    >>> m = torch.nn.Linear(1, 1, bias=False); ema = init_ema(m)
    >>> with torch.no_grad(): _ = m.weight.fill_(1.0)
    >>> update_ema(ema, m, decay=0.5, step=1000); float(ema["weight"]) != 1.0
    True
"""

from __future__ import annotations

import torch


def init_ema(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], model: torch.nn.Module, decay: float, step: int) -> None:
    """ema ← d·ema + (1−d)·θ, with d warmed up as (1+step)/(10+step) so early weights fade fast."""
    d = min(decay, (1 + step) / (10 + step))
    for k, v in model.state_dict().items():
        if k in ema:
            ema[k].lerp_(v.float(), 1 - d)


def ema_state_dict(model: torch.nn.Module, ema: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The model's state dict with averaged values in place of the trained ones."""
    return {k: ema[k].to(v.dtype) if k in ema else v for k, v in model.state_dict().items()}
