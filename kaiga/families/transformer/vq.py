"""The image tokenizer: a diffusers `VQModel` (van den Oord et al., 2017) turning 64×64 pixels into
an 8×8 grid of codebook indices and back.

DALL-E's dVAE has the same role (pixels <-> a grid of discrete tokens the prior can model). The
network, quantizer and commitment loss are diffusers'; hand-written here are only the index helpers
(diffusers returns indices flattened) and the dead-code restart: a codebook initialised near zero
leaves most entries unused, and re-seeding an unused entry with an encoder output from the batch
(Dhariwal et al., 2020, Jukebox §3.2) keeps the whole codebook in play.

Example:
    >>> import torch
    >>> from kaiga.families.transformer.config import VQConfig
    >>> c = VQConfig(channels=(8, 8, 8, 8), norm_groups=4, latent_channels=4, embed_dim=4, codebook_size=16)
    >>> vq = build_vq(c)
    >>> codes = encode_codes(vq, torch.zeros(2, 3, 64, 64))
    >>> codes.shape, decode_codes(vq, codes).shape
    (torch.Size([2, 64]), torch.Size([2, 3, 64, 64]))
"""

from __future__ import annotations

import torch
from diffusers import VQModel

from kaiga.families.transformer.config import VQConfig


def build_vq(c: VQConfig) -> VQModel:
    n = len(c.channels)
    return VQModel(
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=c.channels,
        layers_per_block=c.layers_per_block,
        norm_num_groups=c.norm_groups,
        latent_channels=c.latent_channels,
        vq_embed_dim=c.embed_dim,
        num_vq_embeddings=c.codebook_size,
        mid_block_add_attention=c.mid_attention,
    )


def encode_latents(vq: VQModel, pixels: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> pre-quantisation latents [N, D, h, w]."""
    return vq.encode(pixels).latents


def latents_to_codes(vq: VQModel, h: torch.Tensor) -> torch.Tensor:
    """[N, D, h, w] -> the nearest codebook indices [N, h·w], row-major (the prior's reading order)."""
    _, _, (_, _, idx) = vq.quantize(h)
    return idx.view(len(h), -1)


def encode_codes(vq: VQModel, pixels: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> codes [N, h·w]."""
    return latents_to_codes(vq, encode_latents(vq, pixels))


def decode_codes(vq: VQModel, codes: torch.Tensor) -> torch.Tensor:
    """codes [N, h·w] (a square grid) -> pixels [N, 3, H, W]; quantised vectors looked up directly."""
    side = int(round(codes.shape[1] ** 0.5))
    shape = (len(codes), side, side, vq.quantize.vq_embed_dim)  # [N, h, w, D], as diffusers wants it
    quant = vq.quantize.get_codebook_entry(codes.reshape(-1), shape)
    return vq.decode(quant, force_not_quantize=True).sample


@torch.no_grad()
def restart_dead_codes(vq: VQModel, usage: torch.Tensor, h: torch.Tensor, codes: torch.Tensor,
                       generator: torch.Generator, decay: float = 0.95, threshold: float = 0.02) -> int:
    """Update the running code `usage` (share of positions per code) and re-seed the dead entries.

    An entry whose running share falls under `threshold` / codebook size is replaced by a random
    encoder output of this batch (`h`, [N, D, h, w]); returns how many were replaced.
    """
    n_codes = usage.numel()
    counts = torch.bincount(codes.reshape(-1), minlength=n_codes).to(usage) / codes.numel()
    usage.mul_(decay).add_(counts, alpha=1 - decay)
    dead = (usage < threshold / n_codes).nonzero().flatten()
    if len(dead):
        vectors = h.permute(0, 2, 3, 1).reshape(-1, h.shape[1])
        pick = torch.randint(0, len(vectors), (len(dead),), generator=generator).to(vectors.device)
        vq.quantize.embedding.weight[dead] = vectors[pick].to(vq.quantize.embedding.weight)
        usage[dead] = 1.0 / n_codes  # give the new entry time to be used before judging it again
    return len(dead)
