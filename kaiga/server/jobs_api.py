"""kaiga's own job endpoints: queue without waiting, follow a job's progress, cancel it.

`POST /v1/jobs` takes a `GenerationRequest` (plus priority) and answers 202 at once;
`GET /v1/jobs/{id}` gives status, progress and, when done, the images' URLs and records, and the
prompt's words the model did not know and ignored (`unknown_words`) and the request fields it does not
read (`ignored_fields`: steps for a GAN, truncation for diffusion), which it ran without;
`POST /v1/jobs/{id}/cancel` cancels a pending job or stops a running one between steps.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kaiga.request import GenerationRequest, field_specs
from kaiga.server.auth import authenticate
from kaiga.server.edit_inputs import SREF_HELP, style_reference
from kaiga.server.errors import from_validation
from kaiga.server.openai_api import file_url
from kaiga.server.personalize import ChooseFrom, Personalize, personalization
from kaiga.server.request_fields import request_body, request_values, taken_fields
from kaiga.server.state import Principal, ServerState, noted, unknown_words
from kaiga.store.jobs import JobView

router = APIRouter(prefix="/v1/jobs", tags=["kaiga jobs"], dependencies=[Depends(authenticate)])


JOB_FIELDS = taken_fields()  # every field of the request, under its own name


class _JobFields(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a field the request does not have is refused, naming it

    priority: Annotated[int, Field(ge=-100, le=100, description="Higher runs first.")] = 0
    user: Annotated[str | None, Field(max_length=255, description="Whose job it is, for fair queueing.")] = None
    sref: str | None = Field(None, description=SREF_HELP)
    personalize: Personalize = None
    choose_from: ChooseFrom = 4


class JobBody(request_body("JobRequestFields", JOB_FIELDS, base=_JobFields)):
    """The body of `POST /v1/jobs`: a generation request (every field of `GenerationRequest`, ranges
    checked by it) with a priority and a user."""

    prompt: str = Field(description=field_specs()["prompt"].help)  # required, as by the request


async def describe_job(state: ServerState, request: Request, job: JobView) -> dict:
    """A job as the job endpoints (and the gallery's rerun) answer it."""
    images = [row for row, _ in await state.images(job)] if job.result_image_ids else []
    return {"id": job.id, "status": job.status, "progress": state.progress(job), "priority": job.priority,
            "user": job.user, "attempts": job.attempts, "error": job.error, "request": job.request,
            "created": job.created.isoformat(), "started": job.started.isoformat() if job.started else None,
            "finished": job.finished.isoformat() if job.finished else None,
            "images": [{"id": r.id, "sha256": r.sha256, "url": file_url(request, r.sha256), "record": r.record}
                       for r in images],
            "unknown_words": unknown_words(r.record for r in images),
            "ignored_fields": noted((r.record for r in images), "ignored_fields")}


@router.post("", status_code=202, responses={202: {"description": "Queued: the job, as GET /v1/jobs/{id} answers"}})
async def submit_job(body: JobBody, request: Request, principal: Principal = Depends(authenticate),
                     idempotency_key: Annotated[str | None, Header()] = None):
    """Queue a generation and answer at once (202) with the job."""
    state: ServerState = request.app.state.kaiga
    try:
        gen = GenerationRequest(**request_values(body, JOB_FIELDS))
    except ValidationError as e:
        raise from_validation(e) from None
    gen, record_extra = await style_reference(gen, body.sref)
    personal = await personalization(state, principal, body.personalize, body.choose_from)
    fingerprint = {"api": "jobs", "body": body.model_dump(exclude_none=True)}
    job = await state.submit(gen, principal=principal, user=body.user, priority=body.priority,
                             idempotency_key=idempotency_key, fingerprint=fingerprint, record_extra=record_extra,
                             personalize=personal)
    return JSONResponse(await describe_job(state, request, job), status_code=202)


@router.get("/{job_id}")
async def get_job(job_id: str, request: Request):
    """A job's status, progress (0-1) and, once done, its images."""
    state: ServerState = request.app.state.kaiga
    return await describe_job(state, request, await state.job(job_id))


@router.post("/{job_id}/cancel")
async def cancel_job(job_id: str, request: Request):
    """Cancel a pending job now; a running one stops at its next denoising step."""
    from starlette.concurrency import run_in_threadpool

    state: ServerState = request.app.state.kaiga
    await state.job(job_id)  # 404 if unknown
    job = await run_in_threadpool(state.queue.cancel, job_id)
    if state.workers is not None:
        state.workers.interrupt(job_id)
    return await describe_job(state, request, job)
