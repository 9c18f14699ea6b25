"""The reranker: a small contrastive text-image model (CLIP, Radford et al., 2021), DALL-E's last step.

DALL-E draws many candidates per caption and keeps those a contrastive model scores highest
(Ramesh et al., 2021, §2.5). Here an image CNN (kaiga's `DownBlock` stack) and a CLIP text
transformer (transformers, via `kaiga.text.encoder`) each map into a shared `embed_dim` space;
training is the symmetric InfoNCE loss with a learned temperature (CLIP's Figure 3 pseudocode).
This model belongs to the family and is trained with it; it is deliberately separate from the
evaluation's readout network (`kaiga.eval.readout`), which judges every family and must not be
what a family optimises for.

Example:
    >>> import torch
    >>> from kaiga.families.transformer.config import ScorerConfig
    >>> from kaiga.text.encoder import TextConfig
    >>> s = ContrastiveScorer(ScorerConfig(channels=(4, 4, 4, 4), embed_dim=8,
    ...                                    text=TextConfig(hidden_size=16, layers=1, heads=2)), vocab_size=10, text_length=6)
    >>> s.similarity(torch.zeros(3, 3, 64, 64), torch.tensor([[2, 5, 3, 0, 0, 0]] * 3)).shape
    torch.Size([3])
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from kaiga.families.transformer.config import ScorerConfig
from kaiga.nn.blocks import DownBlock
from kaiga.text.encoder import build_text_encoder, pooled_text


class ContrastiveScorer(nn.Module):
    """Image [N, 3, 64, 64] and caption ids [N, T] -> unit vectors in one space; cosine = agreement."""

    def __init__(self, c: ScorerConfig, vocab_size: int, text_length: int, image_size: int = 64):
        super().__init__()
        ch = c.channels
        self.conv_in = nn.Conv2d(3, ch[0], 3, padding=1)
        self.downs = nn.Sequential(*(DownBlock(a, b, norm=True) for a, b in zip((ch[0],) + ch[:-1], ch)))
        side = image_size // 2 ** len(ch)
        self.image_proj = nn.Linear(ch[-1] * side * side, c.embed_dim)
        self.text_encoder = build_text_encoder(replace(c.text, max_length=text_length), vocab_size)
        self.text_proj = nn.Linear(c.text.hidden_size, c.embed_dim, bias=False)
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature 0.07

    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_proj(self.downs(self.conv_in(pixels)).flatten(1)), dim=-1)

    def embed_texts(self, input_ids: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(pooled_text(self.text_encoder, input_ids)), dim=-1)

    def similarity(self, pixels: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Cosine similarity [N] of image i with caption i."""
        return (self.embed_images(pixels) * self.embed_texts(input_ids)).sum(-1)

    def loss(self, pixels: torch.Tensor, input_ids: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Symmetric InfoNCE over the batch: image i's caption is the positive, the others negatives.

        A batch drawn with replacement may hold the same image twice; its second caption then counts
        as a negative. With thousands of scenes this is rare enough to ignore.
        """
        img, txt = self.embed_images(pixels), self.embed_texts(input_ids)
        scale = self.log_scale.clamp(max=math.log(100)).exp()  # CLIP clips the scale at 100
        logits = scale * img @ txt.T  # [N, N]
        target = torch.arange(len(img), device=img.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        accuracy = (logits.argmax(1) == target).float().mean().item()
        return loss, {"contrastive": loss.item(), "accuracy": accuracy, "scale": scale.item()}
