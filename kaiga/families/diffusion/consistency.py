"""Latent consistency distillation (LCM, Luo et al. 2023): a few-step student of a diffusion model.

The student is a copy of the teacher's UNet that also reads the guidance scale (a sinusoidal embedding through
the UNet's `time_cond_proj_dim` projection, zero at the start so the student begins as the teacher), so
classifier-free guidance is folded in: one UNet call a step, no unconditional branch. Each training step:
1. a latent x₀ of the data, a DDIM-solver timestep tₙ₊ₖ (one of `solver_steps` evenly spaced ones), noise;
2. the **teacher**, guided at a scale w drawn from `guidance`, takes one DDIM step from x_tₙ₊ₖ to x_tₙ;
3. the **student** at (x_tₙ₊ₖ, tₙ₊ₖ) and the **target** network (an EMA of the student, `target_decay`) at
   (x_tₙ, tₙ) each predict x₀ through the consistency boundary scalings c_skip, c_out (exact at t = 0);
4. the loss is the pseudo-Huber distance between the two (c = `huber_c`).
The scalings and the solver's timesteps are those of diffusers' `LCMScheduler` (σ_data 0.5, timestep scaling
10, 50 original steps), so the student samples with it (sampler `lcm`), or with DDIM from its v-prediction.

Hand-written because no installed library trains LCM: diffusers ships it as an example script, not an API; we
follow the paper and that script's recipe, in our schedule's terms (v-prediction, zero terminal SNR) and our
guidance convention (uncond + w · (cond − uncond)).

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> m = LatentDiffusion.create(tiny_config())
    >>> student = make_student(m.unet)
    >>> student.config.time_cond_proj_dim
    256
    >>> c_skip, c_out = boundary_scalings(torch.tensor([0, 999]))
    >>> [round(v, 3) for v in c_skip.tolist()], [round(v, 3) for v in c_out.tolist()]
    ([1.0, 0.0], [0.0, 1.0])
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

GUIDANCE_EMBEDDING_DIM = 256  # LCM's
SIGMA_DATA, TIMESTEP_SCALING = 0.5, 10.0  # LCMScheduler's boundary condition


@dataclass(frozen=True)
class ConsistencyConfig:
    """The distillation's settings: `guidance` the range of scales drawn per image (our convention: 1 is the
    conditional prediction alone), `solver_steps` the teacher's DDIM steps over the schedule (LCM's 50),
    `target_decay` the target network's EMA, `huber_c` the pseudo-Huber loss's c."""

    guidance: tuple[float, float] = (1.0, 6.0)
    solver_steps: int = 50
    target_decay: float = 0.95
    huber_c: float = 0.001


def guidance_embedding(w: torch.Tensor, dim: int = GUIDANCE_EMBEDDING_DIM) -> torch.Tensor:
    """Sinusoidal features [N, dim] of guidance scales w [N] (as a timestep's, of 1000 · w).

    >>> guidance_embedding(torch.tensor([1.0, 3.0]), 8).shape
    torch.Size([2, 8])
    """
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
    angles = (w.float() * 1000.0)[:, None] * freqs[None, :].to(w.device)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def make_student(teacher_unet, dim: int = GUIDANCE_EMBEDDING_DIM):
    """A copy of `teacher_unet` that reads a guidance embedding (`timestep_cond`), beginning exactly as the teacher:
    its new projection is zero."""
    from diffusers import UNet2DConditionModel

    # without `_use_default_values`: diffusers would take the default (None) for every key that list names
    config = {k: v for k, v in teacher_unet.config.items() if k != "_use_default_values"}
    student = UNet2DConditionModel.from_config({**config, "time_cond_proj_dim": dim})
    missing, unexpected = student.load_state_dict(teacher_unet.state_dict(), strict=False)
    if unexpected or any(not k.startswith("time_embedding.cond_proj") for k in missing):
        raise ValueError(f"the student does not match the teacher: missing {missing}, unexpected {unexpected}")
    torch.nn.init.zeros_(student.time_embedding.cond_proj.weight)
    return student.to(next(teacher_unet.parameters()).device)


def folds_guidance(unet) -> bool:
    """Whether `unet` reads the guidance scale itself (a distilled student): sampled without a CFG branch."""
    return getattr(unet.config, "time_cond_proj_dim", None) is not None


def boundary_scalings(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """c_skip, c_out at integer timesteps t (LCMScheduler's): f(x, t) = c_skip · x + c_out · x̂₀, f = x at t = 0."""
    scaled = t.float() * TIMESTEP_SCALING
    return SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2), scaled / (scaled**2 + SIGMA_DATA**2).sqrt()


def _coefficients(abar: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = abar.to(t.device)[t]
    return a.sqrt().view(-1, 1, 1, 1), (1 - a).sqrt().view(-1, 1, 1, 1)


def x0_and_noise(v: torch.Tensor, x_t: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
    """x̂₀ and ε̂ from a v-prediction (v = α·ε − σ·x₀, α² + σ² = 1)."""
    return alpha * x_t - sigma * v, alpha * v + sigma * x_t


def solver_timesteps(steps: int, train_steps: int = 1000) -> torch.Tensor:
    """The DDIM solver's timesteps [steps], ascending: k − 1, 2k − 1, …, T − 1 with k = T / steps (LCM's)."""
    k = train_steps // steps
    return torch.arange(1, steps + 1) * k - 1


def pseudo_huber(a: torch.Tensor, b: torch.Tensor, c: float) -> torch.Tensor:
    return ((a.float() - b.float()) ** 2 + c**2).sqrt().sub(c).mean()


@torch.no_grad()
def update_target(target, student, decay: float) -> None:
    for p_t, p_s in zip(target.parameters(), student.parameters()):
        p_t.lerp_(p_s.detach().to(p_t.dtype), 1 - decay)


def consistency_loss(student, teacher, target, abar: torch.Tensor, latents: torch.Tensor, states: torch.Tensor,
                     uncond_states: torch.Tensor, cfg: ConsistencyConfig, generator: torch.Generator) -> torch.Tensor:
    """One LCM distillation loss on latents [N, C, h, w] with text states [N, T, D] (see the module docstring).

    `uncond_states` [N, T, D]: the empty prompt's, for the teacher's guidance; `abar`: ᾱ_t of the schedule."""
    n, device = len(latents), latents.device
    ts = solver_timesteps(cfg.solver_steps, len(abar))
    index = torch.randint(0, cfg.solver_steps, (n,), generator=generator)
    t_start = ts[index].to(device)
    t_prev = (t_start - len(abar) // cfg.solver_steps).clamp(min=0)
    noise = torch.randn(latents.shape, generator=generator).to(latents)
    low, high = cfg.guidance
    w = (low + (high - low) * torch.rand(n, generator=generator)).to(device)
    w_emb = guidance_embedding(w, student.config.time_cond_proj_dim).to(latents)
    a_s, s_s = _coefficients(abar, t_start)
    x_start = a_s * latents + s_s * noise

    c_skip, c_out = (c.view(-1, 1, 1, 1).to(latents) for c in boundary_scalings(t_start))
    v = student(x_start, t_start, encoder_hidden_states=states, timestep_cond=w_emb).sample
    online = c_skip * x_start + c_out * x0_and_noise(v, x_start, a_s, s_s)[0]

    with torch.no_grad():
        both = teacher(torch.cat([x_start, x_start]), torch.cat([t_start, t_start]),
                       encoder_hidden_states=torch.cat([uncond_states, states])).sample
        x0_u, eps_u = x0_and_noise(both[:n], x_start, a_s, s_s)
        x0_c, eps_c = x0_and_noise(both[n:], x_start, a_s, s_s)
        wv = w.view(-1, 1, 1, 1).to(latents)
        x0, eps = x0_u + wv * (x0_c - x0_u), eps_u + wv * (eps_c - eps_u)
        a_p, s_p = _coefficients(abar, t_prev)
        # at the solver's first timestep the step lands on t = 0, where ᾱ₀ is (LCM's DDIMSolver: ᾱ of t = 0)
        x_prev = a_p * x0 + s_p * eps
        c_skip_p, c_out_p = (c.view(-1, 1, 1, 1).to(latents) for c in boundary_scalings(t_prev))
        v_target = target(x_prev, t_prev, encoder_hidden_states=states, timestep_cond=w_emb).sample
        goal = c_skip_p * x_prev + c_out_p * x0_and_noise(v_target, x_prev, a_p, s_p)[0]
    return pseudo_huber(online, goal, cfg.huber_c)


def frozen_copy(module):
    return copy.deepcopy(module).requires_grad_(False).eval()
