"""`kaiga describe IMAGE`: prompts that would make the image again, read by the scenes judge (Midjourney's
/describe, A1111's interrogate).

The readout network (kaiga/eval/readout.py) reads an image as a scene: objects with their colours, count or
relation, place, weather, time of day, style. `describe` turns the reading back into a scene and writes it
as prompts with the caption generator the models were trained on (the canonical caption first, then
others in other words and orders), and says how sure the judge is of each attribute (its softmax
probability). It describes scenes-world images; a photograph is read as the nearest scene, with low
confidence, which the answer says. `style_of` is the same reading's style, for `--sref` (take the style of
an image).

Example:
    >>> from kaiga.data.render import render
    >>> from kaiga.data.world import Layout, Scene, SceneObject
    >>> import numpy as np
    >>> image = render(Scene((SceneObject("dog", "yellow"),), Layout.SINGLE, "beach", "clear", "sunset", "plain"),
    ...                np.random.default_rng(0))
    >>> d = describe(image, n=2)
    >>> d.prompts[0]
    'a yellow dog on the beach, at sunset'
    >>> d.confidence > 0.5
    True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from kaiga.data.captions import canonical_caption, random_caption
from kaiga.data.world import Layout, Scene, SceneObject
from kaiga.eval.readout import HEADS, NONE, Reading, ReadoutNet, bundled_judge, to_input

LOW_CONFIDENCE = 0.8  # below this, the image is not much like a scene the judge knows (renders read at ~1.0,
# uniform noise at 0.61: the judge is overconfident off its world, so the bar is high)


@dataclass(frozen=True)
class Description:
    prompts: list[str]
    reading: Reading
    confidence: float  # the judge's lowest probability over the attributes that make the prompt
    per_attribute: dict[str, float]

    def to_json(self) -> dict:
        return {"prompts": self.prompts, "reading": self.reading.__dict__, "confidence": round(self.confidence, 3),
                "per_attribute": {k: round(v, 3) for k, v in self.per_attribute.items()},
                "low_confidence": self.confidence < LOW_CONFIDENCE}


@torch.no_grad()
def read_with_confidence(image, judge: ReadoutNet | None = None) -> tuple[Reading, dict[str, float]]:
    """The judge's reading of one image (any size: brought to 64² as the judge reads) and each head's probability."""
    judge = judge or bundled_judge()
    image = image.convert("RGB")
    if image.size != (64, 64):  # a saved PNG is enlarged for viewing
        image = image.resize((64, 64), Image.LANCZOS)
    logits = judge(to_input([image]))
    probs = {name: torch.softmax(v[0], -1) for name, v in logits.items()}
    reading = Reading(**{name: HEADS[name][int(p.argmax())] for name, p in probs.items()})
    return reading, {name: float(p.max()) for name, p in probs.items()}


def scene_of(r: Reading) -> Scene:
    """The scene a reading describes (the inverse of `Reading.of_scene`)."""
    layout = Layout(r.layout)
    a = SceneObject(r.object_a, r.colour_a)
    # a second object read without a colour is no pair a caption can name: the first object alone
    if layout is Layout.PAIR and r.object_b != NONE and r.colour_b != NONE:
        b = SceneObject(r.object_b, r.colour_b)
        relation = "left of" if r.axis == "horizontal" else "above"
        return Scene((a, b), layout, r.scene, r.weather, r.time, r.style, relation)
    if layout is Layout.COUNT:
        return Scene((a,) * max(2, r.count), layout, r.scene, r.weather, r.time, r.style)
    return Scene((a,), Layout.SINGLE, r.scene, r.weather, r.time, r.style)


def describe(image, n: int = 4, judge: ReadoutNet | None = None) -> Description:
    """Up to `n` different prompts for the image, the canonical caption first."""
    reading, probs = read_with_confidence(image, judge)
    scene = scene_of(reading)
    prompts = [canonical_caption(scene)]
    rng = np.random.default_rng(0)  # the same image gets the same prompts
    for _ in range(20 * n):
        if len(prompts) >= n:
            break
        caption = random_caption(scene, rng)
        if caption not in prompts:
            prompts.append(caption)
    used = ["layout", "object_a", "colour_a", "scene", "weather", "time", "style"]
    used += ["object_b", "colour_b", "axis"] if scene.layout is Layout.PAIR else []
    used += ["count"] if scene.layout is Layout.COUNT else []
    per = {k: probs[k] for k in used}
    return Description(prompts, reading, min(per.values()), per)


def style_of(image, judge: ReadoutNet | None = None) -> tuple[str, float]:
    """(the style the judge reads in the image, its probability): `--sref`'s style."""
    reading, probs = read_with_confidence(image, judge)
    return reading.style, probs["style"]


def sref_style(image, judge: ReadoutNet | None = None) -> tuple[str, dict]:
    """(the style preset `--sref IMAGE` applies, what the record keeps: the style read and its probability);
    a "plain" reading is the plain preset."""
    style, p = style_of(image, judge)
    return style.replace(" ", "-"), {"read": style, "confidence": round(p, 3)}
