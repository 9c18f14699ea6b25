"""Latents of a whole dataset, encoded once by the frozen autoencoder and kept on disk for resumed runs.

The denoiser stage trains on latents, not pixels; once the autoencoder is frozen, re-encoding every
image at every step would be wasted work. The cache is valid while neither the dataset nor the
autoencoder changes: its fingerprint covers the dataset's metadata and every autoencoder weight.

Example:
    >>> import tempfile
    >>> from kaiga.data.dataset import load_pixels, read_metadata, write_scenes
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> d = write_scenes(tempfile.mkdtemp(), n=2)
    >>> m = LatentDiffusion.create(tiny_config())
    >>> cached_latents(m, load_pixels(read_metadata(d), 64), d, None).shape
    torch.Size([2, 4, 16, 16])
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from kaiga.data.dataset import METADATA, to_float

CACHE_FILE = "latents.safetensors"


def fingerprint(model, data: Path, pixels: torch.Tensor) -> str:
    """Identity of (dataset, images kept, autoencoder): the latents are valid while none changes (the pixels too:
    an opt-out list that leaves out other items changes the images, not metadata.jsonl)."""
    h = hashlib.sha256((Path(data) / METADATA).read_bytes())
    h.update(pixels.contiguous().cpu().numpy().tobytes())
    for name, t in sorted(model.vae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    h.update(str(model.scaling_factor).encode())
    return h.hexdigest()


@torch.no_grad()
def cached_latents(model, pixels: torch.Tensor, data: Path, cache_dir: Path | None) -> torch.Tensor:
    """Latents [N, C, h, w] of uint8 `pixels` [N, 3, H, W] (the images of dataset `data`), from `cache_dir` if valid."""
    key = fingerprint(model, data, pixels)
    cache = Path(cache_dir) / CACHE_FILE if cache_dir is not None else None
    if cache is not None and cache.exists():
        with safe_open(str(cache), "pt") as f:
            if f.metadata().get("fingerprint") == key:
                return f.get_tensor("latents")
    from rich.progress import track

    # a bar for a real dataset (40,000 images take some 13 minutes on two CPU threads); small ones take moments
    chunks = track(range(0, len(pixels), 128), description="encoding latents", disable=len(pixels) < 2048)
    latents = torch.cat([model.encode_images(to_float(pixels[i : i + 128])).float().cpu() for i in chunks])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_file({"latents": latents.contiguous()}, str(cache), metadata={"fingerprint": key})
    return latents
