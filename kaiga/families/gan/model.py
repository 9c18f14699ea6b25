"""The `gan` family: a text-conditional GAN over 64×64 RGB images, trained on the shared loop.

Parts, each in its own module: `generator.Generator` ([z; text] -> image), `discriminator.
ProjectionDiscriminator` (image, text -> logit), `losses` (hinge loss, R1), `augment` (DiffAugment).
This module wires them to the caption encoder (`kaiga.text.encoder`, one pooled vector per prompt)
and to the family contract of `kaiga.families.base`.

One optimiser, one backward. The shared loop (`kaiga.train.loop`) takes one AdamW step on the
gradient of one scalar per batch, so `loss` returns d_loss + g_loss written so that each player gets
only its own gradient (the simultaneous-gradient form of the GAN game):
  - D's term sees the fake images *detached*, so no gradient reaches G from it;
  - G's term runs D with its parameters *detached* (`torch.func.functional_call`), so no gradient
    reaches D from it, while the fake images still carry G's gradient through D's maths.
`param_groups` gives G and D their own Adam groups (β = (0, 0.99), no weight decay, as StyleGAN2).

The loop keeps an exponential moving average of every weight and exports the averages: the saved
model's generator is therefore the EMA generator (Karras et al. 2018, §A.1; BigGAN), which makes
visibly better images than the raw one. (D's averages are saved too; nothing reads them: the loop's
checkpoint keeps the trained D for resuming.)

Example:
    >>> from kaiga.request import GenerationRequest
    >>> m = TextGAN.create(GANConfig.tiny())
    >>> [im] = m.sample(GenerationRequest(prompt="a red car"), seeds=[3])
    >>> im.size
    (64, 64)
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.func import functional_call

from kaiga.families.base import ImageGenerator, prompt_batches, seeded_normal
from kaiga.families.gan.augment import AugmentConfig, diff_augment
from kaiga.families.gan.discriminator import ProjectionDiscriminator
from kaiga.families.gan.generator import Generator, image_side
from kaiga.nn.latent import slerp
from kaiga.families.gan.losses import GANLoss, d_loss, g_loss, r1_penalty
from kaiga.images import to_pil
from kaiga.request import GenerationRequest
from kaiga.text.encoder import TextConfig, build_text_encoder, pooled_text


@dataclass(frozen=True)
class GANConfig:
    image_size: int = 64
    z_dim: int = 64
    # G's maps at 4…64 px. Wider than the CPU-trained (128, 96, 48, 24, 16), still inside the real-time budget
    # (≤ 5 ms/image at batch 16 on 2 CPU cores, `kaiga eval families`); trained on a GPU (scripts/train_gpu.sh).
    g_channels: tuple[int, ...] = (256, 160, 96, 48, 16)
    g_convs: int = 1  # 3×3 convolutions per generator block
    g_mapping: bool = False  # z' = μ(text) + σ(text)·z before the generator (`Generator`); set by `from_vae`
    d_channels: tuple[int, ...] = (32, 64, 128, 256)  # D's feature maps at 32, 16, 8, 4 px (D costs nothing at generation)
    d_features: int = 256  # size of D's feature vector h (the projection's inner product space)
    text: TextConfig = field(default_factory=lambda: TextConfig(hidden_size=128, layers=2, heads=4))
    loss: GANLoss = GANLoss.HINGE
    r1_gamma: float = 0.1  # weight γ/2·‖∇D‖² of R1; StyleGAN2-ADA's rule 2e-4·px²/batch gives 0.03 here
    r1_every: int = 16  # lazy regularisation (StyleGAN2 §B): R1 every k steps, weighted ×k
    d_lr_ratio: float = 1.0  # D's learning rate over G's (TTUR, Heusel et al. 2017, if ≠ 1)
    # Matching-aware D (Reed et al., 2016, GAN-CLS): real images with another image's caption count as fake, with
    # this share of D's fake term; teaches D to read the caption, not only realism. 0 = off.
    mismatch: float = 0.0
    betas: tuple[float, float] = (0.0, 0.99)  # Adam's β₁ = 0: momentum fights the moving GAN target
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    freeze_text: bool = False  # keep the (pretrained) text encoder fixed: G's input does not drift under D's loss

    def __post_init__(self):
        object.__setattr__(self, "loss", GANLoss(self.loss))  # kaiga.json stores the enum's value
        if image_side(self.g_channels) != self.image_size:
            raise ValueError(f"g_channels: {len(self.g_channels)} entries make {image_side(self.g_channels)} px "
                             f"images, not image_size={self.image_size}; give one entry per size 4, 8, …, "
                             f"{self.image_size}")
        if self.r1_every < 1:
            raise ValueError(f"r1_every: must be at least 1 (got {self.r1_every})")

    @classmethod
    def tiny(cls) -> "GANConfig":
        return cls(z_dim=8, g_channels=(8, 8, 8, 8, 8), d_channels=(8, 8, 8, 8), d_features=16,
                   text=TextConfig(hidden_size=16, layers=1, heads=2), r1_every=2)


class TextGAN(ImageGenerator):
    """Text encoder + generator + projection discriminator; `loss` trains both players at once."""

    family = "gan"
    config_class = GANConfig
    request_options = ("truncation",)

    def __init__(self, config: GANConfig, tokenizer, info: dict | None = None):
        super().__init__(config, tokenizer, {"native_size": config.image_size, "max_size": config.image_size,
                                             **(info or {})})
        c = config
        self.text_encoder = build_text_encoder(c.text, len(tokenizer))
        self.generator = Generator(c.z_dim, c.text.hidden_size, c.g_channels, c.g_convs, c.g_mapping)
        self.discriminator = ProjectionDiscriminator(c.text.hidden_size, c.d_channels, c.d_features, c.image_size)
        self.text_encoder.requires_grad_(not c.freeze_text)
        # Training steps seen by `loss`, to schedule the lazy R1 penalty. A plain attribute, not saved:
        # a resumed run restarts the R1 phase at 0, which changes nothing but which steps carry R1.
        self.steps_seen = 0

    @classmethod
    def from_vae(cls, vae) -> "TextGAN":
        """A GAN whose generator starts as a trained conditional VAE's decoder (a VAE-GAN start, Larsen
        et al., 2016): the VAE's text encoder (kept frozen), its Gaussian prior as the generator's
        mapping, its decoder as the generator; the discriminator starts untrained. Adversarial training
        then sharpens what the VAE draws blurred. `vae` is a `ConditionalVAE` with one prior component."""
        v = vae.config
        if v.prior_components != 1:
            raise ValueError(f"a GAN starts from a VAE with a one-Gaussian prior (this one has {v.prior_components})")
        config = cls.config_class(image_size=v.image_size, z_dim=v.latent_dim,
                                  g_channels=v.channels[::-1] + v.channels[:1],
                                  g_convs=2, g_mapping=True, text=v.text, freeze_text=True)
        gan = cls(config, vae.tokenizer, {"training": vae.info.get("training")})
        gan.text_encoder.load_state_dict(vae.text_encoder.state_dict())
        gan.generator.mapping.load_state_dict(vae.prior_net.net.state_dict())
        missing, unexpected = gan.generator.load_state_dict(vae.decoder.state_dict(), strict=False)
        assert not unexpected and all(k.startswith("mapping.") for k in missing), (missing, unexpected)
        return gan

    # --- training -------------------------------------------------------------------------------
    def param_groups(self, cfg) -> list[dict]:
        """G's and D's Adam groups for the shared loop (`cfg` is its LoopConfig: cfg.lr is G's rate).

        The text encoder belongs to D: it is trained only through D's loss (see `player_losses`).
        """
        c = self.config
        common = {"betas": tuple(c.betas), "weight_decay": 0.0}
        d_params = list(self.discriminator.parameters()) + [p for p in self.text_encoder.parameters() if p.requires_grad]
        return [{"params": list(self.generator.parameters()), "lr": cfg.lr, **common},
                {"params": d_params, "lr": cfg.lr * c.d_lr_ratio, **common}]

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        return pooled_text(self.text_encoder, input_ids.to(self.device))

    def loss(self, batch):
        """d_loss + g_loss: one scalar whose gradient is D's loss for D and G's loss for G (see `player_losses`)."""
        loss_d, loss_g, logs = self.player_losses(batch)
        return loss_d + loss_g, logs

    def player_losses(self, batch) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(D's loss, G's loss, logs). D's loss has no gradient w.r.t. G's parameters, nor G's loss
        w.r.t. D's or the text encoder's, so their sum trains each player on its own objective."""
        c = self.config
        real, g = batch["pixels"], batch["generator"]  # real: [B, 3, S, S] in [-1, 1]
        text = self.encode_text(batch["input_ids"])  # [B, D]
        # The generator reads the caption vector detached: the text encoder is trained by D's loss
        # alone. Otherwise G's loss would also move the encoder (that D relies on to judge captions)
        # towards wherever fakes score well, and the encoder would play for both sides of the game.
        text_g = text.detach()
        z = torch.randn(len(real), c.z_dim, generator=g).to(real)  # drawn on the CPU: same on any device
        fake = diff_augment(self.generator(z, text_g), c.augment, g)  # DiffAugment: same kinds for both

        # R1 is lazy: on every r1_every-th step, weighted ×r1_every (StyleGAN2 §B). Its gradient is
        # taken w.r.t. the un-augmented reals, through the augmentation (as StyleGAN2-ADA).
        self.steps_seen += self.training
        lazy_r1 = (self.training and torch.is_grad_enabled() and c.r1_gamma > 0
                   and self.steps_seen % c.r1_every == 0)
        real = real.detach().requires_grad_(lazy_r1)
        real_logits = self.discriminator(diff_augment(real, c.augment, g), text)  # [B]
        fake_logits = self.discriminator(fake.detach(), text)  # D's term: no gradient into G
        wrong_logits = None
        if c.mismatch > 0 and len(real) > 1:
            # each real image with the next one's caption (a batch of random scenes: nearly always a wrong one)
            wrong_logits = self.discriminator(diff_augment(real.detach(), c.augment, g), text.roll(1, dims=0))
        adversarial_d = d_loss(c.loss, real_logits, fake_logits, wrong_logits, c.mismatch)
        r1 = r1_penalty(real_logits, real) if lazy_r1 else real_logits.new_zeros(())
        loss_d = adversarial_d + (c.r1_gamma / 2) * c.r1_every * r1

        # G's term: the same D maths on frozen copies of D's parameters, so its gradient reaches G
        # (through `fake`) and never D. With D's term above, one backward gives each player its own
        # gradient: the simultaneous-gradient form of the two-player game.
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        loss_g = g_loss(c.loss, functional_call(self.discriminator, frozen, (fake, text_g)))

        logs = {"d_loss": adversarial_d.item(), "g_loss": loss_g.item(), "r1": r1.item(),
                "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item()}
        return loss_d, loss_g, logs

    # --- generation -----------------------------------------------------------------------------
    def latents(self, seeds: list[int], truncation: float | None = None) -> torch.Tensor:
        """z ~ N(0, I) [N, Z] from each image's seed, scaled by `truncation` (BigGAN's truncation trick
        in its scaling form: < 1 gives more typical, less varied images; 0 the one "mean" image)."""
        return seeded_normal(seeds, (self.config.z_dim,)) * (1.0 if truncation is None else truncation)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, prompts: list[str], request: GenerationRequest | None = None,
                 seeds: list[int] | None = None) -> torch.Tensor:
        """Images [N, 3, S, S] in [-1, 1] for latents z [N, Z] and one prompt each (styled by `request`'s styles,
        shaken by its `chaos` with each of `seeds`' own noise)."""
        unique = list(dict.fromkeys(prompts))  # a request repeats one prompt: encode it once
        text = self.conditioning(unique, request).to(self.dtype)
        text = text[torch.tensor([unique.index(p) for p in prompts], device=text.device)]
        text = self.shaken(text, request, seeds)
        return self.generator(z.to(self.device, self.dtype), text)

    @contextmanager
    def _eval_mode(self):
        """Generate in eval mode (the text encoder's dropout off), then restore the training mode."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    @torch.no_grad()
    def sample(self, request: GenerationRequest, seeds, batch_size=16, on_step=None, prompts=None):
        self.check_request(request)
        images = []
        with self._eval_mode():
            for start, chunk, texts in prompt_batches(request, seeds, batch_size, prompts):
                images += to_pil(self.generate(self.latents(chunk, request.truncation), texts, request, chunk))
                if on_step is not None:
                    on_step(start + len(chunk), len(seeds))
        return images

    @torch.no_grad()
    def interpolate(self, prompt: str, seed_a: int, seed_b: int, frames: int = 8) -> list:
        """Images along the great circle from seed_a's latent to seed_b's, for one prompt."""
        a, b = self.latents([seed_a, seed_b])
        with self._eval_mode():
            return to_pil(self.generate(slerp(a, b, torch.linspace(0, 1, frames)), [prompt] * frames))

    def explain(self, prompt, seed):
        """A latent walk: a GAN makes an image in one pass, so what there is to show is how the picture
        changes as z moves from this seed's noise to the next seed's (the caption stays fixed)."""
        ts = torch.linspace(0, 1, 8).tolist()
        frames = self.interpolate(prompt, seed, seed + 1, frames=8)
        captions = [f"z = slerp(seed {seed}, seed {seed + 1}, t={t:.2f})" for t in ts]
        captions[0], captions[-1] = f"seed {seed}'s image", f"seed {seed + 1}'s image"
        return frames, captions
