"""A campaign's contact sheets: one per pair of axes (the seed is an axis when there are several), each cell of a
sheet the image made with the other axes at their first value, labelled as `kaiga grid`'s sheets are.

Example:
    >>> from PIL import Image
    >>> from kaiga.campaigns.plan import CampaignPlan
    >>> plan = CampaignPlan.model_validate({"prompt": "a {colour} car in the {scene}", "seeds": 2,
    ...                                     "axes": {"colour": ["red", "blue"], "scene": ["city", "forest"]}})
    >>> cells = plan.cells()
    >>> sheets = pair_sheets(plan, cells, {c.index: Image.new("RGB", (64, 64)) for c in cells})
    >>> [name for name, _ in sheets] == sheet_names(plan)
    True
    >>> sheet_names(plan)
    ['colour-x-scene', 'colour-x-seed', 'scene-x-seed']
"""

from __future__ import annotations

import itertools

from PIL import Image

from kaiga.campaigns.plan import CampaignCell, CampaignPlan
from kaiga.xyz_plot import Axis, labelled_sheet


def _sheet_axes(plan: CampaignPlan) -> dict[str, list]:
    return {**plan.axis_values(), **({"seed": plan.seed_list()} if len(plan.seed_list()) > 1 else {})}


def _pairs(names: list[str]) -> list[tuple[str, str | None]]:
    return list(itertools.combinations(names, 2)) or [(names[0], None)] if names else []


def sheet_names(plan: CampaignPlan) -> list[str]:
    """The stems `pair_sheets` makes, in its order ('colour-x-scene', ...)."""
    return [f"{x}-x-{y}" if y else x for x, y in _pairs(list(_sheet_axes(plan)))]


def pair_sheets(plan: CampaignPlan, cells: list[CampaignCell], images: dict[int, Image.Image],
                scale: int = 2, only: str | None = None) -> list[tuple[str, Image.Image]]:
    """(file stem, sheet) per pair of axes (or just the one named `only`), each image enlarged `scale` times (room
    for the labels); a cell not made yet is drawn grey."""
    axes = _sheet_axes(plan)
    names = list(axes)
    first = {name: values[0] for name, values in axes.items()}
    size = next(iter(images.values())).size if images else (64, 64)
    size = (size[0] * scale, size[1] * scale)
    images = {k: im.resize(size, Image.LANCZOS) for k, im in images.items()}
    blank = Image.new("RGB", size, (128, 128, 128))
    sheets = []
    for x, y in _pairs(names):
        if only is not None and only != (f"{x}-x-{y}" if y else x):
            continue
        picked = []
        for vy in (axes[y] if y else [None]):
            for vx in axes[x]:
                want = {**first, x: vx, **({y: vy} if y else {})}
                cell = next(c for c in cells if all(c.values.get(k) == v for k, v in want.items()))
                picked.append(images.get(cell.index, blank))
        sheet = labelled_sheet(picked, Axis("x", x, [str(v) for v in axes[x]]),
                               Axis("y", y, [str(v) for v in axes[y]]) if y else None,
                               title=f"{plan.name}: {x}" + (f" by {y}" if y else ""))
        sheets.append((f"{x}-x-{y}" if y else x, sheet))
    return sheets
