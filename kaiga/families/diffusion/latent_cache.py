"""Training tasks of the latent diffusion family for the shared loop: the autoencoder, then the denoiser.

`AutoencoderTask` fits the VAE on a dataset folder. `DenoiserTask` encodes the whole dataset to
latents once (the encoder is frozen by then, so re-encoding every step would be wasted work), then
trains the UNet and the text encoder together on v-prediction.

Example:
    >>> import tempfile
    >>> from kaiga.data.dataset import write_scenes
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> d = write_scenes(tempfile.mkdtemp(), n=4)
    >>> task = DenoiserTask(LatentDiffusion.create(tiny_config()), d)
    >>> task.batch(0, 0, torch.Generator().manual_seed(0))["latents"].shape[1:]
    torch.Size([4, 16, 16])
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kaiga.data.captions import GRID_PROMPTS
from kaiga.data.dataset import METADATA, Example, load_pixels, read_metadata, to_float
from kaiga.families.diffusion.losses import decoder_loss, diffusion_loss, vae_loss
from kaiga.families.diffusion.model import LatentDiffusion
from kaiga.families.diffusion.denoise import denoise
from kaiga.families.diffusion.schedulers import alphas_cumprod, make_scheduler, timesteps_to_run
from kaiga.images import grid
from kaiga.train.loop import TrainTask, training_record

class _AutoencoderModule(torch.nn.Module):
    def __init__(self, vae, kl_weight: float, decoder_only: bool):
        super().__init__()
        self.vae, self.kl_weight, self.decoder_only = vae, kl_weight, decoder_only

    def forward(self, batch):
        if self.decoder_only:
            return decoder_loss(self.vae, batch["x"])
        return vae_loss(self.vae, batch["x"], self.kl_weight, batch["generator"])


class AutoencoderTask(TrainTask):
    """Fit the VAE of `model` to the images of a dataset folder.

    `decoder_only` freezes the encoder and sharpens the decoder alone: the latents stay exactly the
    same, so a diffusion model trained on them keeps working (as Stable Diffusion's ft-MSE VAE did).
    """

    def __init__(self, model: LatentDiffusion, data: Path, kl_weight: float = 1e-4, decoder_only: bool = False):
        self.model, self.decoder_only = model, decoder_only
        self.pixels = load_pixels(read_metadata(data), model.vae.config.sample_size)
        if decoder_only:
            model.vae.encoder.requires_grad_(False)
            model.vae.quant_conv.requires_grad_(False)
        self.module = _AutoencoderModule(model.vae, kl_weight, decoder_only)
        self.batch_size = 32

    def batch(self, step, rank, generator):
        idx = torch.randint(0, len(self.pixels), (self.batch_size,), generator=generator)
        return {"x": to_float(self.pixels[idx]), "generator": generator}

    def sample_grid(self, module, step):
        x = to_float(self.pixels[:8]).to(module.vae.device)
        rec = module.vae.decode(module.vae.encode(x).latent_dist.mode()).sample
        return grid(torch.cat([x, rec]))

    def export(self, state_dict, out):
        self.module.load_state_dict(state_dict)
        if self.decoder_only:  # same encoder, same latents: keep the scaling factor
            self.model.vae.save_pretrained(Path(out) / "vae")
            return
        # Scale latents to unit variance, as Stable Diffusion's 0.18215 does for its VAE.
        with torch.no_grad():
            z = torch.cat([self.model.vae.encode(to_float(self.pixels[i : i + 64]).to(self.model.vae.device)).latent_dist.mode()
                           for i in range(0, min(len(self.pixels), 1024), 64)])
        self.model.vae.register_to_config(scaling_factor=float(1.0 / z.std()))
        self.model.vae.save_pretrained(Path(out) / "vae")


def _fingerprint(model: LatentDiffusion, data: Path) -> str:
    """Identity of (dataset, autoencoder): the latents are valid while neither changes."""
    h = hashlib.sha256((data / METADATA).read_bytes())
    for name, t in sorted(model.vae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    h.update(str(model.scaling_factor).encode())
    return h.hexdigest()


def _cached_latents(model: LatentDiffusion, examples: list[Example], data: Path, cache_dir: Path | None) -> torch.Tensor:
    """Latents [N, C, h, w] of every image, encoded once and kept in `cache_dir` for resumed runs."""
    key = _fingerprint(model, data)
    cache = cache_dir / "latents.safetensors" if cache_dir is not None else None
    if cache is not None and cache.exists():
        with safe_open(str(cache), "pt") as f:
            if f.metadata().get("fingerprint") == key:
                return f.get_tensor("latents")
    pixels = load_pixels(examples, model.vae.config.sample_size)
    with torch.no_grad():
        latents = torch.cat([model.encode_images(to_float(pixels[i : i + 128])).cpu()
                             for i in range(0, len(pixels), 128)])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"latents": latents.contiguous()}, str(cache), metadata={"fingerprint": key})
    return latents


class _DenoiserModule(torch.nn.Module):
    def __init__(self, unet, text_encoder, alphas_cumprod: torch.Tensor):
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder
        self.alphas_cumprod = alphas_cumprod  # not a buffer: the schedule is config, not weights

    def forward(self, batch):
        states = self.text_encoder(batch["input_ids"])[0]
        loss = diffusion_loss(self.unet, self.alphas_cumprod, batch["latents"], states, batch["noise"], batch["t"])
        return loss, {}


class DenoiserTask(TrainTask):
    """Train UNet + text encoder of `model` on a dataset folder (its VAE stays frozen)."""

    def __init__(self, model: LatentDiffusion, data: Path, batch_size: int = 32, uncond_prob: float = 0.1,
                 cache_dir: Path | None = None):
        self.model, self.batch_size, self.uncond_prob, self.data = model, batch_size, uncond_prob, Path(data)
        examples = read_metadata(data)
        model.vae.requires_grad_(False).eval()
        self.latents = _cached_latents(model, examples, Path(data), cache_dir)
        # Every caption tokenized once: ids [N_captions, T], and which image each belongs to.
        captions = [c for ex in examples for c in ex.captions]
        self.owner = torch.tensor([i for i, ex in enumerate(examples) for _ in ex.captions])
        self.ids = model.tokenize(captions)
        self.empty_ids = model.tokenize([""])[0]
        alphas = alphas_cumprod(model.scheduler_config)
        self.num_timesteps = len(alphas)
        self.module = _DenoiserModule(model.unet, model.text_encoder, alphas)

    def batch(self, step, rank, generator):
        pick = torch.randint(0, len(self.ids), (self.batch_size,), generator=generator)
        ids = self.ids[pick].clone()
        drop = torch.rand(self.batch_size, generator=generator) < self.uncond_prob
        ids[drop] = self.empty_ids  # the unconditional branch of classifier-free guidance
        latents = self.latents[self.owner[pick]]
        return {
            "latents": latents,
            "input_ids": ids,
            "noise": torch.randn(latents.shape, generator=generator),
            "t": torch.randint(0, self.num_timesteps, (self.batch_size,), generator=generator),
        }

    def sample_grid(self, module, step):
        m = self.model
        cond = m.encode_text(m.tokenize(list(GRID_PROMPTS)))
        uncond = m.encode_text(m.tokenize([""] * len(GRID_PROMPTS)))
        gens = [torch.Generator().manual_seed(i) for i in range(len(GRID_PROMPTS))]
        noise = torch.stack([torch.randn(self.latents.shape[1:], generator=g) for g in gens]).to(m.device)
        sched = make_scheduler("ddim", m.scheduler_config)
        z = denoise(m.unet, sched, noise * sched.init_noise_sigma, timesteps_to_run(sched, 20, device=m.device),
                    cond, uncond, 3.0, gens)
        return grid(m.decode(z))

    def export(self, state_dict, out):
        self.module.load_state_dict(state_dict)
        self.model.info["training"] = training_record(self.model.info.get("training"), out, "denoiser", self.data.name)
        self.model.save(out, dtype=torch.float16)
