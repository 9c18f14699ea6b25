"""The latent diffusion model: text encoder, denoising UNet and autoencoder, in the diffusers layout.

A folder holds `model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`
(the layout of a Stable Diffusion folder on the Hub), plus our `kaiga.json` with what the model
supports. Our default model and a real SD 1.x/2.x folder therefore load through `load()`.

Example:
    >>> import tempfile
    >>> m = LatentDiffusion.create(tiny_config())
    >>> m.save(tempfile.mkdtemp()).name.startswith("tmp")
    True
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextModel

from kaiga.data.captions import vocabulary_words
from kaiga.families.diffusion.config import (
    DiffusionConfig,
    TextConfig,
    UNetConfig,
    VAEConfig,
    build_text_encoder,
    build_unet,
    build_vae,
)
from kaiga.families.diffusion.schedulers import DEFAULT_SCHEDULER, alphas_cumprod
from kaiga.text.tokenizer import build_word_tokenizer

KAIGA_JSON = "kaiga.json"


def tiny_config() -> DiffusionConfig:
    """A few-hundred-kB model for tests: same code, small widths."""
    return DiffusionConfig(
        vae=VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4),
        unet=UNetConfig(block_out_channels=(16, 16, 16), cross_attention_dim=32, attention_heads=2, norm_num_groups=8),
        text=TextConfig(hidden_size=32, layers=1, heads=2),
    )


class LatentDiffusion(torch.nn.Module):
    """Components of a latent diffusion model plus the few verbs the pipelines need."""

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, info: dict | None = None):
        super().__init__()
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.tokenizer = tokenizer
        self.scheduler_config = dict(scheduler_config)
        self.info = dict(info or {})

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def create(cls, config: DiffusionConfig, words: set[str] | None = None) -> "LatentDiffusion":
        tokenizer = build_word_tokenizer(words or vocabulary_words(), config.text.max_length)
        info = {"family": "diffusion", "config": asdict(config), "samplers": ["ddim", "euler", "euler-a", "dpm++2m"],
                "max_size": 256, "native_size": config.vae.image_size}
        return cls(build_unet(config.unet), build_vae(config.vae), build_text_encoder(config.text, len(tokenizer)),
                   tokenizer, DEFAULT_SCHEDULER, info)

    @classmethod
    def load(cls, folder, dtype: torch.dtype = torch.float32) -> "LatentDiffusion":
        """Load a diffusers-layout folder (ours or a Stable Diffusion one), offline."""
        folder = Path(folder)
        kw = {"torch_dtype": dtype, "local_files_only": True}
        unet = UNet2DConditionModel.from_pretrained(folder / "unet", **kw)
        vae = AutoencoderKL.from_pretrained(folder / "vae", **kw)
        text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", **kw)
        tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer", local_files_only=True)
        scheduler_config = dict(DDPMScheduler.load_config(folder / "scheduler", local_files_only=True))
        info_path = folder / KAIGA_JSON
        info = json.loads(info_path.read_text()) if info_path.exists() else {
            "family": "diffusion", "samplers": ["ddim", "euler", "euler-a", "dpm++2m", "lcm"],
            "native_size": vae.config.sample_size if isinstance(vae.config.sample_size, int) else 512,
            "max_size": 2048,
        }
        return cls(unet, vae, text_encoder, tokenizer, scheduler_config, info).eval()

    def save(self, folder, dtype: torch.dtype | None = None) -> Path:
        """Write the diffusers layout; `dtype=torch.float16` halves the shipped size."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("unet", "vae", "text_encoder"):
            module = getattr(self, name)
            orig = next(module.parameters()).dtype
            if dtype is not None:
                module.to(dtype)
            module.save_pretrained(folder / name, safe_serialization=True)
            module.to(orig)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        DDPMScheduler.from_config(self.scheduler_config).save_pretrained(folder / "scheduler")
        index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
                 "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                 "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
                 "scheduler": ["diffusers", "DDPMScheduler"], "safety_checker": [None, None],
                 "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False}
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
        (folder / KAIGA_JSON).write_text(json.dumps(self.info, indent=2))
        return folder

    # --- verbs ----------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent, each side: 2 per downsampling block of the autoencoder."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids [N, T], padded to the encoder's length as Stable Diffusion does."""
        max_len = min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)
        enc = self.tokenizer(prompts, padding="max_length", max_length=max_len, truncation=True, return_tensors="pt")
        return enc.input_ids

    def encode_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Text states [N, T, D] for cross-attention."""
        return self.text_encoder(input_ids.to(self.device))[0]

    def encode_images(self, x: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """Pixels [N, 3, H, W] in [-1, 1] -> scaled latents [N, C, H/f, W/f]."""
        dist = self.vae.encode(x.to(self.device, self.dtype)).latent_dist
        z = dist.sample(generator) if sample else dist.mode()
        return z * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> pixels [N, 3, H, W] in [-1, 1]."""
        return self.vae.decode(latents / self.scaling_factor).sample.clamp(-1, 1)

    # --- the family contract (kaiga.families.base) ----------------------------------------------
    family = "diffusion"

    def forward(self, batch: dict):
        return self.loss(batch)

    def sample(self, request, seeds, batch_size=16, on_step=None, prompts=None):
        """One native-size image per seed (see `kaiga.families.diffusion.generate`)."""
        from kaiga.families.diffusion.generate import sample

        return sample(self, request, seeds, batch_size, on_step, prompts)

    def edit(self, request, init, seeds, mask=None, batch_size=16, on_step=None):
        """Image → image (and inpainting with `mask`): one edit per seed (see `generate.edit`)."""
        from kaiga.families.diffusion.generate import edit

        return edit(self, request, init, seeds, mask, batch_size, on_step)

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """v-prediction loss of UNet + text encoder on a pixel batch (the autoencoder stays frozen).

        Training encodes a dataset to latents once (`DenoiserTask`); this per-batch form is the
        contract's, so one test suite can hold every family to the same verbs.
        """
        from kaiga.families.diffusion.losses import diffusion_loss

        g = batch["generator"]
        with torch.no_grad():
            latents = self.encode_images(batch["pixels"])
        alphas = alphas_cumprod(self.scheduler_config)
        noise = torch.randn(latents.shape, generator=g).to(latents)
        t = torch.randint(0, len(alphas), (len(latents),), generator=g)
        states = self.text_encoder(batch["input_ids"].to(self.device))[0]
        return diffusion_loss(self.unet, alphas, latents, states, noise, t), {}

    def explain(self, prompt: str, seed: int, steps: int = 20, guidance: float = 3.0):
        """The denoising trajectory: the predicted clean image (x̂₀) after a few steps each."""
        from kaiga.families.diffusion.generate import trajectory

        return trajectory(self, prompt, seed, steps, guidance)
