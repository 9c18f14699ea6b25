"""Campaigns over HTTP, as `kaiga campaign run` and `status`: the server's own workers make the cells.

    POST /v1/campaigns          `{plan: {name, prompt, axes, seeds, ...request fields}}` or `{yaml: "..."}` -> 202
    GET  /v1/campaigns          every campaign in this database, with its status
    GET  /v1/campaigns/{name}   one campaign's status: cells, done, failed, pending, running, the failures
    GET  /v1/campaigns/{name}/images    every made cell's image: gallery item, cell values, every review
    POST /v1/campaigns/{name}/reviews   `{image_id, decision?: "approved" | "rejected" | null, star?, note?}`, as the caller
    POST /v1/campaigns/{name}/more      `{strength?: "subtle" | "strong", n?}`: variations of every approved image
    GET  /v1/campaigns/{name}/sheets    the contact sheets (one per pair of axes), each with its URL
    GET  /v1/campaigns/{name}/sheets/{sheet}.png   one sheet of the cells made so far (PNG), as `kaiga campaign run`

The plan is the YAML plan's keys as JSON (kaiga/campaigns/plan.py; `name` is required here). Every cell is
checked against its model before the first is queued (400 naming the key or the cell); the cells are jobs of the
server's queue keyed by their pixel fingerprint, so posting the same plan again queues only what is missing (and
tries failed cells again), and a plan posted here can be continued by `kaiga campaign run` on the same database,
or the other way round. The cells queue below API requests and outside the queue's limit.

Example:
    >>> CampaignBody(plan={"name": "ad", "prompt": "a {c} car", "axes": {"c": ["red"]}}).plan["name"]
    'ad'
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from kaiga.campaigns.plan import CampaignPlan, PlanError, check_cells, parse_plan, plan_data, with_keys
from kaiga.campaigns.runner import status, submit_cells
from kaiga.model_files import ModelError
from kaiga.request import RequestError
from kaiga.server.auth import authenticate
from kaiga.server.errors import ApiError
from kaiga.server.state import Principal, ServerState
from kaiga.store.campaigns import CampaignPlans

router = APIRouter(prefix="/v1/campaigns", tags=["kaiga campaigns"], dependencies=[Depends(authenticate)])


class CampaignBody(BaseModel):
    """The plan as JSON (`plan`) or as the YAML text of a plan file (`yaml`, what the web UI sends): one of them."""

    model_config = ConfigDict(extra="forbid")
    plan: dict[str, Any] | None = None
    yaml: str | None = Field(None, max_length=100_000)

    def data(self) -> dict:
        if (self.plan is None) == (self.yaml is None):
            raise ApiError(400, "plan: give the plan as JSON (plan) or as YAML text (yaml), one of them",
                           param="plan", code="invalid_value")
        if self.plan is not None:
            return self.plan
        try:
            return plan_data(self.yaml)
        except PlanError as e:
            raise ApiError(400, f"yaml: {e}", param="yaml", code="invalid_value") from None


def _refused(message: str) -> ApiError:
    field = message.split(":", 1)[0]
    return ApiError(400, message, param=field if field.replace(".", "").isidentifier() else "plan",
                    code="invalid_value")


def _checked(state: ServerState, data: dict) -> tuple[CampaignPlan, list]:
    """The plan and its keyed cells, every cell checked against its model; ApiError(400) naming the key."""
    try:
        plan = parse_plan(data)
        if plan.name is None:
            raise PlanError("name: a campaign sent to the server needs a name (letters, digits, '.', '_', '-')")
        cells = with_keys(plan.cells(), lambda model: state.catalog.hash(state.catalog.ref(model).name))
        check_cells(cells, state.catalog.check)
    except (PlanError, RequestError, ModelError) as e:
        raise _refused(str(e)) from None
    return plan, cells


@router.post("", status_code=202)
async def start_campaign(body: CampaignBody, request: Request):
    """Queue every cell of the plan not made yet (the server's workers make them); 202 with the status."""
    state: ServerState = request.app.state.kaiga
    plan, cells = await run_in_threadpool(_checked, state, body.data())

    def queue_cells() -> int:
        CampaignPlans(state.db).save(plan.name, plan.model_dump(mode="json"))
        state.queue.retry_failed(plan.name)  # posted again: its failed cells are tried again
        return submit_cells(state.queue, plan, cells, lambda model: state.catalog.ref(model).name)

    new = await run_in_threadpool(queue_cells)
    if state.workers is not None:
        for name in {state.catalog.ref(c.request.model).name for c in cells}:
            state.workers.wake(name)
    result = await run_in_threadpool(status, state.queue, plan, cells)
    return JSONResponse({**result.to_dict(), "queued_now": new}, status_code=202)


def _status_of(state: ServerState, name: str) -> dict:
    plan, cells = _stored(state, name)
    return status(state.queue, plan, cells).to_dict()


@router.get("/{name}")
async def get_campaign(name: str, request: Request):
    """A campaign's status: how many cells are made, failed and still to make, and why the failed ones failed."""
    return await run_in_threadpool(_status_of, request.app.state.kaiga, name)


@router.get("")
async def list_campaigns(request: Request):
    """Every campaign in this database, with its status."""
    state: ServerState = request.app.state.kaiga

    def every() -> list[dict]:
        return [_status_of(state, name) for name in CampaignPlans(state.db).names()]

    return {"data": await run_in_threadpool(every)}


def _stored(state: ServerState, name: str) -> tuple[CampaignPlan, list]:
    stored = CampaignPlans(state.db).get(name)
    if stored is None:
        raise ApiError(404, f"no campaign {name!r}", param="name", code="not_found")
    return _checked(state, stored)


@router.get("/{name}/images")
async def campaign_images_of(name: str, request: Request, principal: Principal = Depends(authenticate)):
    """Every made cell's image, in the plan's order: the gallery item, the cell's values and every review;
    `reviewer` is the name the caller's reviews are recorded under."""
    from kaiga.campaigns.review import campaign_images
    from kaiga.server.gallery_api import _item

    state: ServerState = request.app.state.kaiga

    def read() -> list:
        plan, cells = _stored(state, name)
        return campaign_images(state.queue, state.gallery, plan, cells)

    images = await run_in_threadpool(read)
    return {"reviewer": principal.name,
            "data": [{**_item(request, im.view), **im.to_dict(),
                      "reviews": [r.to_dict() for r in im.reviews]} for im in images]}


@router.get("/{name}/sheets")
async def campaign_sheets(name: str, request: Request):
    """The campaign's contact sheets: one per pair of axes, with the URL of each PNG."""
    from kaiga.campaigns.sheets import sheet_names

    state: ServerState = request.app.state.kaiga
    plan, _ = await run_in_threadpool(_stored, state, name)
    return {"data": [{"name": stem, "url": str(request.url_for("campaign_sheet", name=name, sheet=f"{stem}.png"))}
                     for stem in sheet_names(plan)]}


@router.get("/{name}/sheets/{sheet}", name="campaign_sheet")
async def campaign_sheet(name: str, sheet: str, request: Request):
    """One contact sheet of the cells made so far (grey where a cell is not made yet), drawn now."""
    import io

    from fastapi.responses import Response
    from PIL import Image

    from kaiga.campaigns.review import campaign_images
    from kaiga.campaigns.sheets import pair_sheets, sheet_names

    state: ServerState = request.app.state.kaiga

    def draw() -> bytes:
        plan, cells = _stored(state, name)
        stem = sheet.removesuffix(".png")
        if stem not in sheet_names(plan):
            raise ApiError(404, f"sheet: {sheet!r} is not a sheet of campaign {name!r} (its sheets: "
                           f"{', '.join(s + '.png' for s in sheet_names(plan))})", param="sheet", code="not_found")
        images = {}
        for im in campaign_images(state.queue, state.gallery, plan, cells):
            with Image.open(im.path) as opened:
                images[im.cell.index] = opened.convert("RGB")
        ((_, drawn),) = pair_sheets(plan, cells, images, only=stem)
        buffer = io.BytesIO()
        drawn.save(buffer, format="PNG")
        return buffer.getvalue()

    return Response(await run_in_threadpool(draw), media_type="image/png")


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_id: int = Field(ge=1)
    decision: Literal["approved", "rejected"] | None = None
    star: bool | None = None
    note: str | None = Field(None, max_length=2000)
    rating: int | None = Field(None, ge=1, le=5)


@router.post("/{name}/reviews")
async def review_image(name: str, body: ReviewBody, request: Request, principal: Principal = Depends(authenticate)):
    """Record the caller's review of one of the campaign's images (the fields sent; `decision: null` clears it)."""
    from kaiga.campaigns.review import campaign_images
    from kaiga.store.reviews import UNSET, Reviews

    state: ServerState = request.app.state.kaiga

    def record():
        plan, cells = _stored(state, name)
        ids = {im.image_id for im in campaign_images(state.queue, state.gallery, plan, cells)}
        if body.image_id not in ids:
            raise ApiError(404, f"image_id: {body.image_id} is not an image of campaign {name!r}", param="image_id",
                           code="not_found")
        sent = body.model_fields_set
        return Reviews(state.db).set(body.image_id, principal.name,
                                     decision=body.decision if "decision" in sent else UNSET,
                                     star=body.star if body.star is not None else UNSET,
                                     note=body.note if "note" in sent else UNSET,
                                     rating=body.rating if "rating" in sent else UNSET)

    review = await run_in_threadpool(record)
    return {"image_id": body.image_id, **review.to_dict()}


class MoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    strength: Literal["subtle", "strong"] = "subtle"
    n: int = Field(4, ge=1, le=16)


@router.post("/{name}/more", status_code=202)
async def more_like_this(name: str, body: MoreBody, request: Request, principal: Principal = Depends(authenticate)):
    """"More like this": Midjourney's vary of every approved image of the campaign (someone approved it, nobody
    rejected it), as the gallery's vary makes it; one job per image, 202 with them. Their records say the image they
    vary and the campaign (`extra.campaign.more_like`)."""
    from kaiga.campaigns.review import campaign_images
    from kaiga.server.edit_inputs import store_remix
    from kaiga.server.jobs_api import describe_job
    from kaiga.server.remix_api import _picture
    from kaiga.variations import vary_plan

    state: ServerState = request.app.state.kaiga

    def approved() -> list[int]:
        plan, cells = _stored(state, name)
        return [im.image_id for im in campaign_images(state.queue, state.gallery, plan, cells) if im.approved]

    ids = await run_in_threadpool(approved)
    if not ids:
        raise ApiError(400, f"name: campaign {name!r} has no approved image yet; approve some first", param="name",
                       code="invalid_value")
    edits = []
    for image_id in ids:  # every edit checked (and its canvas stored) before the first job is queued
        picture, record = await _picture(state, image_id)
        plan = await run_in_threadpool(vary_plan, picture, record, body.strength)
        edits.append((image_id, plan, await store_remix(state, plan, {"n": body.n})))
    jobs = []
    for image_id, plan, edit in edits:
        job = await state.submit(edit, principal=principal,
                                 fingerprint={"api": "campaign-more", "image": image_id, "body": body.model_dump()},
                                 record_extra={"remix": plan.kind, "remixed_image": image_id,
                                               "campaign": {"name": name, "more_like": image_id}})
        jobs.append(await describe_job(state, request, job))
    return JSONResponse({"jobs": jobs, "images": ids}, status_code=202)
