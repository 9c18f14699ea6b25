"""Captions for scenes: templates with synonyms and several word orders.

Prompts in plain English ("a red car in the snow at night") and tag lists ("night, snowy city
street, crimson automobile, watercolor") both describe the same scene, so a model trained on these
captions follows either way of asking.

Example:
    >>> import numpy as np
    >>> from kaiga.data.world import Layout, Scene, SceneObject
    >>> s = Scene((SceneObject("car", "red"),), Layout.SINGLE, "city", "snow", "night", "plain")
    >>> canonical_caption(s)
    'a red car in the city, snowy, at night'
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kaiga.data.world import Layout, Scene

OBJECT_WORDS = {
    "car": ("car", "automobile", "sedan"),
    "truck": ("truck", "lorry", "pickup truck"),
    "bicycle": ("bicycle", "bike", "cycle"),
    "house": ("house", "cottage", "home"),
    "tree": ("tree", "oak tree"),
    "dog": ("dog", "puppy", "hound"),
    "cat": ("cat", "kitten", "kitty"),
    "bird": ("bird", "songbird"),
    "boat": ("boat", "sailboat", "sailing boat"),
    "flower": ("flower", "blossom", "daisy"),
}
PLURALS = {"bicycle": "bicycles", "house": "houses", "cottage": "cottages", "home": "homes",
           "puppy": "puppies", "kitty": "kitties", "daisy": "daisies", "lorry": "lorries",
           "blossom": "blossoms", "hound": "hounds", "sailing boat": "sailing boats"}
COLOUR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "orange": ("orange", "tangerine"),
    "yellow": ("yellow", "golden"),
    "green": ("green", "emerald"),
    "blue": ("blue", "azure", "navy blue"),
    "purple": ("purple", "violet"),
    "pink": ("pink", "rose"),
    "white": ("white", "snow-white", "ivory"),
    "black": ("black", "jet-black", "dark"),
}
NUMBER_WORDS = {1: ("a", "one"), 2: ("two", "2", "a pair of"), 3: ("three", "3")}
SCENE_PHRASES = {
    "city": ("in the city", "on a city street", "downtown", "in an urban street"),
    "forest": ("in the forest", "in the woods", "among pine trees"),
    "beach": ("on the beach", "by the sea", "at the seaside"),
    "desert": ("in the desert", "on desert dunes", "in the sand dunes"),
    "mountains": ("in the mountains", "in front of mountains", "by snowy peaks"),
    "countryside": ("in the countryside", "on a farm", "in green fields"),
}
SCENE_TAGS = {
    "city": ("city", "city street", "urban"),
    "forest": ("forest", "woods"),
    "beach": ("beach", "seaside"),
    "desert": ("desert", "dunes"),
    "mountains": ("mountains", "mountain landscape"),
    "countryside": ("countryside", "farmland", "fields"),
}
WEATHER_PHRASES = {
    "clear": ("", "in clear weather", "under a clear sky"),
    "rain": ("in the rain", "while it rains", "on a rainy day"),
    "snow": ("in the snow", "while it snows", "on a snowy day"),
    "fog": ("in the fog", "on a foggy day", "in thick mist"),
}
WEATHER_TAGS = {
    "clear": ("", "clear sky", "clear"),
    "rain": ("rain", "rainy"),
    "snow": ("snow", "snowy", "snowfall"),
    "fog": ("fog", "foggy", "misty"),
}
TIME_PHRASES = {
    "day": ("", "during the day", "in daylight"),
    "sunset": ("at sunset", "at dusk", "at golden hour"),
    "night": ("at night", "at nighttime", "under the night sky"),
}
TIME_TAGS = {"day": ("", "day", "daytime"), "sunset": ("sunset", "dusk"), "night": ("night", "nighttime")}
STYLE_PHRASES = {
    "plain": ("", "", "plain illustration"),
    "watercolor": ("watercolor painting", "watercolour", "in watercolor style"),
    "pixel art": ("pixel art", "8-bit pixel art", "retro pixel style"),
    "sketch": ("pencil sketch", "sketch", "drawing"),
    "neon": ("neon", "neon glow", "synthwave neon"),
    "vintage": ("vintage photo", "vintage", "old sepia photograph"),
}
RELATION_WORDS = {
    "left of": ("to the left of", "left of", "on the left of"),
    "right of": ("to the right of", "right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
}


@dataclass(frozen=True)
class CaptionMix:
    """How often a random caption says less than the image shows.

    People ask for "a dog" or "a cat, a bird" without naming every colour, place or relation; a model
    that only ever saw complete captions follows such prompts badly (the evaluation suite measured
    two-object prompts without a relation word at 0.00 for model v2). Leaving words out of some
    captions teaches what an unnamed attribute means: any value.
    """

    p_omit_colour: float = 0.15  # "a dog" for a red dog; for a pair, both colours go
    p_omit_context: float = 0.2  # each of scene, weather, time of day and style, independently
    p_no_relation: float = 0.3  # a pair as "a dog, a cat" or "a dog & a cat", in either order


NO_OMISSIONS = CaptionMix(0.0, 0.0, 0.0)


def _noun(word: str, n: int) -> str:
    if n == 1:
        return word
    return PLURALS.get(word, word + "s")


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _choose(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def _subject(s: Scene, rng: np.random.Generator | None, mix: CaptionMix = NO_OMISSIONS) -> str:
    """The objects as a noun phrase; `rng=None` gives the canonical words."""
    pick = (lambda opts: opts[0]) if rng is None else (lambda opts: _choose(rng, opts))
    chance = (lambda p: False) if rng is None else (lambda p: rng.random() < p)
    colourless = chance(mix.p_omit_colour)

    def phrase(obj, n: int = 1) -> str:
        noun = _noun(pick(OBJECT_WORDS[obj.name]), n)
        return noun if colourless else f"{pick(COLOUR_WORDS[obj.colour])} {noun}"

    first = s.objects[0]
    if s.layout is Layout.PAIR:
        a_np, b_np = phrase(first), phrase(s.objects[1])
        a_np, b_np = f"{_article(a_np)} {a_np}", f"{_article(b_np)} {b_np}"
        if chance(mix.p_no_relation):  # no relation named, so either order describes the image
            if chance(0.5):
                a_np, b_np = b_np, a_np
            return f"{a_np}{pick((', ', ', ', ' & '))}{b_np}"
        return f"{a_np} {pick(RELATION_WORDS[s.relation])} {b_np}"
    n = len(s.objects)
    words = phrase(first, n)
    number = pick(NUMBER_WORDS[n])
    if number == "a":
        number = _article(words)
    return f"{number} {words}"


def canonical_caption(s: Scene) -> str:
    """The one plain-English caption of a scene, with the first synonym of every word."""
    parts = [_subject(s, None), SCENE_PHRASES[s.scene][0]]
    parts[-1] = parts[0] + " " + parts.pop()
    parts += [
        {"clear": "", "rain": "rainy", "snow": "snowy", "fog": "foggy"}[s.weather],
        TIME_PHRASES[s.time][0] if s.time != "day" else "",
        STYLE_PHRASES[s.style][0] if s.style != "plain" else "",
    ]
    return ", ".join(p for p in parts if p)


def random_caption(s: Scene, rng: np.random.Generator, mix: CaptionMix = CaptionMix()) -> str:
    """One of many captions of `s`: a sentence or a tag list, synonyms and order drawn from rng.

    Parts may be left out as `mix` says (use `NO_OMISSIONS` for captions that name everything).
    """
    subject = _subject(s, rng, mix)

    def said(options: tuple[str, ...]) -> str:
        return "" if rng.random() < mix.p_omit_context else _choose(rng, options)

    if rng.random() < 0.6:  # sentence: "a red car in the city in the snow at night, watercolor"
        tail = [said(WEATHER_PHRASES[s.weather]), said(TIME_PHRASES[s.time])]
        if rng.random() < 0.5:
            tail.reverse()
        words = [subject, said(SCENE_PHRASES[s.scene]), *tail]
        sentence = " ".join(w for w in words if w)
        style = said(STYLE_PHRASES[s.style])
        if style:
            sentence = f"{style} of {sentence}" if rng.random() < 0.3 else f"{sentence}, {style}"
        return sentence
    # tag list: "night, snowy, city street, crimson automobile, watercolor" in a random order
    tags = [
        subject,
        said(SCENE_TAGS[s.scene]),
        said(WEATHER_TAGS[s.weather]),
        said(TIME_TAGS[s.time]),
        said(STYLE_PHRASES[s.style]),
    ]
    order = rng.permutation(len(tags))
    return ", ".join(tags[i] for i in order if tags[i])


def vocabulary_words() -> set[str]:
    """Every word any caption can contain (lower case, split on spaces, commas and hyphens)."""
    tables = [OBJECT_WORDS, COLOUR_WORDS, NUMBER_WORDS, SCENE_PHRASES, SCENE_TAGS, WEATHER_PHRASES,
              WEATHER_TAGS, TIME_PHRASES, TIME_TAGS, STYLE_PHRASES, RELATION_WORDS]
    words: set[str] = set(PLURALS.values()) | {"a", "an", "of", "rainy", "snowy", "foggy", "&"}
    for t in tables:
        for opts in t.values():
            for phrase in opts:
                words.update(phrase.replace(",", " ").replace("-", " - ").split())
    for w in list(words):
        words.add(w + "s")
    return words


# Prompts of the sample grids written while training (every family): one of each layout and attribute.
GRID_PROMPTS = (
    "a red car in the city",
    "a yellow dog on the beach at sunset",
    "two blue birds in the snow",
    "a green truck in the desert at night",
    "a white house in the mountains in the fog, watercolor",
    "a pink flower in the forest, pixel art",
    "a purple cat to the left of an orange bicycle",
    "a black boat on the beach in the rain, neon",
)
