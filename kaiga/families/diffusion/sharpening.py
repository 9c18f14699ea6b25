"""What makes an autoencoder sharp rather than blurry: a perceptual loss and a patch discriminator.

A pixel loss alone averages the plausible details away (our v5 autoencoder: 23.3 dB, dogs without
faces). Stable Diffusion's autoencoder (Rombach et al. 2022, after Esser et al.'s VQGAN) adds LPIPS
and a PatchGAN discriminator. Neither VGG nor LPIPS weights can be downloaded here, so:

- the perceptual distance compares the feature maps of a network trained here, the scenes readout
  (`kaiga/eval/readout.py`), stage by stage: each map unit-normalised over its channels, squared
  differences averaged over positions and summed over stages (LPIPS without its learned per-channel
  weights). The network is frozen and kept outside the module's state, so it is neither trained nor
  saved in checkpoints;
- the discriminator is pix2pix's PatchGAN sized for 64² images: three 4×4 convolutions, two with
  stride 2, give 15×15 logits whose receptive field is 22 pixels (an object's part, not the scene),
  trained with the hinge loss and joined after `disc_start` steps, once reconstructions are close.

Both are trained by the one optimiser of the shared loop: the discriminator's loss sees detached
reconstructions, and the autoencoder's adversarial term runs the discriminator with detached weights
(`torch.func.functional_call`), so each network gets only its own gradient from one backward pass.

Example:
    >>> import torch
    >>> d = PatchDiscriminator(width=8)
    >>> d(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 1, 15, 15])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class SharpeningConfig:
    perceptual_weight: float = 1.0
    adversarial_weight: float = 0.1
    disc_start: int = 1000  # steps of reconstruction losses alone before the discriminator joins
    disc_width: int = 32


class PatchDiscriminator(nn.Module):
    """Real/fake logits per 22-pixel patch of a [-1, 1] image."""

    def __init__(self, width: int = 32):
        super().__init__()

        def norm(c: int) -> nn.Module:
            return nn.GroupNorm(min(8, c), c)

        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), norm(2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, stride=1, padding=1), norm(4 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3, stride=1, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class PerceptualDistance:
    """LPIPS-style distance over the stages of a frozen readout network's trunk (not an `nn.Module`:
    assigning it to a module does not register its weights)."""

    def __init__(self, readout):
        self.stages = _trunk_stages(readout.trunk)
        for p in readout.parameters():
            p.requires_grad_(False)
        self.readout = readout.eval()

    def to(self, device) -> PerceptualDistance:
        self.readout.to(device)
        return self

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean distance between images x and y [N, 3, 64, 64] in [-1, 1]; gradients flow into x."""
        total = x.new_zeros(())
        for stage in self.stages:
            x, y = stage(x), stage(y)
            total = total + (_unit(x) - _unit(y)).pow(2).sum(1).mean()
        return total


def _trunk_stages(trunk: nn.Sequential) -> list[nn.Sequential]:
    """The trunk cut after each downsampling block (every sixth layer: conv, norm, relu, strided conv, norm, relu)."""
    layers = list(trunk)
    return [nn.Sequential(*layers[i : i + 6]) for i in range(0, len(layers), 6)]


def _unit(f: torch.Tensor) -> torch.Tensor:
    return f / (f.pow(2).sum(1, keepdim=True) + 1e-10).sqrt()


def hinge_discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


def sharp_vae_loss(vae, disc: PatchDiscriminator, perceptual: PerceptualDistance, x: torch.Tensor, step: int,
                   cfg: SharpeningConfig, kl_weight: float, generator=None) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 + perceptual + KL for the autoencoder, plus (after `cfg.disc_start`) its adversarial term and the
    discriminator's own hinge loss, as one sum whose gradients reach each network only from its own terms."""
    posterior = vae.encode(x).latent_dist
    x_hat = vae.decode(posterior.sample(generator)).sample
    l1 = F.l1_loss(x_hat, x)
    p = perceptual(x_hat, x) if cfg.perceptual_weight else x_hat.new_zeros(())
    kl = posterior.kl().mean() / x[0].numel()
    loss = l1 + cfg.perceptual_weight * p + kl_weight * kl
    logs = {"l1": l1.item(), "perceptual": p.item(), "kl": kl.item()}
    if cfg.adversarial_weight and step >= cfg.disc_start:
        frozen = {name: w.detach() for name, w in disc.named_parameters()}
        g_adv = -torch.func.functional_call(disc, frozen, (x_hat,)).mean()
        d_loss = hinge_discriminator_loss(disc(x), disc(x_hat.detach()))
        loss = loss + cfg.adversarial_weight * g_adv + d_loss
        logs.update(g_adv=g_adv.item(), d_loss=d_loss.item())
    return loss, logs
