"""A1111's X/Y/Z plot: one prompt, up to three request fields varied along the axes, one labelled contact sheet.

`kaiga grid --x steps=10,20,40 --y style=plain,watercolor,neon "a red car"` makes one image per cell, each a
normal image with its own record, and a sheet with the values written along the top and the side (with
`--z`, one sheet per z value). An axis is `field=value,value,...` for any request field (`steps`, `guidance`,
`sampler`, `seed`, `style`, `stylize`, `negative_prompt`, `model`, ...), its values parsed as CSV so a
value with commas is quoted (`style="watercolor:0.5,neon:0.5",plain`); `prompt=a,b,c` is A1111's Prompt S/R:
the first value, found in the prompt, is replaced by each value in turn. Every cell is checked as a
request before the first image is made.

Example:
    >>> axis = parse_axis("--x", 'style="watercolor:0.5,neon:0.5",plain')
    >>> axis.field, axis.values
    ('style', ['watercolor:0.5,neon:0.5', 'plain'])
    >>> [c.fields for c in cells(GenerationRequest(prompt="a red car"), [parse_axis("--x", "prompt=red,blue")])]
    [{'prompt': 'a red car'}, {'prompt': 'a blue car'}]
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass

from PIL import Image, ImageDraw

from kaiga.request import GenerationRequest, RequestError, describe_error, field_specs

MAX_CELLS = 64  # as a request's images (kaiga.studio.MAX_IMAGES)
NOT_AXES = ("init_image", "mask", "blend", "strength", "mask_blur", "n")  # a grid makes no edits; a cell is one image


@dataclass(frozen=True)
class Axis:
    flag: str  # --x, --y or --z, for error messages
    field: str
    values: list[str]


@dataclass(frozen=True)
class Cell:
    """One image of the plot: its place on each axis and the request fields that differ there."""

    index: tuple[int, ...]
    fields: dict
    request: GenerationRequest


def parse_axis(flag: str, spec: str) -> Axis:
    """`field=v1,v2,...` as an Axis; RequestError naming the flag and what is allowed."""
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    name = {"negative": "negative_prompt", "cfg": "guidance"}.get(name, name)
    allowed = [f for f in field_specs() if f not in NOT_AXES]
    if not sep or name not in allowed:
        raise RequestError(f"{flag}: give FIELD=v1,v2,... with FIELD one of {', '.join(allowed)} (got {spec!r})")
    try:
        [row] = list(csv.reader(io.StringIO(values), skipinitialspace=True)) or [[]]
    except (csv.Error, ValueError):
        raise RequestError(f"{flag}: the values of {name} are not one CSV line (got {values!r})") from None
    row = [v.strip() for v in row]
    if not row or any(v == "" for v in row):
        raise RequestError(f"{flag}: {name} needs values separated by commas, none empty (got {values!r})")
    return Axis(flag, name, row)


def _typed(axis: Axis, value: str):
    kind = field_specs()[axis.field].type
    if kind is str:
        return value
    try:
        return kind(value)
    except ValueError:
        raise RequestError(f"{axis.flag}: {axis.field} takes {kind.__name__} values (got {value!r})") from None


def cells(base: GenerationRequest, axes: list[Axis]) -> list[Cell]:
    """Every cell of the plot, x varying fastest, each request checked; RequestError at the first bad one."""
    fields = [a.field for a in axes]
    if len(set(fields)) != len(fields):
        raise RequestError(f"each axis varies another field (got {', '.join(fields)})")
    count = 1
    for a in axes:
        count *= len(a.values)
    if count > MAX_CELLS:
        raise RequestError(f"the axes make {count} images; at most {MAX_CELLS} a grid")
    for a in axes:
        if a.field == "prompt" and a.values[0] not in base.prompt:
            raise RequestError(f"{a.flag}: prompt=... replaces its first value in the prompt, and "
                               f"{a.values[0]!r} is not in {base.prompt!r}")
    out = []
    for index in itertools.product(*(range(len(a.values)) for a in reversed(axes))):
        index = tuple(reversed(index))  # x fastest
        update = {}
        for a, i in zip(axes, index):
            if a.field == "prompt":
                update["prompt"] = base.prompt.replace(a.values[0], a.values[i])
            else:
                update[a.field] = _typed(a, a.values[i])
        try:
            request = GenerationRequest.model_validate({**base.model_dump(), **update})
        except ValueError as e:
            where = ", ".join(f"{a.field}={a.values[i]}" for a, i in zip(axes, index))
            raise RequestError(f"the cell {where}: {describe_error(e)}") from None
        out.append(Cell(index, update, request))
    return out


def plot_cells(base: GenerationRequest, axes: list[Axis]) -> list[Cell]:
    """`cells` of a plot's base request, which makes one image a cell without permutations."""
    if base.n != 1:
        raise RequestError("n: a grid cell is one image; put seeds on an axis instead (--y seed=1,2,3)")
    if "{" in base.prompt and "|" in base.prompt:
        raise RequestError("prompt: a grid varies the prompt with an axis (--x prompt=red,blue), not {a|b}")
    return cells(base, axes)


def labelled_sheet(images: list[Image.Image], x: Axis, y: Axis | None, title: str = "", gap: int = 4) -> Image.Image:
    """Images in rows (y) and columns (x), the x values over the columns, the y values beside the rows."""
    cols, rows = len(x.values), len(y.values) if y else 1
    w, h = images[0].size
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = 0 if y is None else 12 + int(max(measure.textlength(f"{y.field}={v}"[:40]) for v in y.values))
    top = 18 * (2 if title else 1)
    sheet = Image.new("RGB", (label_w + cols * (w + gap), top + rows * (h + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title[:200], fill="black")
    for c, value in enumerate(x.values):
        draw.text((label_w + c * (w + gap) + 2, top - 16), f"{x.field}={value}"[: max(6, w // 6)], fill="black")
    for r in range(rows):
        if y is not None:
            draw.text((4, top + r * (h + gap) + h // 2 - 6), f"{y.field}={y.values[r]}"[:40], fill="black")
        for c in range(cols):
            sheet.paste(images[r * cols + c].convert("RGB"), (label_w + c * (w + gap), top + r * (h + gap)))
    return sheet


@dataclass
class Plot:
    """The cells' images (each with its record) and the sheets: one, or one per z value."""

    images: list  # GeneratedImage, in the order of `cells`
    sheets: list[tuple[str, Image.Image]]  # (z label or "", sheet)


def make_plot(studio, base: GenerationRequest, axes: list[Axis], on_image=None) -> Plot:
    """Every cell's image through `studio` (a kaiga.studio.Studio), then the labelled sheet(s);
    `on_image(done, total)` after each image."""
    todo = plot_cells(base, axes)
    for k, cell in enumerate(todo):  # every cell's model, size and styles before the first image
        studio.check(cell.request)
        if cell.request.upscale is None:  # shown as `kaiga generate` shows it (×4 for 64² models)
            upscale = studio.capabilities(cell.request.model).view_upscale(cell.request)
            todo[k] = Cell(cell.index, cell.fields, cell.request.model_copy(update={"upscale": upscale}))
    made = []
    for k, cell in enumerate(todo):
        made += studio.generate(cell.request)[:1]
        if on_image is not None:
            on_image(k + 1, len(todo))
    return Plot(made, sheets_of([m.image for m in made], axes, base.prompt))


def sheets_of(images: list[Image.Image], axes: list[Axis], prompt: str) -> list[tuple[str, Image.Image]]:
    """The labelled sheet(s) of a plot's cell images (in the order of `cells`): one, or one per z value."""
    x, y, z = (axes + [None, None])[:3]
    per_sheet = len(x.values) * (len(y.values) if y else 1)
    sheets = []
    for s in range(len(images) // per_sheet):
        label = f"{z.field}={z.values[s]}" if z else ""
        title = " · ".join(t for t in (prompt, label) if t)
        sheets.append((label, labelled_sheet(images[s * per_sheet:(s + 1) * per_sheet], x, y, title)))
    return sheets
