"""The `transformer` family: VQ tokenizer + GPT prior + contrastive reranker (DALL-E), see `model.py`."""

from kaiga.families.transformer.config import Stage, TransformerConfig
from kaiga.families.transformer.model import DalleTransformer

__all__ = ["DalleTransformer", "Stage", "TransformerConfig"]
