"""The `vae` family: a conditional VAE (Kingma & Welling, 2014; Sohn et al., 2015) over 64×64 pixels.

The encoder reads an image and its caption into a Gaussian q(z | image, text) over a latent vector
z; the decoder draws the image back from z and the caption. A prior network gives p(z | text), the
conditional prior of Sohn et al.: with the fixed N(0, I) prior a decoder that learns to read
everything from z ignores the caption, and samples then ignore the prompt. Training minimises
reconstruction error plus β·KL(q ‖ p) (Higgins et al., 2017: β trades sharp reconstructions against
samples that look like the data). Generation draws z from p(z | prompt) and decodes it.
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

from dataclasses import dataclass, field

import torch
from torch import nn

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


class Prior(nn.Module):
    """Text vector -> (mean, log-variance) of p(z | text)."""

    def __init__(self, c: VAEFamilyConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(c.text.hidden_size, 2 * c.latent_dim), nn.SiLU(),
                                 nn.Linear(2 * c.latent_dim, 2 * c.latent_dim))

    def forward(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(text).chunk(2, dim=1)
        return mean, logvar.clamp(-12, 8)


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

    def __init__(self, config: VAEFamilyConfig, tokenizer, info: dict | None = None):
        super().__init__(config, tokenizer, {"native_size": config.image_size, "max_size": config.image_size, **(info or {})})
        self.text_encoder = build_text_encoder(config.text, len(tokenizer))
        self.encoder = Encoder(config)
        self.prior_net = Prior(config)
        self.decoder = Decoder(config)

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        return pooled_text(self.text_encoder, input_ids.to(self.device))

    def loss(self, batch):
        c = self.config
        x, text = batch["pixels"], self.encode_text(batch["input_ids"])
        mean, logvar = self.encoder(x, text)
        eps = torch.randn(mean.shape, generator=batch["generator"]).to(mean)
        z = mean + eps * (0.5 * logvar).exp()  # the reparameterisation trick
        recon = ((self.decoder(z, text) - x) ** 2).flatten(1).sum(1) / (2 * c.pixel_sigma**2)
        p_mean, p_logvar = self.prior_net(text)
        kl = 0.5 * (p_logvar - logvar + (logvar.exp() + (mean - p_mean) ** 2) / p_logvar.exp() - 1).sum(1)
        pixels = x[0].numel()
        loss = (recon + c.beta * kl).mean() / pixels  # per pixel, so learning rates carry across sizes
        return loss, {"recon": recon.mean().item() / pixels, "kl": kl.mean().item()}

    @torch.no_grad()
    def decode(self, noise: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        """Unit noise [N, latent_dim] -> z ~ p(z | prompt) -> images [N, 3, H, W]."""
        text = self.encode_text(self.tokenize(prompts))
        mean, logvar = self.prior_net(text)
        return self.decoder(mean + noise.to(mean) * (0.5 * logvar).exp(), text)

    def noise(self, seeds: list[int], truncation: float | None = None) -> torch.Tensor:
        """ε ~ N(0, I) from each image's seed, scaled by `truncation` (< 1: typical, less varied)."""
        return seeded_normal(seeds, (self.config.latent_dim,)) * (1.0 if truncation is None else truncation)

    @torch.no_grad()
    def sample(self, request: GenerationRequest, seeds, batch_size=16, on_step=None, prompts=None):
        self.check_request(request)
        images = []
        for start, chunk, texts in prompt_batches(request, seeds, batch_size, prompts):
            images += to_pil(self.decode(self.noise(chunk, request.truncation), texts))
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
