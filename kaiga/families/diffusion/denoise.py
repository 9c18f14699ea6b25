"""The one denoising loop of the latent diffusion family, under every way it makes an image.

Text to image, image to image, inpainting and outpainting, `kaiga explain` and the training sample
grids all run `denoise`: the only place in kaiga where a scheduler steps. What differs between them
is only what goes in: the start latents (pure noise, or noised init latents), the timesteps to run
(all, or the last int(steps · strength)), and two hooks: `blend(x, i)` after each step (inpainting
puts the known latents back outside the mask) and `on_step(i, n, x, x0)` (progress bars, explain's
frames). A pure function in the spirit of k-diffusion's samplers: the model, the scheduler and the
noise are passed in, and each image's randomness comes from its own generator.

Guidance, one rule everywhere: the prediction is uncond + guidance · (cond − uncond) (classifier-free
guidance, Ho & Salimans 2022) for every guidance value; 1 is the conditional prediction alone, so
the unconditional branch is skipped, 0 is the unconditional model, and values between extrapolate
less. (diffusers' pipelines skip guidance for any value ≤ 1; kaiga does not.)

A composed prompt (`a red car AND snow :0.5`, `red car::2 snow`, `[dog:cat:0.5]`, kaiga/prompt_syntax.py)
comes as `ComposedCond`: K sub-prompts whose text may change at given steps, summed as composable
diffusion does (Liu et al. 2022): uncond + guidance · Σₖ wₖ (condₖ − uncond), the UNet run on K + 1
copies of the batch. One sub-prompt of weight 1 that never changes is exactly the rule above.

Example:
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.families.diffusion.schedulers import make_scheduler, timesteps_to_run
    >>> m = LatentDiffusion.create(tiny_config())
    >>> s = make_scheduler("ddim", m.scheduler_config)
    >>> g = [torch.Generator().manual_seed(0)]
    >>> states = m.encode_text(m.tokenize(["a red car"]))
    >>> x = denoise(m.unet, s, torch.randn(1, 4, 16, 16, generator=g[0]), timesteps_to_run(s, 2), states, None, 1.0, g)
    >>> x.shape
    torch.Size([1, 4, 16, 16])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from kaiga.families.diffusion.consistency import folds_guidance, guidance_embedding

# on_step(steps done, steps in all, latents x_t [N, C, h, w], predicted clean latents x̂₀ or None)
OnStep = Callable[[int, int, torch.Tensor, "torch.Tensor | None"], None]
# blend(latents after step i, i) -> latents to continue from
Blend = Callable[[torch.Tensor, int], torch.Tensor]
# shaken(text states [N, T, D], i) -> the states step i conditions on (`--chaos`, kaiga/families/chaos.py)
Shaken = Callable[[torch.Tensor, int], torch.Tensor]


@dataclass(frozen=True)
class ComposedCond:
    """Text conditioning of K sub-prompts that may change over the steps (kaiga.prompt_syntax).

    states: [R, T, D], one row per distinct text; runs: per sub-prompt, (last step, row) in step order,
    steps counted from 1 over the whole schedule; weights: one per sub-prompt; first_step: steps of the
    schedule not run (an edit runs only the last ones), so loop step i is schedule step first_step + i + 1.
    """

    states: torch.Tensor
    runs: tuple[tuple[tuple[int, int], ...], ...]
    weights: tuple[float, ...]
    first_step: int = 0

    def at(self, i: int) -> torch.Tensor:
        """States [K, T, D] of the sub-prompts at loop step i."""
        step = self.first_step + i + 1
        rows = [next((row for last, row in runs if step <= last), runs[-1][1]) for runs in self.runs]
        return self.states[rows]


def composed_prediction(unet, x_in: torch.Tensor, t, cond: ComposedCond, i: int, uncond: torch.Tensor,
                        guidance: float, shaken: Shaken | None = None) -> torch.Tensor:
    """uncond + guidance · Σₖ wₖ (predₖ − uncond) for latents x_in [N, C, h, w] already scaled for step t."""
    n, parts = x_in.shape[0], cond.at(i)
    states = [p[None].expand(n, -1, -1) for p in parts]
    if shaken is not None:
        states = [shaken(s, i) for s in states]
    context = torch.cat([uncond, *states])  # [(K + 1) · N, T, D]
    preds = unet(x_in.repeat(len(parts) + 1, 1, 1, 1), t, encoder_hidden_states=context).sample.chunk(len(parts) + 1)
    return preds[0] + guidance * sum(w * (p - preds[0]) for w, p in zip(cond.weights, preds[1:]))


def guided(pred_uncond: torch.Tensor, pred_cond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance: uncond + guidance · (cond − uncond)."""
    return pred_uncond + guidance * (pred_cond - pred_uncond)


@torch.no_grad()
def denoise(
    unet,
    scheduler,
    x: torch.Tensor,
    timesteps: torch.Tensor,
    cond: torch.Tensor | ComposedCond,
    uncond: torch.Tensor | None,
    guidance: float,
    generators: list[torch.Generator],
    on_step: OnStep | None = None,
    blend: Blend | None = None,
    shaken: Shaken | None = None,
) -> torch.Tensor:
    """Run the reverse process over `timesteps` from latents `x` [N, C, h, w]; returns the last latents.

    x: already at the noise level of timesteps[0] (see `timesteps_to_run`, which also sets the
    scheduler up); cond / uncond: text states [N, T, D] (uncond None: no guidance);
    generators: one per image, for the noise of stochastic samplers; shaken: the text states of each step
    (`--chaos`), or None: the same states every step.
    """
    composed = cond if isinstance(cond, ComposedCond) else None
    if composed is not None and uncond is None:
        raise ValueError("a composed prompt needs the unconditional states (its sub-prompts are summed against them)")
    embedded = folds_guidance(unet)  # a distilled student reads the scale itself: one call a step, no CFG branch
    if embedded and composed is not None:
        raise ValueError("a composed prompt needs classifier-free guidance, which a distilled model folds in")
    use_cfg = not embedded and composed is None and uncond is not None and guidance != 1.0  # 1: conditional alone
    extra = {}
    if embedded:
        w = torch.full((x.shape[0],), float(guidance), device=x.device)
        extra["timestep_cond"] = guidance_embedding(w, unet.config.time_cond_proj_dim).to(x.dtype)
    context = None if composed is not None else torch.cat([uncond, cond]) if use_cfg else cond  # [2N or N, T, D]
    # A list of generators gives each image its own noise in stochastic samplers.
    generator = generators if len(generators) > 1 else generators[0]
    for i, t in enumerate(timesteps):
        if composed is not None:
            pred = composed_prediction(unet, scheduler.scale_model_input(x, t), t, composed, i, uncond, guidance, shaken)
        else:
            if shaken is not None:
                context = torch.cat([uncond, shaken(cond, i)]) if use_cfg else shaken(cond, i)
            x_in = scheduler.scale_model_input(torch.cat([x, x]) if use_cfg else x, t)
            pred = unet(x_in, t, encoder_hidden_states=context, **extra).sample
            if use_cfg:
                pred = guided(*pred.chunk(2), guidance)
        out = scheduler.step(pred, t, x, generator=generator)
        x = out.prev_sample
        if blend is not None:
            x = blend(x, i)
        if on_step is not None:
            on_step(i + 1, len(timesteps), x, getattr(out, "pred_original_sample", None))
    return x
