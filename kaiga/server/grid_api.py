"""A1111's X/Y/Z plot over HTTP, as `kaiga grid`: `POST /v1/grids` with a request and up to three axes.

The body is a generation request (every field but the edit ones and `n`: a cell is one image) plus `x`, `y`
and `z`, each `FIELD=v1,v2,...` as the CLI's `--x` (kaiga/xyz_plot.py). Every cell is checked before the first
is queued; each is a job of its own, so the cells land in the gallery with their records (`extra.grid`: the
axes and the cell's place), and the labelled sheet(s) join them as gallery images whose records carry the
first cell's and the axes. The answer (201) comes when every cell is made: `{"sheets": [...], "cells": [...]}`,
gallery items as `GET /v1/gallery/images` gives them. The web UI's "X/Y plot" fields call it.

Example:
    >>> GridBody(prompt="a red car", x="steps=4,8").x
    'steps=4,8'
"""

from __future__ import annotations

import io

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from kaiga.metadata import GenerationRecord
from kaiga.model_files import ModelError
from kaiga.request import GenerationRequest, RequestError, field_specs
from kaiga.server.auth import authenticate
from kaiga.server.errors import ApiError, from_validation
from kaiga.server.gallery_api import _item, _store
from kaiga.server.request_fields import request_body, request_values, taken_fields
from kaiga.server.state import Principal, ServerState, with_seed
from kaiga.xyz_plot import NOT_AXES, Axis, Cell, parse_axis, plot_cells, sheets_of

router = APIRouter(prefix="/v1/grids", tags=["kaiga grids"], dependencies=[Depends(authenticate)])

GRID_FIELDS = taken_fields(exclude=NOT_AXES)  # a cell is one image of the request, never an edit
AXIS_HELP = "FIELD=v1,v2,... over any request field, as kaiga grid's --x (prompt=a,b replaces a in the prompt)"


class _Axes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    x: str = Field(description="The columns: " + AXIS_HELP)
    y: str | None = Field(None, description="The rows: " + AXIS_HELP)
    z: str | None = Field(None, description="One sheet per value (give y first): " + AXIS_HELP)


class GridBody(request_body("GridRequestFields", GRID_FIELDS, base=_Axes)):
    """The body of `POST /v1/grids`: the base request and its axes."""

    prompt: str = Field(description=field_specs()["prompt"].help)


def _refused(e: Exception) -> ApiError:
    field = str(e).split(":", 1)[0]
    return ApiError(400, str(e), param=field if field.isidentifier() else None, code="invalid_value")


@router.post("", status_code=201)
async def make_grid(body: GridBody, request: Request, principal: Principal = Depends(authenticate)):
    """Make every cell of the plot (one job each) and its labelled sheet(s); waits for all of them."""
    state: ServerState = request.app.state.kaiga
    try:
        axes = parse_axes(body.x, body.y, body.z)
        base = with_seed(GenerationRequest(**request_values(body, GRID_FIELDS)))  # every cell the same seed
        todo = checked_cells(state, base, axes)
    except ValidationError as e:
        raise from_validation(e) from None
    except (RequestError, ModelError) as e:
        raise _refused(e) from None
    spec = {name: value for name, value in (("x", body.x), ("y", body.y), ("z", body.z)) if value}
    sheet_ids, made, _ = await run_cells(state, todo, axes, base.prompt, spec, principal,
                                      {"api": "grid", "body": body.model_dump(exclude_none=True)})
    items = [[_item(request, await _store(state.gallery.image, i)) for i in ids]
             for ids in (sheet_ids, [row.id for row, _ in made])]
    return JSONResponse({"sheets": items[0], "cells": items[1]}, status_code=201)


def checked_cells(state: ServerState, base: GenerationRequest, axes: list[Axis]) -> list[Cell]:
    """The plot's cells, every cell's model, size and styles checked before the first job (RequestError,
    ModelError)."""
    todo = plot_cells(base, axes)
    for cell in todo:
        state.catalog.check(cell.request)
    return todo


async def run_cells(state: ServerState, todo: list[Cell], axes: list[Axis], prompt: str, spec: dict,
                    principal: Principal, fingerprint: dict,
                    record_extra: dict | None = None) -> tuple[list[int], list, list]:
    """Queue every cell (a job each, its record's `extra.grid` the axes `spec` and its place), wait for all, and
    store the labelled sheet(s) in the gallery: (the sheets' gallery ids, each cell's (row, PNG bytes), the jobs)."""
    jobs = [await state.submit(cell.request, principal=principal, fingerprint={**fingerprint, "cell": cell.index},
                               record_extra={**(record_extra or {}), "grid": {**spec, "cell": list(cell.index)}})
            for cell in todo]
    made = [(await state.images(await state.wait(job), with_bytes=True))[0] for job in jobs]
    pictures = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in made]
    sheet_ids = await run_in_threadpool(_add_sheets, state, pictures, axes, prompt, made[0][0].record, spec)
    return sheet_ids, made, jobs


def parse_axes(x: str, y: str | None = None, z: str | None = None, names=("x", "y", "z")) -> list[Axis]:
    """The plot's axes from their specs (`FIELD=v1,v2`), each error naming the field it came from."""
    if z is not None and y is None:
        raise RequestError(f"{names[2]}: give {names[1]} first (z makes one sheet per value of an x × y plot)")
    return [parse_axis(names[0], x)] + [parse_axis(name, spec) for name, spec in zip(names[1:], (y, z)) if spec]


def _add_sheets(state: ServerState, pictures, axes, prompt: str, first: dict, spec: dict) -> list[int]:
    """The sheets stored in the gallery, each with the first cell's record and the axes (`extra.grid`)."""
    record = GenerationRecord.model_validate(first)
    ids = []
    with state.db.session() as s:
        for label, sheet in sheets_of(pictures, axes, prompt):
            grid = {**spec, "sheet": label} if label else spec
            ids.append(state.gallery.add(s, sheet, record.model_copy(update={"extra": {**record.extra, "grid": grid}})))
    return ids
