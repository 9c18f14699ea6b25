"""What a taste model sees of an image: the scenes judge's reading of it, as probabilities.

Each image becomes the judge's softmax over every class of the heads a person can like or dislike (objects and
colours, how many, place, weather, time of day, style; kaiga/eval/readout.py), plus the outer product of the
first object's colour and kind, so that "blue cars" (not blue things and cars separately) can be liked. Why the
judge's probabilities rather than its 256 hidden features or the contrastive scorer's embedding: with the 20
ratings a person gives, a model needs few dimensions that mean something, and every weight of this one is a
(head, class) a person can read back ("style=neon +2.1"); the judge is trained on every combination, so it reads
any image of the scenes world.

Example:
    >>> names = feature_names()
    >>> len(names), names[0], names[-1]
    (152, 'count=1', 'thing=black flower')
    >>> import numpy as np
    >>> features(np.zeros((2, 64, 64, 3), np.uint8)).shape
    (2, 152)
"""

from __future__ import annotations

import numpy as np
import torch

from kaiga.eval.readout import HEADS, bundled_judge, to_input

READ_HEADS = ("count", "object_a", "colour_a", "object_b", "colour_b", "scene", "weather", "time", "style")


def feature_names() -> list[str]:
    """One name a feature: 'head=class', then 'thing=colour object' for the first object's colour and kind."""
    names = [f"{head}={value}" for head in READ_HEADS for value in HEADS[head]]
    return names + [f"thing={c} {o}" for c in HEADS["colour_a"] for o in HEADS["object_a"]]


@torch.no_grad()
def features(images, batch_size: int = 256) -> np.ndarray:
    """[N, len(feature_names())] float64 of PIL images or a uint8 [N, H, W, 3] array."""
    x = to_input(images)
    rows = []
    net = bundled_judge()
    for i in range(0, len(x), batch_size):
        logits = net(x[i : i + batch_size])
        probs = {h: torch.softmax(logits[h].double(), -1) for h in READ_HEADS}
        outer = (probs["colour_a"][:, :, None] * probs["object_a"][:, None, :]).flatten(1)
        rows.append(torch.cat([probs[h] for h in READ_HEADS] + [outer], 1))
    return torch.cat(rows).numpy()
