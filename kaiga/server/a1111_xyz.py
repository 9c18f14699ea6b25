"""A1111's "X/Y/Z plot" script on `POST /sdapi/v1/txt2img`, run as kaiga's grid (kaiga/xyz_plot.py).

A1111 clients ask for the plot with `script_name: "X/Y/Z plot"` and positional `script_args`, as A1111's
scripts/xyz_grid.py takes them:

    [x_type, x_values, x_values_dropdown, y_type, y_values, y_values_dropdown, z_type, z_values,
     z_values_dropdown, draw_legend, include_lone_images, include_sub_grids, no_fixed_seeds, margin_size,
     csv_mode, raw_mode]

`x_type` is an index into A1111's txt2img axis list (`TXT2IMG_AXES`, as A1111 1.10 numbers it; indices move
between A1111 versions and extensions, so kaiga also takes the axis's label, e.g. "Steps"). The axes kaiga has
are `AXIS_FIELDS` (Seed, Steps, CFG Scale, Prompt S/R, Sampler, Checkpoint name, Styles); any other is refused
(422) naming it. Values are A1111's: comma-separated text with its ranges (`10-30 (+10)`, `1-9 [3]`), or the
dropdown list for Sampler, Checkpoint name and Styles. Every cell is a job and a gallery image with its record
(`extra.grid`), as `POST /v1/grids`; the answer is A1111's: the labelled grid first (with a z axis, one grid per
z value, where A1111 first puts them side by side), then the cells where `include_lone_images`; `info` is
txt2img's, for the cells. kaiga always labels the sheets (`draw_legend`, `include_sub_grids` and
`margin_size` are not read) and makes one image a cell (`batch_size` 1).

Example:
    >>> xyz_specs([4, "10-30 (+10)", [], "Sampler", "", ["Euler a", "DDIM"]])
    ['steps=10,20,30', 'sampler=euler-a,ddim']
"""

from __future__ import annotations

import base64
import json
import re

from starlette.concurrency import run_in_threadpool

from kaiga.model_files import ModelError
from kaiga.request import GenerationRequest, RequestError
from kaiga.server.errors import ApiError
from kaiga.server.grid_api import checked_cells, run_cells
from kaiga.server.state import Principal, ServerState, with_seed
from kaiga.xyz_plot import parse_axis

SCRIPT = "x/y/z plot"  # A1111's title, compared without case
# A1111 1.10's txt2img axes, in the order its API's x_type / y_type / z_type index them.
TXT2IMG_AXES = (
    "Nothing", "Seed", "Var. seed", "Var. strength", "Steps", "Hires steps", "CFG Scale", "Prompt S/R", "Prompt order",
    "Sampler", "Hires sampler", "Checkpoint name", "Negative Guidance minimum sigma", "Sigma Churn", "Sigma min",
    "Sigma max", "Sigma noise", "Schedule type", "Schedule min sigma", "Schedule max sigma", "Schedule rho", "Eta",
    "Clip skip", "Denoising", "Initial noise multiplier", "Extra noise", "Hires upscaler", "VAE", "Styles",
    "UniPC Order", "Face restore", "Token merging ratio", "Token merging ratio high-res",
    "Always discard next-to-last sigma", "SGM noise multiplier", "Refiner checkpoint", "Refiner switch at",
    "RNG source")
AXIS_FIELDS = {"Seed": "seed", "Steps": "steps", "CFG Scale": "guidance", "Prompt S/R": "prompt",
               "Sampler": "sampler", "Checkpoint name": "model", "Styles": "style"}
DROPDOWN_AXES = ("Sampler", "Checkpoint name", "Styles")  # A1111 sends their values as a list
NUMERIC = {"Seed": int, "Steps": int, "CFG Scale": float}
_RANGE = re.compile(r"\s*([+-]?\d+(?:\.\d*)?)\s*-\s*([+-]?\d+(?:\.\d*)?)\s*(?:\(\s*([+-]\d+(?:\.\d*)?)\s*\)|"
                    r"\[\s*(\d+)\s*\])?\s*")
MAX_RANGE = 64  # as a grid's cells: a range that makes more is refused before it is expanded


def is_xyz(script_name: str | None) -> bool:
    return (script_name or "").strip().lower() == SCRIPT


def _label(value, where: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(TXT2IMG_AXES):
        return TXT2IMG_AXES[value]
    if isinstance(value, str) and value.strip() in TXT2IMG_AXES:
        return value.strip()
    raise RequestError(f"{where}: an index into A1111's txt2img axes (0-{len(TXT2IMG_AXES) - 1}) or an axis name "
                       f"such as 'Steps' (got {value!r})")


def _expanded(text: str, kind: type, where: str) -> list[str]:
    """A1111's axis values: comma-separated, each a number or a range `a-b`, `a-b (+step)`, `a-b [count]`."""
    out: list[str] = []
    for item in (v.strip() for v in text.split(",")):
        m = _RANGE.fullmatch(item) if item else None
        if m is None:
            out.append(item)
            continue
        start, end = float(m[1]), float(m[2])
        if m[4] is not None:  # [count]: evenly spaced from start to end
            count = int(m[4])
            values = [start + (end - start) * k / max(count - 1, 1) for k in range(count)]
        else:
            step = float(m[3]) if m[3] is not None else 1.0
            if step == 0 or (end - start) / step < 0:
                raise RequestError(f"{where}: the range {item!r} never reaches its end")
            values = [start + step * k for k in range(int((end - start) / step + 1e-9) + 1) if k < MAX_RANGE + 1]
        if len(values) > MAX_RANGE:
            raise RequestError(f"{where}: the range {item!r} makes more than {MAX_RANGE} values")
        out += [str(int(v)) if kind is int else f"{v:g}" for v in values]
    return out


def _quoted(value: str) -> str:
    return f'"{value}"' if any(c in value for c in '," ') else value


def xyz_specs(args: list) -> list[str]:
    """kaiga axis specs (`field=v1,v2`) of A1111's X/Y/Z `script_args`: the axes that are not Nothing, in order
    (a z axis after a Nothing y becomes kaiga's y); RequestError naming the argument."""
    specs = []
    for k, name in enumerate("xyz"):
        if len(args) <= 3 * k:
            break
        label = _label(args[3 * k], f"script_args[{3 * k}]")
        if label == "Nothing":
            continue
        if label not in AXIS_FIELDS:
            raise RequestError(f"script_args[{3 * k}]: kaiga's X/Y/Z plot has the axes {', '.join(AXIS_FIELDS)} "
                               f"(got {label!r})")
        text = args[3 * k + 1] if len(args) > 3 * k + 1 and isinstance(args[3 * k + 1], str) else ""
        dropdown = args[3 * k + 2] if len(args) > 3 * k + 2 and isinstance(args[3 * k + 2], list) else []
        where = f"script_args[{3 * k + 1}]"
        if label in DROPDOWN_AXES and dropdown:
            values = [str(v) for v in dropdown]
        else:
            values = _expanded(text, NUMERIC.get(label, str), where) if label in NUMERIC else \
                [v.strip() for v in text.split(",")]
        if label == "Sampler":
            from kaiga.server.a1111_api import sampler_of

            values = [sampler_of(v) for v in values]
        if not values or any(v == "" for v in values):
            raise RequestError(f"{where}: the {label} axis needs values separated by commas, none empty "
                               f"(got {text!r})")
        specs.append(f"{AXIS_FIELDS[label]}=" + ",".join(_quoted(v) for v in values))
    if not specs:
        raise RequestError("script_args[0]: the X axis is Nothing; give it a type and values")
    return specs


def _flag(args: list, i: int, default: bool) -> bool:
    return bool(args[i]) if len(args) > i and args[i] not in (None, "") else default


async def xyz_plot(state: ServerState, body, base: GenerationRequest, principal: Principal) -> dict:
    """Run the X/Y/Z plot that `body.script_args` asks for on `base` (the txt2img request), answered as A1111's."""
    from kaiga.server.a1111_api import _info, _model_from_option

    args = list(body.script_args or [])
    try:
        specs = xyz_specs(args)
        axes = [parse_axis(name, spec) for name, spec in zip("xyz", specs)]
        axes = [a if a.field != "model" else
                type(a)(a.flag, a.field, [_model_from_option(state, v) or v for v in a.values]) for a in axes]
        if base.n != 1:
            raise RequestError("batch_size: kaiga's X/Y/Z plot makes one image a cell; put seeds on an axis")
        todo = checked_cells(state, base if _flag(args, 12, False) else with_seed(base), axes)  # 12: no_fixed_seeds
    except (RequestError, ModelError) as e:
        raise ApiError(422, str(e), param=str(e).split(":", 1)[0]) from None
    spec = {name: s for name, s in zip("xyz", specs)}
    sheet_ids, made, jobs = await run_cells(state, todo, axes, base.prompt, spec, principal,
                                            {"api": "a1111-xyz", "body": body.model_dump()})
    sheets = [await _gallery_png(state, i) for i in sheet_ids]
    lone = [data for _, data in made] if _flag(args, 10, False) else []  # 10: include_lone_images
    rows = [row for row, _ in made]
    info = json.loads(_info(rows, todo[0].request, jobs[0]))
    info.update(index_of_first_image=len(sheets),
                kaiga_grid={"axes": spec, "sheets": sheet_ids, "cells": [r.id for r in rows]})
    return {"images": [base64.b64encode(png).decode() for png in sheets + lone], "parameters": body.model_dump(),
            "info": json.dumps(info)}


async def _gallery_png(state: ServerState, image_id: int) -> bytes:
    from kaiga.server.gallery_api import _store

    image = await _store(state.gallery.image, image_id)
    return await run_in_threadpool((state.gallery.folder / image.path).read_bytes)
