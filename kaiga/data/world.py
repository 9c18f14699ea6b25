"""The "scenes" world: every attribute, its values, and how a scene is drawn at random.

The world is the ground truth behind the default models and the evaluation suite: each rendered
image carries an exact attribute dict, so prompt-following can be scored exactly.

Example:
    >>> import numpy as np
    >>> scene = sample_scene(np.random.default_rng(0))
    >>> scene.scene in SCENES
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

OBJECTS = ("car", "truck", "bicycle", "house", "tree", "dog", "cat", "bird", "boat", "flower")
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white", "black")
COUNTS = (1, 2, 3)
RELATIONS = ("left of", "right of", "above", "below")
SCENES = ("city", "forest", "beach", "desert", "mountains", "countryside")
WEATHERS = ("clear", "rain", "snow", "fog")
TIMES = ("day", "sunset", "night")
STYLES = ("plain", "watercolor", "pixel art", "sketch", "neon", "vintage")

# RGB of each colour name, chosen to stay distinguishable after tinting a sprite's shading.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (245, 130, 20),
    "yellow": (245, 220, 30),
    "green": (40, 170, 50),
    "blue": (30, 80, 230),
    "purple": (140, 50, 200),
    "pink": (250, 120, 190),
    "white": (245, 245, 245),
    "black": (25, 25, 25),
}


class Layout(str, Enum):
    """How the objects of a scene are arranged."""

    SINGLE = "single"  # one object, centred
    COUNT = "count"  # 2 or 3 copies of the same object in a row
    PAIR = "pair"  # two different objects with a spatial relation


@dataclass(frozen=True)
class SceneObject:
    name: str
    colour: str


@dataclass(frozen=True)
class Scene:
    """One point of the world: what an image shows, exactly."""

    objects: tuple[SceneObject, ...]
    layout: Layout
    scene: str
    weather: str
    time: str
    style: str
    relation: str | None = None  # for PAIR: objects[0] is <relation> objects[1]

    @property
    def count(self) -> int:
        return len(self.objects) if self.layout is not Layout.PAIR else 1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layout"] = self.layout.value
        d["objects"] = [asdict(o) for o in self.objects]
        d["count"] = self.count
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Scene":
        return cls(
            objects=tuple(SceneObject(**o) for o in d["objects"]),
            layout=Layout(d["layout"]),
            scene=d["scene"],
            weather=d["weather"],
            time=d["time"],
            style=d["style"],
            relation=d.get("relation"),
        )


@dataclass(frozen=True)
class HoldOut:
    """Attribute pairs that never occur together in training renders.

    They measure generalisation: a model that draws "a blue dog" well without ever having seen one
    composes attributes instead of memorising combinations.
    """

    object_colour: tuple[tuple[str, str], ...] = (
        ("dog", "blue"),
        ("car", "pink"),
        ("house", "purple"),
        ("bird", "orange"),
        ("boat", "green"),
        ("tree", "red"),
    )
    object_scene: tuple[tuple[str, str], ...] = (
        ("boat", "desert"),
        ("truck", "forest"),
        ("cat", "beach"),
    )
    scene_weather: tuple[tuple[str, str], ...] = (("desert", "snow"), ("beach", "fog"))
    scene_time: tuple[tuple[str, str], ...] = (("mountains", "sunset"),)
    scene_style: tuple[tuple[str, str], ...] = (("city", "watercolor"), ("forest", "neon"))

    def is_held_out(self, s: Scene) -> bool:
        """True when the scene contains any held-out pair."""
        for o in s.objects:
            if (o.name, o.colour) in self.object_colour or (o.name, s.scene) in self.object_scene:
                return True
        return (
            (s.scene, s.weather) in self.scene_weather
            or (s.scene, s.time) in self.scene_time
            or (s.scene, s.style) in self.scene_style
        )


HOLD_OUT = HoldOut()


@dataclass(frozen=True)
class Mix:
    """Probabilities of the layouts and of the plain options, so a dataset can be tuned."""

    layouts: tuple[float, float, float] = (0.6, 0.2, 0.2)  # single, count, pair
    p_plain_style: float = 0.4  # plain is the default look, so it is over-represented
    p_clear_weather: float = 0.4
    p_day: float = 0.4


def _pick(rng: np.random.Generator, values: tuple, p_first: float | None = None):
    if p_first is None:
        return values[int(rng.integers(len(values)))]
    if rng.random() < p_first:
        return values[0]
    return values[1 + int(rng.integers(len(values) - 1))]


def sample_scene(rng: np.random.Generator, split: str = "train", mix: Mix = Mix()) -> Scene:
    """Draw one scene; `split` "train" never returns a held-out combination, "heldout" only those."""
    if split not in ("train", "heldout", "any"):
        raise ValueError(f"split must be train, heldout or any, not {split!r}")
    while True:
        layout = Layout(("single", "count", "pair")[int(rng.choice(3, p=np.array(mix.layouts)))])
        a = SceneObject(_pick(rng, OBJECTS), _pick(rng, COLOURS))
        relation = None
        if layout is Layout.SINGLE:
            objects: tuple[SceneObject, ...] = (a,)
        elif layout is Layout.COUNT:
            objects = (a,) * int(rng.integers(2, 4))
        else:
            others = [o for o in OBJECTS if o != a.name]
            b = SceneObject(others[int(rng.integers(len(others)))], _pick(rng, COLOURS))
            objects, relation = (a, b), _pick(rng, RELATIONS)
        s = Scene(
            objects=objects,
            layout=layout,
            scene=_pick(rng, SCENES),
            weather=_pick(rng, WEATHERS, mix.p_clear_weather),
            time=_pick(rng, TIMES, mix.p_day),
            style=_pick(rng, STYLES, mix.p_plain_style),
            relation=relation,
        )
        held = HOLD_OUT.is_held_out(s)
        if split == "any" or (split == "train") != held:
            return s


ATTRIBUTES: dict[str, tuple] = {
    "object": OBJECTS,
    "colour": COLOURS,
    "count": COUNTS,
    "relation": RELATIONS,
    "scene": SCENES,
    "weather": WEATHERS,
    "time": TIMES,
    "style": STYLES,
}
