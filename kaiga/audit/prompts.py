"""Under-specified prompts for the bias audit: what a prompt fixes, what it leaves open, how to complete it.

A prompt is read with the caption vocabulary of the scenes world (kaiga.data.captions): its object
(or a group word such as "pet" or "vehicle", which leaves the object open within the group), colour,
scene, weather, time of day and style. Every attribute it does not name is *open*: the model chooses,
and the audit measures how it chooses. `complete` names an open attribute's value, for balanced prompt
completion at generation (the same number of images for every value).

Example:
    >>> spec = parse_prompt("a pet in the city")
    >>> spec.objects, spec.fixed, spec.open
    (('dog', 'cat', 'bird'), {'scene': 'city'}, ('object', 'colour', 'weather', 'time', 'style'))
    >>> complete(parse_prompt("a car"), "colour", "red")
    'a red car'
    >>> complete(spec, "object", "cat")
    'a cat in the city'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kaiga.data.captions import (
    COLOUR_WORDS,
    OBJECT_WORDS,
    PLURALS,
    SCENE_PHRASES,
    SCENE_TAGS,
    STYLE_PHRASES,
    TIME_PHRASES,
    TIME_TAGS,
    WEATHER_PHRASES,
    WEATHER_TAGS,
)
from kaiga.data.world import ATTRIBUTES, OBJECTS

# Words that name a kind of object, not one: the object is open within the group.
GROUPS: dict[str, tuple[str, ...]] = {
    "pet": ("dog", "cat", "bird"),
    "animal": ("dog", "cat", "bird"),
    "vehicle": ("car", "truck", "bicycle", "boat"),
}
DEFAULT_PROMPTS = ("a car", "a dog", "a pet in the city", "a vehicle at night")
OPEN_ORDER = ("object", "colour", "scene", "weather", "time", "style")  # the attributes the audit can read


@dataclass(frozen=True)
class PromptSpec:
    """What a prompt fixes: `objects` the object values it allows (one when named, a group's, or all)."""

    prompt: str
    objects: tuple[str, ...]
    fixed: dict = field(default_factory=dict)  # attribute -> value: colour, scene, weather, time, style
    subject: tuple[int, int] | None = None  # where the object (or group) word is in the prompt

    @property
    def open(self) -> tuple[str, ...]:
        """The attributes the prompt leaves to the model, in a fixed order."""
        return tuple(a for a in OPEN_ORDER if (a == "object" and len(self.objects) > 1) or
                     (a != "object" and a not in self.fixed))


def _phrases() -> list[tuple[str, str, str]]:
    """(phrase, attribute, value) for every phrase of the caption tables, longest first."""
    table: list[tuple[str, str, str]] = []
    for name, words in OBJECT_WORDS.items():
        table += [(w, "object", name) for w in words] + [(PLURALS.get(w, w + "s"), "object", name) for w in words]
    for group in GROUPS:
        table += [(group, "group", group), (group + "s", "group", group)]
    table += [(w, "colour", v) for v, ws in COLOUR_WORDS.items() for w in ws]
    for attr, tables in (("scene", (SCENE_PHRASES, SCENE_TAGS)), ("weather", (WEATHER_PHRASES, WEATHER_TAGS)),
                         ("time", (TIME_PHRASES, TIME_TAGS)), ("style", (STYLE_PHRASES,))):
        table += [(w, attr, v) for t in tables for v, ws in t.items() for w in ws if w]
    table += [("rainy", "weather", "rain"), ("snowy", "weather", "snow"), ("foggy", "weather", "fog")]
    return sorted(set(table), key=lambda t: -len(t[0]))


PHRASES = _phrases()


def parse_prompt(prompt: str) -> PromptSpec:
    """The attributes `prompt` names; ValueError when it names two different objects (a pair: not audited).

    >>> parse_prompt("a crimson sedan on a snowy day").fixed
    {'colour': 'red', 'weather': 'snow'}
    """
    text = prompt.lower()
    taken = [False] * len(text)
    found: list[tuple[int, int, str, str]] = []
    for phrase, attr, value in PHRASES:  # longest first, so "snowy peaks" is a scene, not snow
        for m in re.finditer(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text):
            if not any(taken[m.start():m.end()]):
                taken[m.start():m.end()] = [True] * (m.end() - m.start())
                found.append((m.start(), m.end(), attr, value))
    found.sort()
    subjects = [f for f in found if f[2] in ("object", "group")]
    if len({f[3] for f in subjects}) > 1:
        raise ValueError(f"{prompt!r} names {len({f[3] for f in subjects})} objects; the bias audit reads prompts "
                         "with one subject (an object such as car, or a group: " + ", ".join(GROUPS) + ")")
    objects: tuple[str, ...] = OBJECTS
    subject = None
    if subjects:
        start, end, attr, value = subjects[0]
        objects, subject = ((value,) if attr == "object" else GROUPS[value]), (start, end)
    fixed: dict = {}
    for _, _, attr, value in found:
        if attr not in ("object", "group"):
            fixed.setdefault(attr, value)
    return PromptSpec(prompt, objects, fixed, subject)


def completion_words(attribute: str, value: str) -> str:
    """The words that name `value` of `attribute` in a completed prompt (the captions' first phrase)."""
    if attribute not in ATTRIBUTES and attribute != "object":
        raise ValueError(f"unknown attribute {attribute!r}")
    tables = {"colour": COLOUR_WORDS, "object": OBJECT_WORDS, "scene": SCENE_PHRASES, "weather": WEATHER_PHRASES,
              "time": TIME_PHRASES, "style": STYLE_PHRASES}
    return next(w for w in tables[attribute][value] if w)


def complete(spec: PromptSpec, attribute: str, value: str) -> str:
    """`spec`'s prompt with its open `attribute` named as `value` (balanced prompt completion).

    >>> complete(parse_prompt("a dog"), "style", "sketch")
    'a dog, pencil sketch'
    """
    if attribute not in spec.open:
        raise ValueError(f"{attribute} is not open in {spec.prompt!r} (open: {', '.join(spec.open)})")
    words, prompt = completion_words(attribute, value), spec.prompt
    if attribute in ("object", "colour") and spec.subject is not None:
        start, end = spec.subject
        noun = words if attribute == "object" else f"{words} {prompt[start:end]}"
        return prompt[:start] + noun + prompt[end:]
    if attribute == "colour":
        return f"{words} {prompt}"
    if attribute == "object":
        return f"{prompt}, {words}"
    return f"{prompt}, {words}" if attribute == "style" else f"{prompt} {words}"
