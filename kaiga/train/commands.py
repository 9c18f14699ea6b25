"""What `kaiga train <family>` does for each family: build the model, the task, and run the loop.

Kept apart from the CLI so that scripts and tests train the same way the command does.

Example:
    >>> sorted(FAMILIES)
    ['diffusion', 'vae-autoencoder']
"""

from __future__ import annotations

from pathlib import Path

from diffusers import AutoencoderKL

from kaiga.families.diffusion.config import DiffusionConfig
from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.families.diffusion.train import AutoencoderTask, DenoiserTask
from kaiga.train.loop import LoopConfig, train

FAMILIES = ("diffusion", "vae-autoencoder")


def diffusion_config(size: str) -> DiffusionConfig:
    if size == "tiny":
        return tiny_config()
    if size == "default":
        return DiffusionConfig()
    raise ValueError(f"size must be tiny or default, not {size!r}")


def train_autoencoder(data: Path, out: Path, loop: LoopConfig, size: str = "default", resume: bool = False) -> dict:
    """Fit the latent autoencoder; writes `out/vae/` (a diffusers AutoencoderKL folder)."""
    model = LatentDiffusion.create(diffusion_config(size))
    task = AutoencoderTask(model, data)
    task.batch_size = loop.batch_size
    return train(task, loop, out, resume=resume)


def train_denoiser(data: Path, out: Path, vae: Path, loop: LoopConfig, size: str = "default",
                   resume: bool = False) -> dict:
    """Train UNet + text encoder over the frozen autoencoder at `vae`; writes a model folder to `out`."""
    model = LatentDiffusion.create(diffusion_config(size))
    vae_dir = Path(vae)
    if (vae_dir / "vae").is_dir():  # a model folder or an autoencoder run: take its vae/
        vae_dir = vae_dir / "vae"
    model.vae = AutoencoderKL.from_pretrained(vae_dir, local_files_only=True)
    task = DenoiserTask(model, data, batch_size=loop.batch_size)
    return train(task, loop, out, resume=resume)
