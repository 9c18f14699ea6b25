"""A request's style mix (`--style "watercolor:0.7,neon:0.3"`) and `--stylize`, applied to text conditioning.

Other tools mix styles by joining their words into one prompt, where the longest template wins and a
weight cannot be given. kaiga mixes in the text encoder's output space: each part's styled prompt is
encoded on its own and the conditioning is

    c = c₀ + k · Σᵢ wᵢ (cᵢ − c₀)

with c₀ the unstyled prompt's, cᵢ style i's, and the negative prompt's conditioning mixed the same way.
The weights are shares: they are used as given while they sum to at most 1 (`watercolor:0.5` is half
of the way from the plain prompt to watercolor), and scaled down to sum to 1 otherwise; a name without
a weight weighs 1. `k` comes from `--stylize` (Midjourney's scale, 0 to 1000, default 100):
k = √(stylize / 100), so 0 draws the plain prompt, 100 the styles as written, 400 twice as far. It
sets guidance too, by the factor (1 + k) / 2 (0.5× at 0, 1× at 100, 2.1× at 1000): how strongly the
prompt, style included, steers a diffusion model. With no style and the default stylize nothing is
mixed, so images are exactly those of an unstyled request.

Example:
    >>> parse_spec("watercolor:0.7, neon:0.3")
    [('watercolor', 0.7), ('neon', 0.3)]
    >>> parse_spec("watercolor:x")
    Traceback (most recent call last):
    ...
    kaiga.styles.library.StyleError: style: at character 12 of 'watercolor:x': a share must be a number from 0 to 10 (got 'x')
    >>> stylize_strength(400), guidance_factor(100)
    (2.0, 1.0)
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable

from kaiga.request import RequestError, parse_style_spec
from kaiga.styles.library import Style, StyleError, find_style, load_library

log = logging.getLogger("kaiga")
DEFAULT_STYLIZE = 100


@dataclass(frozen=True)
class StyleMix:
    """Resolved styles with their shares (summing to at most 1)."""

    parts: tuple[tuple[Style, float], ...]

    def describe(self) -> str:
        """The canonical spec, as the image's record keeps it: `watercolor:0.7,neon:0.3`."""
        return ",".join(f"{s.name}:{w:g}" for s, w in self.parts)

    def heaviest(self) -> Style:
        return max(self.parts, key=lambda p: p[1])[0]


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """`name[:share],...` as (name, share) pairs (the request's own syntax check), as a StyleError."""
    try:
        return parse_style_spec(spec)
    except ValueError as e:
        raise StyleError(f"style: {e}") from None


def resolve(spec: str, library: dict[str, Style] | None = None) -> StyleMix | None:
    """The StyleMix of a request's `style` field ("" or None: no style)."""
    if not spec or not spec.strip():
        return None
    library = load_library() if library is None else library
    pairs = [(find_style(name, library), w) for name, w in parse_spec(spec)]
    total = sum(w for _, w in pairs)
    scale = 1 / total if total > 1 else 1.0
    return StyleMix(tuple((s, w * scale) for s, w in pairs))


def stylize_strength(stylize: int | None) -> float:
    """k = √(stylize / 100): how far the conditioning moves toward the styles."""
    return math.sqrt((DEFAULT_STYLIZE if stylize is None else stylize) / DEFAULT_STYLIZE)


def guidance_factor(stylize: int | None) -> float:
    """(1 + k) / 2: guidance's multiplier."""
    return (1 + stylize_strength(stylize)) / 2


def is_plain(style: str | None, stylize: int | None) -> bool:
    """Whether a request has nothing for this module to do (its images are the unstyled ones)."""
    return not (style or "").strip() and (stylize is None or stylize == DEFAULT_STYLIZE)


def mixed(encode: Callable[[list[str]], "object"], prompts: list[str], negative: str, mix: StyleMix | None,
          stylize: int | None):
    """(conditioning of the prompts [N, ...], of the negative prompt [1, ...]), styles mixed in.

    `encode(texts)` gives one row per text, every row the same shape (a diffusion model's text states
    padded to one length, a GAN's pooled vectors); it is called once, on every text at once.
    """
    parts = mix.parts if mix is not None else ()
    texts = list(prompts) + [negative]
    for style, _ in parts:
        styled = [style.apply(p, negative) for p in prompts]
        texts += [p for p, _ in styled] + [style.apply("", negative)[1]]
    rows = encode(texts)
    n = len(prompts) + 1
    base = rows[:n]
    k = stylize_strength(stylize)
    offset = sum(w * (rows[(i + 1) * n : (i + 2) * n] - base) for i, (_, w) in enumerate(parts)) if parts else 0
    out = base + k * offset
    return out[:-1], out[-1:]


def styled_prompts(prompts: list[str], request) -> list[str]:
    """Prompts with the request's style applied as text, for a model that conditions on the prompt's tokens
    themselves (the transformer family): it has no text vectors to mix, so a mix takes its heaviest style
    (said in the log), and stylize does not apply."""
    mix = resolve(getattr(request, "style", ""))
    if mix is None:
        return list(prompts)
    style = mix.heaviest()
    if len(mix.parts) > 1:
        log.warning("style: this model reads the prompt's words, not text vectors, so of %s it applies %s alone",
                    mix.describe(), style.name)
    return [style.apply(p)[0] for p in prompts]


def check_style(request) -> StyleMix | None:
    """The request's StyleMix, or a RequestError naming the style that does not exist (before any work)."""
    try:
        return resolve(getattr(request, "style", ""))
    except StyleError as e:
        raise RequestError(str(e)) from None
