"""The schedulers of the latent diffusion family: a registry of diffusers schedulers by sampler name.

A scheduler holds the noise schedule and the solver; `kaiga.families.diffusion.denoise` runs it.
`timesteps_to_run` says which of a schedule's steps a request runs: all of them from pure noise,
or the last int(steps · strength) for an edit (SDEdit, Meng et al. 2022, as diffusers and A1111).

Example:
    >>> s = make_scheduler("euler-a", DEFAULT_SCHEDULER)
    >>> type(s).__name__
    'EulerAncestralDiscreteScheduler'
    >>> [int(t) for t in timesteps_to_run(make_scheduler("ddim", DEFAULT_SCHEDULER), 4, strength=0.5)]
    [499, 249]
"""

from __future__ import annotations

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


def alphas_cumprod(config: dict) -> torch.Tensor:
    """ᾱ_t [T] of a model's training schedule (the forward process q(x_t | x_0) of the loss)."""
    return make_scheduler("ddim", {**DEFAULT_SCHEDULER, **config}).alphas_cumprod.float()


def timesteps_to_run(scheduler, steps: int, strength: float | None = None, device=None) -> torch.Tensor:
    """Set `steps` timesteps on `scheduler` and return the ones to run.

    Text to image (`strength` None) runs the whole schedule from pure noise. An edit runs the last
    int(steps · strength), starting where its noised init latents are; as diffusers' img2img and
    inpainting pipelines do, the scheduler is told that begin index (even at strength 1), which
    decides how stateful schedulers (Euler, DPM-Solver) index their sigmas in `add_noise`.
    """
    scheduler.set_timesteps(steps, device=device)
    if strength is None:
        return scheduler.timesteps
    start = (steps - min(int(steps * strength), steps)) * scheduler.order
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(start)
    return scheduler.timesteps[start:]
