"""Training losses of the latent diffusion family: the autoencoder's and the denoiser's.

Recipe (measured in FACTS.md, calibration 2): v-prediction on a cosine schedule rescaled to zero
terminal SNR (Lin et al. 2023, fixes global brightness errors) with min-SNR-γ weighting
(Hang et al. 2023, faster convergence).

Example:
    >>> import torch
    >>> w = min_snr_weight(torch.tensor([0.1, 10.0]), gamma=5.0)
    >>> [round(x, 3) for x in w.tolist()]
    [0.091, 0.455]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def vae_loss(vae, x: torch.Tensor, kl_weight: float, generator=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction (L1 + L2) plus kl_weight · KL(q(z|x) ‖ N(0, I)), all per pixel.

    x: [N, 3, H, W] in [-1, 1]; `generator` draws the posterior sample z ~ q(z|x).
    """
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(generator)).sample
    rec = F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x)
    kl = posterior.kl().mean() / x[0].numel()
    loss = rec + kl_weight * kl
    return loss, {"rec": rec.item(), "kl": kl.item()}


def decoder_loss(vae, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction from the frozen encoder's mean latent: trains the decoder alone."""
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
    x_hat = vae.decode(z).sample
    rec = F.l1_loss(x_hat, x) + F.mse_loss(x_hat, x)
    return rec, {"rec": rec.item()}


def min_snr_weight(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR, γ) / (SNR + 1): min-SNR-γ weighting expressed for a v-prediction target."""
    return torch.clamp(snr, max=gamma) / (snr + 1)


def v_target(x0: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
    """v = α·ε − σ·x0 (Salimans & Ho 2022, eq. 9 with α² + σ² = 1)."""
    return alpha * noise - sigma * x0


def diffusion_loss(
    unet, alphas_cumprod: torch.Tensor, latents: torch.Tensor, text_states: torch.Tensor, noise: torch.Tensor,
    t: torch.Tensor, snr_gamma: float = 5.0,
) -> torch.Tensor:
    """Weighted v-prediction MSE at the given timesteps.

    latents, noise: [N, C, h, w] (latents already scaled); text_states: [N, T, D]; t: [N] integer steps.
    Noise and timesteps come from the caller, so a training step is a pure function of its batch.
    """
    abar = alphas_cumprod.to(latents.device)[t].to(latents.dtype)
    alpha, sigma = abar.sqrt().view(-1, 1, 1, 1), (1 - abar).sqrt().view(-1, 1, 1, 1)
    x_t = alpha * latents + sigma * noise  # forward process q(x_t | x_0)
    pred = unet(x_t, t, text_states).sample
    per_item = F.mse_loss(pred.float(), v_target(latents, noise, alpha, sigma).float(), reduction="none")
    snr = abar / (1 - abar).clamp(min=1e-8)
    # With zero terminal SNR, snr=0 at t=T: its weight min(0,γ)/(0+1)=0 would drop the step that
    # teaches the model to draw from pure noise, so keep a floor there.
    w = min_snr_weight(snr, snr_gamma).clamp(min=0.05)
    return (per_item.mean(dim=(1, 2, 3)) * w).mean()
