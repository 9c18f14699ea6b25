"""Scenes datasets with a planted skew: the colour of every car drawn from a chosen share of red and blue.

The training data of the bias demonstration (`bench/bias.py`): half the images show cars, and every car
is red with probability `share_red`, else blue (0.8: the planted 80/20 skew; 0.5: the balanced control).
Captions leave the colour out more often than the stock datasets do (`p_omit_colour` 0.5), as captions
written by people often do; so "a car" is a prompt the model learns from the data, skew included.

Example:
    >>> from pathlib import Path; import tempfile
    >>> d = write_car_colours(Path(tempfile.mkdtemp()), n=20, share_red=0.8)
    >>> from kaiga.data.dataset import read_metadata
    >>> {o["colour"] for e in read_metadata(d) for o in e.attributes["objects"] if o["name"] == "car"} <= {"red", "blue"}
    True
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from kaiga.data.captions import CaptionMix, canonical_caption, random_caption
from kaiga.data.dataset import MANIFEST, METADATA
from kaiga.data.render import SPRITE_LICENCE, SPRITES, render
from kaiga.data.world import Layout, Mix, SceneObject, sample_scene

CAPTIONS = CaptionMix(p_omit_colour=0.5)
MIX = Mix(layouts=(0.7, 0.3, 0.0))  # single objects and counted rows: the car's colour is the whole subject


def car_scene(rng: np.random.Generator, share_red: float):
    """A training scene; half of them cars, and every car red with probability `share_red`, else blue."""
    s = sample_scene(rng, split="train", mix=MIX)
    name = "car" if rng.random() < 0.5 else s.objects[0].name
    colour = s.objects[0].colour
    if name == "car":
        colour = "red" if rng.random() < share_red else "blue"
    return replace(s, objects=(SceneObject(name, colour),) * len(s.objects))


def write_car_colours(out: Path, n: int, share_red: float, seed: int = 0, n_captions: int = 4) -> Path:
    """Render `n` scenes (images, metadata.jsonl with attributes, manifest.json) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / METADATA, "w", encoding="utf-8") as meta:
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            s = car_scene(rng, share_red)
            assert s.layout is not Layout.PAIR
            name = f"{i:06d}.png"
            render(s, rng).save(out / name)
            captions = [canonical_caption(s)] + [random_caption(s, rng, CAPTIONS) for _ in range(n_captions - 1)]
            meta.write(json.dumps({"file_name": name, "text": captions, "attributes": s.to_dict()}) + "\n")
    manifest = {
        "generator": "kaiga scenes renderer (bench/bias_data.py: car colours planted)",
        "seed": seed, "count": n, "share_red_cars": share_red,
        "assets": [{"object": o, "emoji": ch, "unicode_name": nm, **SPRITE_LICENCE} for o, (ch, nm) in SPRITES.items()],
        "images_licence": "generated; same terms as the sprites (Apache-2.0)",
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out
