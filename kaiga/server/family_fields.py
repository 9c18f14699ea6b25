"""The options of the gan, vae and transformer families as HTTP body fields, shared by both APIs.

The OpenAI-compatible and the A1111-compatible bodies inherit them, so a client of either API sets
them the same way; their ranges are checked once, by `GenerationRequest`.

Example:
    >>> class Body(FamilyOptionFields):
    ...     prompt: str
    >>> family_options(Body(prompt="a red car", truncation=0.5))
    {'truncation': 0.5, 'temperature': None, 'top_k': None, 'top_p': None, 'candidates': None}
"""

from __future__ import annotations

from pydantic import BaseModel

from kaiga.request import FAMILY_OPTIONS


class FamilyOptionFields(BaseModel):
    truncation: float | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    candidates: int | None = None


def family_options(body: FamilyOptionFields) -> dict:
    """The family options of a body as request fields (None: the family's default)."""
    return {name: getattr(body, name) for name in FAMILY_OPTIONS}
