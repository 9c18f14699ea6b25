"""Generation steered by a person's taste (`--personalize USER`): the prompt moved toward what they liked, then
the best of several candidates by their taste.

1. The prompt shift. Where the prompt leaves an attribute open (no style, no time of day, no weather, no place,
   an object without a colour), the person's taste picks the value they like most, if they like it clearly
   more than the others (by `STEER_MARGIN` in the taste's units, a logit: e^1.5 ≈ 4.5 to 1 that they prefer an
   image with it), and its words join the prompt: "a car in the city" becomes "a blue car in the city, neon"
   for someone who likes blue cars and neon. The text encoder turns those words into the shift of the prompt's
   embedding toward what they liked; done in words, it is visible in the record and stays out of what the
   prompt asked for (a red car is never made blue).
2. The rerank. Each image is the best of `candidates` (default 4) made with other seeds, by the person's taste
   on the judge's reading of each (kaiga/taste/features.py). Candidate 0 of image i has the seed image i would
   have had unpersonalised, so `--candidates 1` is the prompt shift alone.

Example:
    >>> from kaiga.taste.features import feature_names
    >>> import numpy as np
    >>> names = feature_names()
    >>> theta = np.zeros(len(names))
    >>> theta[names.index("style=neon")] = 3.0
    >>> theta[names.index("colour_a=blue")] = 2.0
    >>> shifted_prompt("a car in the city", theta, names)
    ('a blue car in the city, neon', ['colour=blue', 'style=neon'])
    >>> shifted_prompt("a red car in the city at night, neon", theta, names)[1]
    []
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Callable

import numpy as np

from kaiga.data import captions as c
from kaiga.data.world import COLOURS, OBJECTS
from kaiga.request import MAX_SEED, GenerationRequest
from kaiga.taste.features import features
from kaiga.taste.model import TasteModel

STEER_MARGIN = 1.5
CANDIDATES = 4
# The attributes a prompt can leave open, with every way our captions say each value (to see what is said)
# and the words that ask for it (the first phrase that says something).
OPEN_SLOTS = {"scene": (c.SCENE_PHRASES, c.SCENE_TAGS), "weather": (c.WEATHER_PHRASES, c.WEATHER_TAGS),
              "time": (c.TIME_PHRASES, c.TIME_TAGS), "style": (c.STYLE_PHRASES, {})}
# Words that say a default value, which the captions leave unsaid: "in daylight" asks for day as "at night" does
SAYS_DEFAULT = {"time": ("day", "daytime", "daylight"), "weather": ("clear", "sunny"), "style": ("plain",)}


def _says(prompt: str, phrase: str) -> bool:
    return bool(phrase) and re.search(rf"\b{re.escape(phrase.lower())}\b", prompt) is not None


def _said(prompt: str, head: str) -> bool:
    phrases, tags = OPEN_SLOTS[head]
    said = [p for v in phrases for p in (*phrases[v], *tags.get(v, ()))]
    return any(_says(prompt, p) for p in (*said, *SAYS_DEFAULT.get(head, ())))


def _best(theta: np.ndarray, names: list[str], labels: list[str]) -> tuple[str, float]:
    """The label whose weight is highest, and by how much it beats the mean of the others."""
    weights = np.array([theta[names.index(label)] for label in labels])
    top = int(np.argmax(weights))
    return labels[top].split("=", 1)[1], float(weights[top] - np.delete(weights, top).mean())


def _coloured(match: re.Match, colour: str) -> str:
    """'a car' -> 'a blue car', 'an apple'-style articles fixed for the colour ('an orange car')."""
    article = match.group(1)
    if article:
        article = ("an " if colour[0] in "aeiou" else "a ") if article.lower() in ("a ", "an ") else article
    return f"{article or ''}{colour} {match.group(2)}"


def shifted_prompt(prompt: str, theta: np.ndarray, names: list[str]) -> tuple[str, list[str]]:
    """The prompt with the liked values of what it leaves open; and those values as 'head=value'."""
    lowered, added, out = prompt.lower(), [], prompt
    thing = next((o for o in OBJECTS if _says(lowered, o) or _says(lowered, o + "s")), None)
    if thing and not any(_says(lowered, hue) for hue in COLOURS):
        weights = theta.copy()
        for hue in COLOURS:  # the colour of this kind of object: blue cars, not blue things
            weights[names.index(f"colour_a={hue}")] += theta[names.index(f"thing={hue} {thing}")]
        colour, margin = _best(weights, names, [f"colour_a={hue}" for hue in COLOURS])
        if margin >= STEER_MARGIN:
            out = re.sub(rf"\b(a |an )?({thing}s?)\b", lambda m: _coloured(m, colour), out, count=1,
                         flags=re.IGNORECASE)
            added.append(f"colour={colour}")
    for head, (phrases, _) in OPEN_SLOTS.items():
        if _said(lowered, head):
            continue
        value, margin = _best(theta, names, [f"{head}={v}" for v in phrases])
        words = next((p for p in phrases[value] if p), "")
        if margin >= STEER_MARGIN and words:
            out = f"{out}, {words}" if head == "style" else f"{out} {words}"
            added.append(f"{head}={value}")
    return out, added


@dataclass(frozen=True)
class Personalised:
    prompt: str  # the shifted prompt
    added: list[str]  # what the shift added, 'head=value'
    chosen: list[int]  # per image: which candidate won


def generate_personalised(studio, request: GenerationRequest, taste: TasteModel, person: str, candidates: int = CANDIDATES,
                          on_step: Callable[[int, int], None] | None = None,
                          record_extra: dict | None = None) -> tuple[list, Personalised]:
    """`request`'s images for `person`: the prompt shifted to their taste, each image the best of `candidates`.
    Returns the images (GeneratedImage, records saying `extra.personalize` beside `record_extra`) and what was done."""
    theta = taste.of(person)
    prompt, added = shifted_prompt(request.prompt, theta, taste.names)
    first = request.seed if request.seed is not None else secrets.randbelow(MAX_SEED + 1)
    note = {"personalize": {"person": person, "ratings": taste.ratings.get(person, 0), "added": added,
                            "candidates": candidates, "prompt_asked": request.prompt}} | (record_extra or {})
    rounds = []
    for j in range(candidates):  # round j: seeds first + j*n ... (round 0: the seeds of the plain request)
        report = None if on_step is None else (lambda done, total, j=j: on_step(j * total + done, candidates * total))
        rounds.append(studio.generate(request.model_copy(update={"prompt": prompt, "seed": (first + j * request.n) % (MAX_SEED + 1)}),
                                      on_step=report, record_extra=note))
    per_image = len(rounds[0])
    scores = taste.score(features([im.image for r in rounds for im in r]), person).reshape(candidates, per_image)
    chosen = [int(np.argmax(scores[:, i])) for i in range(per_image)]
    return [rounds[k][i] for i, k in enumerate(chosen)], Personalised(prompt, added, chosen)
