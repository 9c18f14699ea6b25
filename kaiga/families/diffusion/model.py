"""The latent diffusion model: text encoder, denoising UNet and autoencoder, in the diffusers layout.

An `ImageGenerator` like the other families (the same verbs, the same contract tests), trained in
two stages on the shared loop: `autoencoder` (the VAE alone) and `denoiser` (UNet + text encoder
over the frozen VAE's latents, which `cached_inputs` encodes once per dataset). It overrides
`save`/`load` to keep the folder layout of a Stable Diffusion folder on the Hub:
`model_index.json`, `unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`, plus our
`kaiga.json` with the config and capabilities, so our default model and a real SD 1.x/2.x folder
load through the same `load()`. A model whose text encoder is pretrained and frozen (v6 on:
all-MiniLM-L6-v2, `kaiga/text/pretrained.py`) names it in kaiga.json (`config.text.pretrained`) and
holds no `text_encoder/` or `tokenizer/`: the weights stay in their package.

Example:
    >>> import tempfile
    >>> m = LatentDiffusion.create(tiny_config())
    >>> m.info["size_multiple"], m.info["edits"]
    (16, True)
    >>> m.save(tempfile.mkdtemp()).name.startswith("tmp")
    True
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from enum import Enum
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import AutoTokenizer, CLIPTextModel

from kaiga.capabilities import Capabilities
from kaiga.data.captions import vocabulary_words
from kaiga.families.base import KAIGA_JSON, ImageGenerator, config_from_dict
from kaiga.families.diffusion.config import (
    DiffusionConfig,
    TextConfig,
    UNetConfig,
    VAEConfig,
    build_text_encoder,
    build_unet,
    build_vae,
)
from kaiga.families.diffusion.folder import (COMPONENTS, component_dir, component_weights, download_info,
                                             named_text_encoder)
from kaiga.families.diffusion.schedulers import DEFAULT_SCHEDULER, alphas_cumprod
from kaiga.text.tokenizer import build_word_tokenizer

OUR_SAMPLERS = ["ddim", "euler", "euler-a", "dpm++2m"]  # LCM needs a consistency-distilled model
DISTILLED_SAMPLERS, DISTILLED_STEPS = ("lcm", "ddim"), 4  # a consistency student's (start_consistency)


def tiny_config() -> DiffusionConfig:
    """A few-hundred-kB model for tests: same code, small widths."""
    return DiffusionConfig(
        vae=VAEConfig(block_out_channels=(8, 8, 8), norm_num_groups=4),
        unet=UNetConfig(block_out_channels=(16, 16, 16), cross_attention_dim=32, attention_heads=2, norm_num_groups=8),
        text=TextConfig(hidden_size=32, layers=1, heads=2),
    )


def tiny_v6_config() -> DiffusionConfig:
    """v6's text side (the real pretrained encoder, 384-d) over tiny UNet and autoencoder widths, for tests."""
    from dataclasses import replace

    from kaiga.families.diffusion.config import v6_config

    tiny, v6 = tiny_config(), v6_config(latent_channels=4)
    return replace(tiny, text=v6.text, unet=replace(tiny.unet, cross_attention_dim=384))


class DiffusionStage(str, Enum):
    AUTOENCODER = "autoencoder"  # the VAE alone: reconstruction + KL (or the decoder alone, `decoder_only`)
    DENOISER = "denoiser"  # UNet + text encoder, v-prediction over the frozen VAE's latents
    CONSISTENCY = "consistency"  # a few-step student UNet distilled from a frozen copy of itself (consistency.py)


def _capabilities(unet, vae, native_size: int, max_size: int, samplers: list[str]) -> dict:
    """kaiga.json's capability keys of kaiga's own models: sizes divide by the VAE's and the UNet's downsampling
    (what they were trained and tested at; a Stable Diffusion download's are `download_info`'s)."""
    depth = len(vae.config.block_out_channels) - 1 + len(unet.config.block_out_channels) - 1
    return Capabilities(family="diffusion", native_size=native_size, max_size=max_size, size_multiple=2**depth,
                        samplers=tuple(samplers), edits=True, options=()).to_info()


class LatentDiffusion(ImageGenerator):
    """Components of a latent diffusion model plus the family's verbs."""

    family = "diffusion"
    config_class = DiffusionConfig
    stage = DiffusionStage.DENOISER

    def __init__(self, unet, vae, text_encoder, tokenizer, scheduler_config: dict, info: dict | None = None,
                 config: DiffusionConfig | None = None):
        super().__init__(config, tokenizer, info)
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder
        self.scheduler_config = dict(scheduler_config)
        self.decoder_only, self.kl_weight = False, 1e-4
        self.sharpening, self.perceptual = None, None  # the autoencoder stage's sharpening losses, when enabled

    # --- construction and files ---------------------------------------------------------------
    @classmethod
    def create(cls, config: DiffusionConfig | None = None, words: set[str] | None = None) -> LatentDiffusion:
        config = config or DiffusionConfig()
        unet, vae = build_unet(config.unet), build_vae(config.vae)
        info = _capabilities(unet, vae, config.vae.image_size, 256, OUR_SAMPLERS)
        if config.text.pretrained:  # named, not carried: loaded from its package, folder or Hub id, frozen
            from kaiga.text.frozen_encoder import load_text_encoder

            text_encoder, tokenizer = load_text_encoder(config.text.pretrained, config.text.max_length)
            return cls(unet, vae, text_encoder, tokenizer, DEFAULT_SCHEDULER, info, config)
        tokenizer = build_word_tokenizer(words or vocabulary_words(), config.text.max_length)
        return cls(unet, vae, build_text_encoder(config.text, len(tokenizer)), tokenizer, DEFAULT_SCHEDULER, info, config)

    @classmethod
    def load(cls, folder, dtype: torch.dtype = torch.float32) -> LatentDiffusion:
        """Load a diffusers-layout folder (ours or a Stable Diffusion one), offline."""
        folder = Path(folder)
        kw = {"torch_dtype": dtype, "local_files_only": True, "use_safetensors": True}
        # Each network from the files `component_weights` names (and the model hash covers): plain, else a variant.
        unet, vae = (
            net.from_pretrained(component_dir(folder, name), variant=component_weights(folder, name).variant, **kw)
            for name, net in (("unet", UNet2DConditionModel), ("vae", AutoencoderKL))
        )
        info_path = folder / KAIGA_JSON
        info = json.loads(info_path.read_text()) if info_path.exists() else None
        if source := named_text_encoder(folder):
            from kaiga.text.frozen_encoder import load_text_encoder

            length = int(info["config"]["text"].get("max_length", 32))
            text_encoder, tokenizer = load_text_encoder(source, length, dtype)
        else:
            weights = component_weights(folder, "text_encoder")
            text_encoder = CLIPTextModel.from_pretrained(component_dir(folder, "text_encoder"), variant=weights.variant,
                                                         **kw)
            tokenizer = AutoTokenizer.from_pretrained(component_dir(folder, "tokenizer"), local_files_only=True)
        scheduler_config = dict(DDPMScheduler.load_config(component_dir(folder, "scheduler"), local_files_only=True))
        return cls.from_components(unet, vae, text_encoder, tokenizer, scheduler_config, info)

    @classmethod
    def from_components(cls, unet, vae, text_encoder, tokenizer, scheduler_config: dict,
                        info: dict | None) -> LatentDiffusion:
        """A model of loaded modules, with its kaiga.json `info` or, for a folder or file from elsewhere
        (a Stable Diffusion download: None), SD's (`download_info`): every sampler, its autoencoder's size,
        sizes in multiples of 8, and diffusers' defaults (50 steps, guidance 7.5)."""
        if info is None:
            info = download_info(dict(vae.config))
        # kaiga.json files written before these keys: the same values a new model declares.
        info = {**_capabilities(unet, vae, int(info.get("native_size", 64)), int(info.get("max_size", 2048)),
                                info.get("samplers", OUR_SAMPLERS)), **info}
        config = config_from_dict(DiffusionConfig, info["config"]) if "config" in info else None
        return cls(unet, vae, text_encoder, tokenizer, scheduler_config, info, config).eval()

    def save(self, folder, dtype: torch.dtype | None = None) -> Path:
        """Write the diffusers layout; `dtype=torch.float16` halves the shipped size."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        named = getattr(self.text_encoder, "source", None)  # a pretrained encoder is named in kaiga.json, not copied
        for name in COMPONENTS:
            if name == "text_encoder" and named:
                continue
            module = getattr(self, name)
            # A converted copy: casting in place and back would round the weights still in use to `dtype`.
            module = copy.deepcopy(module).to(dtype) if dtype is not None else module
            module.save_pretrained(folder / name, safe_serialization=True)
        if not named:
            self.tokenizer.save_pretrained(folder / "tokenizer")
        DDPMScheduler.from_config(self.scheduler_config).save_pretrained(folder / "scheduler")
        index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
                 "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
                 "text_encoder": ["transformers", type(getattr(self.text_encoder, "model", self.text_encoder)).__name__],
                 "tokenizer": ["transformers", type(self.tokenizer).__name__],
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

    @property
    def text_length(self) -> int:
        """Tokens the text encoder reads at once, `<bos>` and `<eos>` included (77 for SD's CLIP, 32 for ours)."""
        return min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """Token ids [N, T], padded to the encoder's length as Stable Diffusion does."""
        enc = self.tokenizer(prompts, padding="max_length", max_length=self.text_length, truncation=True,
                             return_tensors="pt")
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

    def sample(self, request, seeds, batch_size=16, on_step=None, prompts=None):
        """One native-size image per seed (see `kaiga.families.diffusion.generate.sample`)."""
        from kaiga.families.diffusion.generate import sample

        return sample(self, request, seeds, batch_size, on_step, prompts)

    def edit(self, request, init, seeds, mask=None, batch_size=16, on_step=None):
        """Image → image (and inpainting with `mask`): one edit per seed (see `generate.edit`)."""
        from kaiga.families.diffusion.generate import edit

        return edit(self, request, init, seeds, mask, batch_size, on_step)

    def explain(self, prompt: str, seed: int, steps: int = 20, guidance: float = 3.0):
        """The denoising trajectory: the predicted clean image (x̂₀) after a few steps each."""
        from kaiga.families.diffusion.generate import trajectory

        return trajectory(self, prompt, seed, steps, guidance)

    # --- training (the family contract's stages, on the shared loop) ------------------------------
    def set_stage(self, stage: DiffusionStage | str, decoder_only: bool = False, kl_weight: float = 1e-4) -> None:
        """Train only `stage`'s modules; `decoder_only` (autoencoder) keeps the encoder, so the latents, fixed.

        A decoder-only run sharpens the decoder as Stable Diffusion's ft-MSE VAE did: a diffusion model
        trained on the old latents keeps working with it.
        """
        self.stage, self.decoder_only, self.kl_weight = DiffusionStage(stage), decoder_only, kl_weight
        self.requires_grad_(False)
        if self.stage is DiffusionStage.CONSISTENCY:
            raise ValueError("the consistency stage starts from a teacher: use start_consistency(teacher)")
        if self.stage is DiffusionStage.AUTOENCODER:
            self.vae.requires_grad_(True)
            if decoder_only:
                self.vae.encoder.requires_grad_(False)
                self.vae.quant_conv.requires_grad_(False)
        else:
            self.unet.requires_grad_(True)
            self.text_encoder.requires_grad_(True)
            self.vae.eval()

    def start_consistency(self, cfg=None, teacher: dict | None = None) -> None:
        """Distil this model into a few-step student (kaiga/families/diffusion/consistency.py): its UNet becomes
        the frozen teacher, a copy that reads the guidance scale becomes the UNet that trains, and a frozen EMA of
        it the target. The text encoder and autoencoder stay frozen; `save` writes the student alone, so the
        folder is a model of its own (sampled in 1 to 8 steps, guidance folded in). `teacher`: what its
        kaiga.json says it was distilled from (name, hash)."""
        from kaiga.families.diffusion.consistency import ConsistencyConfig, frozen_copy, make_student

        self.requires_grad_(False)
        self.stage, self.consistency = DiffusionStage.CONSISTENCY, cfg or ConsistencyConfig()
        self.teacher_unet = frozen_copy(self.unet)
        self.unet = make_student(self.teacher_unet).requires_grad_(True)
        self.target_unet = frozen_copy(self.unet)
        self._target_synced = False  # set from the student at the first step (a resumed run's student too)
        self.vae.eval()
        # what the student's folder says: few steps by default, the samplers that read its x̂₀ (LCM's multistep
        # consistency sampling, or DDIM's deterministic step from it), where it came from
        self.info = {**self.info, "samplers": list(DISTILLED_SAMPLERS), "folds_guidance": True,
                     "defaults": {**(self.info.get("defaults") or {}), "steps": DISTILLED_STEPS},
                     "distilled_from": teacher or {}}
        self.recipe = {"losses": "latent consistency distillation (pseudo-Huber)", **asdict(self.consistency)}

    def enable_sharpening(self, cfg, perceptual) -> None:
        """Train the autoencoder with a perceptual distance and a patch discriminator (`sharpening.py`).

        `cfg`: a SharpeningConfig; `perceptual`: its PerceptualDistance (a frozen network, not part of the
        model's state). The discriminator becomes a submodule, so checkpoints keep it and a run resumes it;
        `save` writes only the diffusers components, so it never ships.
        """
        from kaiga.families.diffusion.sharpening import PatchDiscriminator

        self.sharpening, self.perceptual = cfg, perceptual
        self.discriminator = PatchDiscriminator(cfg.disc_width)
        # what the run's training record says of its losses (kaiga.json "training")
        self.recipe = {"losses": "l1 + perceptual (judge trunk) + kl + patch-gan hinge", **asdict(cfg),
                       "kl_weight": self.kl_weight}

    def cached_inputs(self, pixels: torch.Tensor, data: Path, cache_dir: Path | None) -> dict | None:
        """The denoiser trains on latents: every image of dataset `data` encoded once (and kept in `cache_dir`)."""
        if self.stage not in (DiffusionStage.DENOISER, DiffusionStage.CONSISTENCY):
            return None
        from kaiga.families.diffusion.latent_cache import cached_latents

        return {"latents": cached_latents(self, pixels, data, cache_dir)}

    def loss(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """The stage's loss on a batch: `pixels` [B, 3, H, W] (or the denoiser's cached `latents`), `input_ids`."""
        from kaiga.families.diffusion.losses import decoder_loss, diffusion_loss, vae_loss

        g = batch["generator"]
        if self.stage is DiffusionStage.AUTOENCODER:
            x = batch["pixels"].to(self.vae.device)
            if self.sharpening is not None:
                from kaiga.families.diffusion.sharpening import sharp_vae_loss

                return sharp_vae_loss(self.vae, self.discriminator, self.perceptual.to(x.device), x,
                                      int(batch.get("step", 0)), self.sharpening, self.kl_weight, g)
            return decoder_loss(self.vae, x) if self.decoder_only else vae_loss(self.vae, x, self.kl_weight, g)
        latents = batch.get("latents")
        if latents is None:
            with torch.no_grad():
                latents = self.encode_images(batch["pixels"])
        if self.stage is DiffusionStage.CONSISTENCY:
            return self._consistency_loss(latents, batch["input_ids"], g), {}
        alphas = self._training_schedule()
        noise = torch.randn(latents.shape, generator=g).to(latents)
        t = torch.randint(0, len(alphas), (len(latents),), generator=g).to(latents.device)
        states = self.text_encoder(batch["input_ids"].to(self.device))[0]
        return diffusion_loss(self.unet, alphas, latents, states, noise, t), {}

    def _consistency_loss(self, latents: torch.Tensor, input_ids: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        from kaiga.families.diffusion.consistency import consistency_loss, update_target

        if not self._target_synced:
            self.target_unet.load_state_dict(self.unet.state_dict())
            self._target_synced = True
        else:  # the target trails the student: its EMA, after the previous optimiser step
            update_target(self.target_unet, self.unet, self.consistency.target_decay)
        with torch.no_grad():
            states = self.text_encoder(input_ids.to(self.device))[0]
            empty = self.text_encoder(self.tokenize([""]).to(self.device))[0].expand(len(latents), -1, -1)
        return consistency_loss(self.unet, self.teacher_unet, self.target_unet, self._training_schedule(), latents,
                                states, empty, self.consistency, g)

    def _training_schedule(self) -> torch.Tensor:
        """ᾱ_t of the training schedule, built once (not at every step) and rebuilt only if the config changes."""
        key = repr(sorted(self.scheduler_config.items()))
        if getattr(self, "_schedule_key", None) != key:
            self._schedule, self._schedule_key = alphas_cumprod(self.scheduler_config), key
        return self._schedule

    def training_grid(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """The autoencoder stage shows renders [8] above their reconstructions; the denoiser, samples (None)."""
        if self.stage is not DiffusionStage.AUTOENCODER:
            return None
        x = pixels.to(self.vae.device)
        return torch.cat([x, self.vae.decode(self.vae.encode(x).latent_dist.mode()).sample])

    @property
    def export_dtype(self) -> torch.dtype | None:
        """An autoencoder run is saved in float32: the denoiser stage encodes its data with exactly these weights."""
        return None if self.stage is DiffusionStage.AUTOENCODER else torch.float16

    @torch.no_grad()
    def finish_training(self, pixels: torch.Tensor) -> None:
        """After a full autoencoder run: scale latents to unit variance, as Stable Diffusion's 0.18215 does.

        `pixels`: float [N, 3, H, W] in [-1, 1], the first images of the dataset. A decoder-only run keeps
        the encoder, so the latents and their scale stay as they were.
        """
        if self.stage is not DiffusionStage.AUTOENCODER or self.decoder_only:
            return
        z = torch.cat([self.vae.encode(pixels[i : i + 64].to(self.vae.device)).latent_dist.mode()
                       for i in range(0, len(pixels), 64)])
        self.vae.register_to_config(scaling_factor=float(1.0 / z.std()))

