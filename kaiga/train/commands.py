"""What `kaiga train <family>` does for each family: build the model, the task, and run the loop.

Kept apart from the CLI so that scripts and tests train the same way the command does.

Example:
    >>> diffusion_config("tiny").unet.block_out_channels
    (16, 16, 16)
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL

from kaiga.data.admit import Admission
from kaiga.families.base import KAIGA_JSON
from kaiga.families.diffusion.config import DiffusionConfig, v6_config
from kaiga.families.diffusion.model import DiffusionStage, LatentDiffusion, tiny_config
from kaiga.families.diffusion.sharpening import PerceptualDistance, SharpeningConfig
from kaiga.families.registry import family_class
from kaiga.train.family_task import FamilyTask
from kaiga.train.loop import LoopConfig, train

DENOISER_UNCOND_PROB = 0.1  # share of empty captions: the unconditional branch of classifier-free guidance


def diffusion_config(size: str) -> DiffusionConfig:
    """The preset `size`: default (v5's architecture), v6 (the pretrained text encoder, a 16×16×8 latent) or tiny."""
    if size == "tiny":
        return tiny_config()
    if size == "default":
        return DiffusionConfig()
    if size == "v6":
        return v6_config()
    raise ValueError(f"size must be default, v6 or tiny, not {size!r}")


def _load_vae(path: Path) -> AutoencoderKL:
    """An AutoencoderKL from its folder, a model folder or an autoencoder run (both hold `vae/`)."""
    path = Path(path)
    if (path / "vae").is_dir():
        path = path / "vae"
    return AutoencoderKL.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32)


def train_autoencoder(data: Path, out: Path, loop: LoopConfig, size: str = "default", resume: bool = False,
                      init: Path | None = None, decoder_only: bool = False, admission: Admission | None = None,
                      perceptual: PerceptualDistance | None = None, sharpening: SharpeningConfig = SharpeningConfig(),
                      latent_channels: int | None = None, kl_weight: float = 1e-4) -> dict:
    """Fit the latent autoencoder; writes a model folder to `out` whose `vae/` the denoiser stage takes.

    `init` starts from a trained autoencoder; with `decoder_only` its encoder (so its latents) stays fixed.
    `admission` (every train_* function): the checked items (kaiga/data/admit.py); default `admit(data)`.
    `perceptual` (a PerceptualDistance over the judge's features) turns on the sharpening losses of
    `sharpening` (perceptual distance + patch discriminator); without it, the pixel loss alone (v5's recipe).
    `latent_channels` replaces the size preset's (the latent is 16×16×C at 64²).
    """
    config = diffusion_config(size)
    if latent_channels is not None:
        config = replace(config, vae=replace(config.vae, latent_channels=latent_channels),
                         unet=replace(config.unet, latent_channels=latent_channels))
    model = LatentDiffusion.create(config)
    if init is not None:
        model.vae = _load_vae(init)
    elif decoder_only:
        raise ValueError("decoder-only training needs --init: the autoencoder whose encoder to keep")
    model.set_stage(DiffusionStage.AUTOENCODER, decoder_only=decoder_only, kl_weight=kl_weight)
    if perceptual is not None:
        model.enable_sharpening(sharpening, perceptual)
    task = FamilyTask(model, data, batch_size=loop.batch_size, admission=admission, card_from=_folders(init))
    return train(task, loop, out, resume=resume)


def _folders(*paths: Path | None) -> tuple[Path, ...]:
    """The model folders among `paths` whose cards a new model's card continues (given an autoencoder's `vae/`
    folder, the run folder above it, which holds the card)."""
    folders = [Path(p) for p in paths if p is not None]
    return tuple(p if (p / KAIGA_JSON).is_file() or not (p.parent / KAIGA_JSON).is_file() else p.parent
                 for p in folders)


def train_denoiser(data: Path, out: Path, vae: Path | None, loop: LoopConfig, size: str = "default",
                   resume: bool = False, init: Path | None = None, admission: Admission | None = None) -> dict:
    """Train UNet + text encoder over a frozen autoencoder; writes a model folder to `out`.

    From scratch (`size` preset, autoencoder from `vae`), or fine-tuning the model folder `init`
    (its own autoencoder unless `vae` is given): the way to continue the shipped model or adapt it
    to your own images.
    """
    if init is not None:
        model = LatentDiffusion.load(init, dtype=torch.float32)
    elif vae is None:
        raise ValueError("--vae is needed when training from scratch (or give --init MODEL to fine-tune)")
    else:
        model = LatentDiffusion.create(diffusion_config(size))
    if vae is not None:
        model.vae = _load_vae(vae)
    if torch.cuda.is_available():
        model.to("cuda")  # the task encodes every image once with the frozen autoencoder: on the GPU when there is one
    model.set_stage(DiffusionStage.DENOISER)
    task = FamilyTask(model, data, batch_size=loop.batch_size, uncond_prob=DENOISER_UNCOND_PROB,
                      cache_dir=Path(out) / "cache", admission=admission, card_from=_folders(init, vae))
    return train(task, loop, out, resume=resume)


def train_consistency(data: Path, out: Path, teacher: Path, loop: LoopConfig, resume: bool = False,
                      admission: Admission | None = None, consistency=None) -> dict:
    """Distil the model folder `teacher` into a few-step student (latent consistency distillation,
    kaiga/families/diffusion/consistency.py) on dataset `data`'s latents and captions; writes its folder to `out`."""
    from kaiga.model_files import model_hash, resolve_model

    model = LatentDiffusion.load(teacher, dtype=torch.float32)
    if torch.cuda.is_available():
        model.to("cuda")
    ref = resolve_model(str(teacher))
    model.start_consistency(consistency, {"model": ref.name, "model_hash": model_hash(ref),
                                          "version": model.info.get("version")})
    task = FamilyTask(model, data, batch_size=loop.batch_size, cache_dir=Path(out) / "cache", admission=admission,
                      card_from=_folders(teacher))
    return train(task, loop, out, resume=resume)


def model_family(folder: Path) -> str:
    """The family named in a model folder's kaiga.json."""
    return json.loads((Path(folder) / KAIGA_JSON).read_text()).get("family", "diffusion")


def family_config(family: str, size: str):
    """The config preset `size` (default or tiny) of a non-diffusion family."""
    cls = family_class(family).config_class
    if size == "tiny":
        return cls.tiny()
    if size == "default":
        return cls()
    raise ValueError(f"size must be tiny or default, not {size!r}")


def train_family(family: str, data: Path, out: Path, loop: LoopConfig, size: str = "default", resume: bool = False,
                 init: Path | None = None, uncond_prob: float = 0.0, stage: str | None = None,
                 loss_options: dict | None = None, stage_options: dict | None = None,
                 admission: Admission | None = None) -> dict:
    """Train a gan, vae or transformer model on a dataset folder; writes the model folder to `out`.

    From scratch (`size` preset) or continuing the model folder `init` (fine-tuning, or the next
    stage of a transformer: tokenizer, then scorer, then prior); a gan may start from a vae folder.
    `loss_options` replace config fields that shape the loss only, never the architecture (the vae's
    `beta`), so a continued run may change them.
    `stage_options` go to the family's `set_stage` (the vae's `prior_components`, which replaces its prior).
    """
    cls = family_class(family)
    if init is None:
        model = cls.create(family_config(family, size))
    elif family == "gan" and model_family(init) == "vae":  # a VAE-GAN start: the generator is the VAE's decoder
        model = cls.from_vae(family_class("vae").load(init))
    else:
        model = cls.load(init)
    if loss_options:
        model.config = replace(model.config, **loss_options)
        model.info["config"] = asdict(model.config)
    if stage is not None:
        model.set_stage(stage, **(stage_options or {}))  # freezes every part but the stage's
    task = FamilyTask(model, data, batch_size=loop.batch_size, uncond_prob=uncond_prob, admission=admission,
                      card_from=_folders(init))
    return train(task, loop, out, resume=resume)
