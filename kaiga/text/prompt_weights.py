"""AUTOMATIC1111's prompt weighting: `(word:1.3)`, `(word)` ×1.1, `[word]` ÷1.1, `\\(` a literal bracket.

`parse_weights` splits a prompt into spans of plain text, each with the product of the weights of
the brackets around it; `plain_text` is the prompt as the tokenizer should read it (so the `1.3` of
`(red:1.3)` is not taken for words, nor its 3 for a count). How the weights reach the image is the
family's business: the diffusion family scales the text encoder's states (A1111's way, see
`kaiga.families.diffusion.prompt_encoding`); the other families read the plain text only.

The syntax, as A1111's `parse_prompt_attention`:
- `(text)` multiplies the weights inside by 1.1, `[text]` divides them by 1.1; they nest, so
  `((text))` is ×1.21;
- `(text:w)` multiplies them by w (any decimal, `(text:0.5)` weighs down);
- `\\(`, `\\)`, `\\[`, `\\]`, `\\\\` are the characters themselves;
- a closing bracket without its opening one is plain text; an opening one never closed weighs
  everything after it (×1.1 or ÷1.1), as A1111 does.
Not supported (read as plain text): prompt editing `[from:to:when]`, alternation `[a|b]`, `BREAK`.

Hand-written: the one library that parses weighted prompts, compel (MIT), has its own syntax
(`word++`, `(word)1.3`) rather than A1111's, applies weights by blending with a masked prompt
rather than A1111's scaling, and brings pyparsing and a torch/diffusers pipeline with it; the
A1111 grammar is a few brackets, parsed below in forty lines of pure Python.

Example:
    >>> [(s.text, round(s.weight, 3)) for s in parse_weights("a (red:1.3) car, [fog]")]
    [('a ', 1.0), ('red', 1.3), (' car, ', 1.0), ('fog', 0.909)]
    >>> plain_text(r"((sunset)), \\(night\\)")
    'sunset, (night)'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROUND, SQUARE = 1.1, 1 / 1.1  # A1111's weights of (text) and [text]

# One piece of a prompt: an escaped character, a bracket, a `:weight)` closing, or a run of other text.
_PIECE = re.compile(
    r"""
    \\(?P<escaped>[\\()\[\]])               # \( \) \[ \] \\ : the character itself
    | :\s*(?P<weight>[+-]?(?:\d+\.?\d*|\.\d+))\s*\)   # the end of (text:1.3)
    | (?P<bracket>[()\[\]])
    | (?P<text>[^\\()\[\]:]+|[\\:])          # anything else; a lone backslash or colon is text
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Span:
    text: str
    weight: float = 1.0


def parse_weights(prompt: str) -> list[Span]:
    """The prompt as spans of plain text with their weights (adjacent spans of equal weight merged)."""
    spans: list[list] = []  # [text, weight], weights multiplied in place as brackets close
    opened: dict[str, list[int]] = {"(": [], "[": []}  # index in `spans` where each open bracket started

    def weigh(start: int, factor: float) -> None:
        for span in spans[start:]:
            span[1] *= factor

    for m in _PIECE.finditer(prompt):
        if m["bracket"] in ("(", "["):
            opened[m["bracket"]].append(len(spans))
        elif m["weight"] is not None and opened["("]:
            weigh(opened["("].pop(), float(m["weight"]))
        elif m["bracket"] == ")" and opened["("]:
            weigh(opened["("].pop(), ROUND)
        elif m["bracket"] == "]" and opened["["]:
            weigh(opened["["].pop(), SQUARE)
        else:  # text, an escaped character, or a closing bracket (or `:w)`) with nothing open
            spans.append([m["escaped"] or m.group(0), 1.0])
    for start in opened["("]:  # never closed: weighs the rest, as in A1111
        weigh(start, ROUND)
    for start in opened["["]:
        weigh(start, SQUARE)

    merged: list[Span] = []
    for text, weight in spans:
        if merged and merged[-1].weight == weight:
            merged[-1] = Span(merged[-1].text + text, weight)
        elif text:
            merged.append(Span(text, weight))
    return merged or [Span("", 1.0)]


def plain_text(prompt: str) -> str:
    """The prompt without its weighting syntax: the words a tokenizer should read."""
    return "".join(span.text for span in parse_weights(prompt))


def is_plain(prompt: str) -> bool:
    """Whether the prompt has no weighting syntax at all (it reads exactly as written)."""
    spans = parse_weights(prompt)
    return len(spans) == 1 and spans[0].weight == 1.0 and spans[0].text == prompt
