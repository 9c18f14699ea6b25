"""The compute precision of generation: float32 (the default, the golden pixels) or bfloat16 autocast.

Under `bf16` every matmul and convolution of a generation runs in bfloat16 (torch's autocast) while the
weights, the scheduler's arithmetic and the noise stay float32: on CPUs with AMX (this project's machines,
FACTS.md) the UNet at batch 16 takes about half the time, at batch 1 a little more (the casts cost more than
they save on tiny tensors); `kaiga bench --precision bf16` measures it against stock diffusers in one run.
Pixels differ from float32's in low bits (the bench reports the largest difference), so a record made this
way says `extra.precision`; fp32 is the default and what every golden value holds.

Example:
    >>> import torch
    >>> with compute_precision(torch.device("cpu"), "bf16"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    >>> check_precision("fp16")
    Traceback (most recent call last):
    ...
    ValueError: precision: fp32 or bf16 (got 'fp16')
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: {' or '.join(PRECISIONS)} (got {precision!r})")
    return precision


def compute_precision(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """A context in which generation computes in `precision` on `device` (fp32: nothing changes)."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
