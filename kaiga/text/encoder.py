"""The text encoder every family conditions on: a small CLIP text transformer (transformers).

Diffusion cross-attends to all its token states; GAN and VAE use the pooled state (the `<eos>`
token's, as CLIP does), a single vector per prompt.

Example:
    >>> import torch
    >>> enc = build_text_encoder(TextConfig(hidden_size=32, layers=1, heads=2), vocab_size=10)
    >>> pooled_text(enc, torch.tensor([[2, 5, 3, 0]])).shape
    torch.Size([1, 32])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import CLIPTextConfig, CLIPTextModel

from kaiga.text.tokenizer import BOS_ID, EOS_ID, PAD_ID


@dataclass(frozen=True)
class TextConfig:
    hidden_size: int = 128
    layers: int = 3
    heads: int = 4
    max_length: int = 32  # tokens, including <bos> and <eos>
    # A pretrained, frozen encoder that the model names instead of carrying (kaiga/text/pretrained.py: a package,
    # a folder or a Hub id); "" = our own small CLIP text transformer above, trained with the model.
    pretrained: str = ""


def build_text_encoder(c: TextConfig, vocab_size: int) -> CLIPTextModel:
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=c.hidden_size,
            intermediate_size=4 * c.hidden_size,
            num_hidden_layers=c.layers,
            num_attention_heads=c.heads,
            max_position_embeddings=c.max_length,
            pad_token_id=PAD_ID,
            bos_token_id=BOS_ID,
            eos_token_id=EOS_ID,
        )
    )


def pooled_text(encoder: CLIPTextModel, input_ids: torch.Tensor) -> torch.Tensor:
    """One vector [N, D] per prompt: the final state at the `<eos>` token."""
    return encoder(input_ids).pooler_output
