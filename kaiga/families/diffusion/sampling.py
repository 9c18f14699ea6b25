"""Samplers of the latent diffusion family: a registry of diffusers schedulers and one sampling loop.

Models, schedulers and the loop meet only through `scheduler.step()`, as in diffusers; noise comes
from one generator per image, so an image depends on its own seed and never on its batch-mates.

Example:
    >>> s = make_scheduler("euler-a", DEFAULT_SCHEDULER)
    >>> type(s).__name__
    'EulerAncestralDiscreteScheduler'
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
)

from kaiga.request import Sampler


_SCHEDULERS = {
    Sampler.DDIM: (DDIMScheduler, {}),
    Sampler.EULER: (EulerDiscreteScheduler, {}),
    Sampler.EULER_A: (EulerAncestralDiscreteScheduler, {}),
    Sampler.DPMPP_2M: (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    Sampler.LCM: (LCMScheduler, {}),
}

# Training schedule of our models: cosine, rescaled to zero terminal SNR, v-prediction.
DEFAULT_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "timestep_spacing": "trailing",  # needed with zero terminal SNR: sampling starts at t=T
    "clip_sample": False,
}


def make_scheduler(sampler: Sampler | str, config: dict):
    """The diffusers scheduler for `sampler`, configured from a model's scheduler config."""
    cls, extra = _SCHEDULERS[Sampler(sampler)]
    return cls.from_config({**config, **extra})


@torch.no_grad()
def denoise(
    unet,
    scheduler,
    noise: torch.Tensor,
    cond: torch.Tensor,
    uncond: torch.Tensor | None,
    steps: int,
    guidance: float,
    generators: list[torch.Generator],
    on_step: Callable[[int, int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Run the reverse process from `noise` [N, C, h, w]; returns clean latents [N, C, h, w].

    cond / uncond: text states [N, T, D]; classifier-free guidance (Ho & Salimans 2022) mixes the
    two predictions as uncond + guidance · (cond − uncond).
    """
    scheduler.set_timesteps(steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    use_cfg = uncond is not None and guidance != 1.0
    context = torch.cat([uncond, cond]) if use_cfg else cond
    for i, t in enumerate(scheduler.timesteps):
        x_in = scheduler.scale_model_input(torch.cat([x, x]) if use_cfg else x, t)
        pred = unet(x_in, t, encoder_hidden_states=context).sample
        if use_cfg:
            pred_uncond, pred_cond = pred.chunk(2)
            pred = pred_uncond + guidance * (pred_cond - pred_uncond)
        # A list of generators gives each image its own noise in stochastic samplers.
        x = scheduler.step(pred, t, x, generator=generators if len(generators) > 1 else generators[0]).prev_sample
        if on_step is not None:
            on_step(i + 1, len(scheduler.timesteps), x)
    return x
