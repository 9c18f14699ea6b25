"""Configs of the `transformer` family (DALL-E: Ramesh et al., 2021): tokenizer, prior, reranker.

One frozen dataclass per part, nested in `TransformerConfig`, so `kaiga.json` describes the whole
architecture and `config_from_dict` rebuilds it. The training stage is not part of the config: it
is what a run does to a model, not what the model is (`Stage`, set on the model).

Example:
    >>> c = TransformerConfig.tiny()
    >>> c.vq.grid(c.image_size), c.sequence_length
    (8, 89)
    >>> Stage("prior")
    <Stage.PRIOR: 'prior'>
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from kaiga.text.encoder import TextConfig


class Stage(str, Enum):
    """Which part a training run updates; DALL-E trains them one after another, in this order."""

    TOKENIZER = "tokenizer"  # the VQ autoencoder: pixels <-> an 8×8 grid of codes
    PRIOR = "prior"  # the GPT over [caption tokens; <boi>; image codes], the VQ frozen
    SCORER = "scorer"  # the contrastive reranker (DALL-E's CLIP step), independent of the others


STAGE_ORDER = (Stage.TOKENIZER, Stage.PRIOR, Stage.SCORER)  # the prior needs the tokenizer's codes


@dataclass(frozen=True)
class VQConfig:
    """A diffusers `VQModel`: len(channels) blocks, each but the last halving the side."""

    # 64 -> 8 pixels: 3 down-samplings. (8, 16, 32, 64), sized for training on one CPU thread (~380 ms/step
    # at batch 32), lost shapes and colours in its reconstructions; this width is trained on a GPU
    # (scripts/train_gpu.sh), and decoding 64 codes costs little at generation time.
    channels: tuple[int, ...] = (32, 64, 128, 128)
    layers_per_block: int = 1
    norm_groups: int = 8
    latent_channels: int = 32
    embed_dim: int = 32  # width of a codebook vector
    codebook_size: int = 512
    mid_attention: bool = False  # self-attention at 8×8 in the middle block; costly on CPU for little gain here
    restart_dead_codes: bool = True  # re-seed unused codes from the batch's encoder outputs (Jukebox, §3.2)

    def grid(self, image_size: int) -> int:
        """Codes per side."""
        return image_size // 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class GPTConfig:
    """A transformers GPT-2 decoder (the prior p(image codes | caption))."""

    # 4 layers of 192 fit one CPU thread (~430 ms/step at batch 32); this size is trained on a GPU
    # (scripts/train_gpu.sh). Generation pays per token: 64 steps with a KV cache.
    n_layer: int = 6
    n_embd: int = 256
    n_head: int = 8
    dropout: float = 0.0  # small model, many synthetic scenes: no need to regularise by default
    text_loss_weight: float = 0.0  # DALL-E weighted text / image cross-entropy 1/8 : 7/8; 0 = image only


@dataclass(frozen=True)
class ScorerConfig:
    """The contrastive reranker: a DownBlock CNN and a CLIP text transformer meeting in `embed_dim`."""

    channels: tuple[int, ...] = (32, 64, 96, 128)  # feature maps at 32, 16, 8, 4 pixels
    embed_dim: int = 128
    text: TextConfig = field(default_factory=lambda: TextConfig(hidden_size=128, layers=2, heads=4))


@dataclass(frozen=True)
class SamplingDefaults:
    """What a request's `None` means for this family.

    Measured on the shipped model (`kaiga eval alignment`, docs/EVAL.md): temperature 1 → 0.7 → 0.5
    took seen alignment 0.527 → 0.562 → 0.579, and reranking 4 draws at 0.5 took it to 0.610, at
    4× the sampling time. DALL-E reranks by default too (512 draws by CLIP).
    """

    temperature: float = 0.5
    top_k: int = 64  # of the codebook's entries; 0 = all
    top_p: float = 1.0  # 1 = off
    candidates: int = 4  # draws per image, the best by the scorer kept


@dataclass(frozen=True)
class TransformerConfig:
    image_size: int = 64
    text_length: int = 24  # caption tokens incl. <bos>/<eos>, padded (99% of scenes captions fit)
    vq: VQConfig = field(default_factory=VQConfig)
    gpt: GPTConfig = field(default_factory=GPTConfig)
    scorer: ScorerConfig = field(default_factory=ScorerConfig)
    sampling: SamplingDefaults = field(default_factory=SamplingDefaults)

    @property
    def image_tokens(self) -> int:
        return self.vq.grid(self.image_size) ** 2

    @property
    def sequence_length(self) -> int:
        """Positions of the GPT: caption, <boi>, image codes."""
        return self.text_length + 1 + self.image_tokens

    @classmethod
    def tiny(cls) -> "TransformerConfig":
        return cls(
            vq=VQConfig(channels=(8, 8, 8, 8), norm_groups=4, latent_channels=4, embed_dim=4, codebook_size=16),
            gpt=GPTConfig(n_layer=1, n_embd=16, n_head=2),
            scorer=ScorerConfig(channels=(4, 4, 4, 4), embed_dim=8, text=TextConfig(hidden_size=16, layers=1, heads=2)),
        )
