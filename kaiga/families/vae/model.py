"""The `vae` family: a conditional VAE (Kingma & Welling, 2014; Sohn et al., 2015) over 64×64 pixels.

The encoder reads an image and its caption into a Gaussian q(z | image, text) over a latent vector
z; the decoder draws the image back from z and the caption. A prior network gives p(z | text), the
conditional prior of Sohn et al.: with the fixed N(0, I) prior a decoder that learns to read
everything from z ignores the caption, and samples then ignore the prompt. Training minimises
reconstruction error plus β·KL(q ‖ p) (Higgins et al., 2017: β trades sharp reconstructions against
samples that look like the data). Generation draws z from p(z | prompt) and decodes it.

The prior is one Gaussian or a mixture of `prior_components` Gaussians. One Gaussian cannot follow
where the encoder puts a caption's images (one region of z per layout: the car left, the car right),
so most of its mass lands between them and decodes to blurs; a mixture can (the VampPrior argument,
Tomczak & Welling, 2018). Its KL has no closed form, so training uses the one-sample estimate
log q(z|x) − log p(z). The `prior` stage fits only the prior on a trained VAE (the same objective,
the other weights frozen): an ex-post density estimate of the latents (Ghosh et al., 2020, §4).
Hand-written: no well-kept library ships a text-conditional VAE generator.

Example:
    >>> import torch
    >>> from kaiga.request import GenerationRequest
    >>> m = ConditionalVAE.create(VAEFamilyConfig.tiny())
    >>> [im] = m.sample(GenerationRequest(prompt="a red car"), seeds=[3])
    >>> im.size
    (64, 64)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

import torch
from torch import nn
from torch.nn.functional import log_softmax

from kaiga.families.base import ImageGenerator, prompt_batches, seeded_normal
from kaiga.images import to_pil
from kaiga.nn.blocks import DownBlock, UpBlock
from kaiga.nn.latent import slerp
from kaiga.request import GenerationRequest
from kaiga.text.encoder import TextConfig, build_text_encoder, pooled_text


@dataclass(frozen=True)
class VAEFamilyConfig:
    image_size: int = 64
    latent_dim: int = 128
    # Feature maps at 32, 16, 8, 4 pixels (encoder; the decoder mirrors them). Twice the CPU-trained
    # (16, 32, 64, 128): trained on a GPU (scripts/train_gpu.sh).
    channels: tuple[int, ...] = (32, 64, 128, 256)
    text: TextConfig = field(default_factory=lambda: TextConfig(hidden_size=128, layers=2, heads=4))
    beta: float = 1.0  # weight of the KL term (per latent dimension, against per-pixel error)
    pixel_sigma: float = 0.1  # the decoder's Gaussian std: reconstruction = sq. error / (2σ²)
    prior_components: int = 1  # Gaussians in p(z | text): 1 = one Gaussian (closed-form KL)
    truncation: float = 1.0  # what a request's truncation of None means (the shipped model's: its kaiga.json)

    def __post_init__(self):
        if self.prior_components < 1:
            raise ValueError(f"prior_components: must be at least 1 (got {self.prior_components})")
        if not 0 <= self.truncation <= 1:
            raise ValueError(f"truncation: must be between 0 and 1 (got {self.truncation})")

    @classmethod
    def tiny(cls) -> "VAEFamilyConfig":
        return cls(latent_dim=8, channels=(8, 8, 8, 8), text=TextConfig(hidden_size=16, layers=1, heads=2))


class Encoder(nn.Module):
    """Image + text vector -> (mean, log-variance) of q(z | x, text)."""

    def __init__(self, c: VAEFamilyConfig):
        super().__init__()
        ch = c.channels
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.downs = nn.Sequential(*(DownBlock(a, b, norm=True) for a, b in zip((ch[0],) + ch[:-1], ch)))
        side = c.image_size // 2 ** len(ch)
        self.to_stats = nn.Linear(ch[-1] * side * side + c.text.hidden_size, 2 * c.latent_dim)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.downs(self.conv_in(x)).flatten(1)
        mean, logvar = self.to_stats(torch.cat([h, text], dim=1)).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)


class Stage(str, Enum):
    ALL = "all"  # every part: text encoder, encoder, prior, decoder
    PRIOR = "prior"  # the prior alone, on a trained VAE's latents


class Prior(nn.Module):
    """Text vector -> p(z | text) as mixture logits [N, K], means and log-variances [N, K, Z].

    With one component there are no mixture weights (the logits are zeros), and the weights keep
    the layout of the single-Gaussian prior, so older models load unchanged.
    """

    def __init__(self, c: VAEFamilyConfig):
        super().__init__()
        self.components, self.latent_dim = c.prior_components, c.latent_dim
        self.net = nn.Sequential(nn.Linear(c.text.hidden_size, 2 * c.latent_dim), nn.SiLU(),
                                 nn.Linear(2 * c.latent_dim, 2 * c.prior_components * c.latent_dim))
        self.logits = nn.Linear(c.text.hidden_size, c.prior_components) if c.prior_components > 1 else None

    def forward(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n = len(text)
        mean, logvar = self.net(text).view(n, self.components, 2 * self.latent_dim).chunk(2, dim=2)
        logits = self.logits(text) if self.logits is not None else text.new_zeros(n, 1)
        return logits, mean, logvar.clamp(-12, 8)

    @torch.no_grad()
    def split_from(self, gaussian: "Prior", jitter: float = 0.1, seed: int = 0) -> None:
        """Start every component as a copy of a trained one-Gaussian prior, each mean shifted by
        `jitter`·N(0, 1) so that they can part (identical components get identical gradients).
        The fit then starts from the Gaussian's KL instead of an untrained network's."""
        k, d = self.components, self.latent_dim
        self.net[0].load_state_dict(gaussian.net[0].state_dict())
        self.net[2].weight.copy_(gaussian.net[2].weight.repeat(k, 1))
        bias = gaussian.net[2].bias.repeat(k, 1)  # [K, 2Z]: each component's mean and log-variance
        bias[:, :d] += jitter * torch.randn(k, d, generator=torch.Generator().manual_seed(seed)).to(bias)
        self.net[2].bias.copy_(bias.flatten())
        torch.nn.init.zeros_(self.logits.weight)
        torch.nn.init.zeros_(self.logits.bias)  # equal weights

    @staticmethod
    def log_prob(z: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log p(z | text) [N] for z [N, Z]: log Σₖ πₖ N(z; μₖ, σₖ²)."""
        sq = (z[:, None] - mean) ** 2 / logvar.exp()  # [N, K, Z]
        log_normal = -0.5 * (sq + logvar + math.log(2 * math.pi)).sum(2)  # [N, K]
        return torch.logsumexp(log_softmax(logits, dim=1) + log_normal, dim=1)

    @staticmethod
    def draw(noise: torch.Tensor, logits: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z [N, Z] from noise [N, Z + 1]: the last value picks a component (through the normal CDF, so a
        seed picks it), the others are the unit noise scaled into that component."""
        u = torch.special.ndtr(noise[:, -1:])  # [N, 1], uniform on (0, 1)
        cdf = logits.softmax(dim=1).cumsum(dim=1)  # [N, K]
        k = (u > cdf).sum(dim=1).clamp(max=mean.shape[1] - 1)  # the first component whose CDF reaches u
        rows = torch.arange(len(k), device=k.device)
        return mean[rows, k] + noise[:, :-1] * (0.5 * logvar[rows, k]).exp()


class Decoder(nn.Module):
    """(z, text vector) -> image in [-1, 1]: a 4×4 map, up-sampled ×2 per block, FiLM-conditioned."""

    def __init__(self, c: VAEFamilyConfig):
        super().__init__()
        ch = c.channels[::-1]
        cond = c.latent_dim + c.text.hidden_size
        self.side = c.image_size // 2 ** len(ch)
        self.stem = nn.Linear(cond, ch[0] * self.side * self.side)
        self.ups = nn.ModuleList(UpBlock(a, b, cond, convs=2) for a, b in zip(ch, ch[1:] + (ch[-1],)))
        self.to_rgb = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def forward(self, z: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([z, text], dim=1)
        h = self.stem(cond).view(len(z), -1, self.side, self.side)
        for up in self.ups:
            h = up(h, cond)
        return torch.tanh(self.to_rgb(h))


class ConditionalVAE(ImageGenerator):
    family = "vae"
    config_class = VAEFamilyConfig
    request_options = ("truncation",)

    def __init__(self, config: VAEFamilyConfig, tokenizer, info: dict | None = None):
        super().__init__(config, tokenizer, {"native_size": config.image_size, "max_size": config.image_size, **(info or {})})
        self.text_encoder = build_text_encoder(config.text, len(tokenizer))
        self.encoder = Encoder(config)
        self.prior_net = Prior(config)
        self.decoder = Decoder(config)
        self.stage = Stage.ALL

    # --- training -------------------------------------------------------------------------------
    def set_stage(self, stage: Stage | str, prior_components: int | None = None) -> "ConditionalVAE":
        """Train `stage` from now on. `prior_components` (any stage) replaces the prior by an untrained
        one with that many components; from one Gaussian, the new components start as its copies."""
        if prior_components is not None and prior_components != self.config.prior_components:
            old = self.prior_net
            self.config = replace(self.config, prior_components=prior_components)
            self.info["config"]["prior_components"] = prior_components
            self.prior_net = Prior(self.config).to(self.device)
            if old.components == 1:
                self.prior_net.split_from(old)
        self.stage = Stage(stage)
        self.requires_grad_(self.stage is Stage.ALL)
        self.prior_net.requires_grad_(True)
        return self

    def param_groups(self, cfg) -> list[dict]:
        """The optimiser sees the stage's parameters only (FamilyTask asks for this)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": cfg.lr}]

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        return pooled_text(self.text_encoder, input_ids.to(self.device))

    def loss(self, batch):
        c = self.config
        x, text = batch["pixels"], self.encode_text(batch["input_ids"])
        mean, logvar = self.encoder(x, text)
        eps = torch.randn(mean.shape, generator=batch["generator"]).to(mean)
        z = mean + eps * (0.5 * logvar).exp()  # the reparameterisation trick
        kl = self.kl(z, eps, mean, logvar, text)
        pixels = x[0].numel()
        if self.stage is Stage.PRIOR:  # the reconstruction does not depend on the prior: skip the decoder
            return c.beta * kl.mean() / pixels, {"kl": kl.mean().item()}
        recon = ((self.decoder(z, text) - x) ** 2).flatten(1).sum(1) / (2 * c.pixel_sigma**2)
        loss = (recon + c.beta * kl).mean() / pixels  # per pixel, so learning rates carry across sizes
        return loss, {"recon": recon.mean().item() / pixels, "kl": kl.mean().item()}

    def kl(self, z, eps, mean, logvar, text) -> torch.Tensor:
        """KL(q(z | x, text) ‖ p(z | text)) [N]: closed form for one Gaussian, else log q(z) − log p(z)
        at the drawn z (an unbiased one-sample estimate)."""
        p_logits, p_mean, p_logvar = self.prior_net(text)
        if self.config.prior_components == 1:
            p_mean, p_logvar = p_mean[:, 0], p_logvar[:, 0]
            return 0.5 * (p_logvar - logvar + (logvar.exp() + (mean - p_mean) ** 2) / p_logvar.exp() - 1).sum(1)
        log_q = -0.5 * (eps**2 + logvar + math.log(2 * math.pi)).sum(1)
        return log_q - Prior.log_prob(z, p_logits, p_mean, p_logvar)

    # --- generation -----------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, noise: torch.Tensor, prompts: list[str], request: GenerationRequest | None = None,
               seeds: list[int] | None = None) -> torch.Tensor:
        """Unit noise [N, noise_dim] -> z ~ p(z | prompt) -> images [N, 3, H, W] (styled by `request`'s styles,
        shaken by its `chaos` with each of `seeds`' own noise)."""
        text = self.shaken(self.conditioning(prompts, request), request, seeds)
        logits, mean, logvar = self.prior_net(text)
        noise = noise.to(mean)
        if self.config.prior_components == 1:
            z = mean[:, 0] + noise * (0.5 * logvar[:, 0]).exp()
        else:
            z = Prior.draw(noise, logits, mean, logvar)
        return self.decoder(z, text)

    @property
    def noise_dim(self) -> int:
        """Unit noise per image: the latent's, plus one value that picks the mixture's component."""
        return self.config.latent_dim + (self.config.prior_components > 1)

    def noise(self, seeds: list[int], truncation: float | None = None) -> torch.Tensor:
        """ε ~ N(0, I) [N, noise_dim] from each image's seed, the latent part scaled by `truncation`
        (< 1: typical, less varied; a mixture's component is still picked by the seed; None: the config's)."""
        eps = seeded_normal(seeds, (self.noise_dim,))
        eps[:, :self.config.latent_dim] *= self.config.truncation if truncation is None else truncation
        return eps

    @torch.no_grad()
    def sample(self, request: GenerationRequest, seeds, batch_size=16, on_step=None, prompts=None):
        self.check_request(request)
        images = []
        for start, chunk, texts in prompt_batches(request, seeds, batch_size, prompts):
            images += to_pil(self.decode(self.noise(chunk, request.truncation), texts, request, chunk))
            if on_step is not None:
                on_step(start + len(chunk), len(seeds))
        return images

    @torch.no_grad()
    def interpolate(self, prompt: str, seed_a: int, seed_b: int, frames: int = 8) -> list:
        """Images along the great circle from seed_a's noise to seed_b's (slerp keeps the norm typical)."""
        a, b = self.noise([seed_a])[0], self.noise([seed_b])[0]
        return to_pil(self.decode(slerp(a, b, torch.linspace(0, 1, frames)), [prompt] * frames))

    def explain(self, prompt, seed):
        frames = self.interpolate(prompt, seed, seed + 1, frames=8)
        captions = [f"z = slerp(seed {seed}, seed {seed + 1}, {t:.2f})" for t in torch.linspace(0, 1, 8).tolist()]
        return frames, captions
