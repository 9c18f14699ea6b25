"""What the request handlers share: database, queue, gallery, models, worker, and `run`.

`run` is the path of every generation request, whatever API it came through: check the request
against the model, fix its seed (so that a job re-run after a crash makes the same images), queue it
(idempotently), and wait for it.

Example:
    >>> from kaiga.request import GenerationRequest
    >>> with_seed(GenerationRequest(prompt="a red car", seed=5)).seed
    5
    >>> nul_field({"prompt": "a red car", "user": "ann\\x00"})
    'user'
    >>> unknown_words([{"extra": {"unknown_words": ["zebra"]}}, {"extra": {"unknown_words": ["zebra", "okapi"]}}])
    ['zebra', 'okapi']
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.concurrency import run_in_threadpool

from kaiga.model_files import ModelError
from kaiga.request import MAX_SEED, GenerationRequest, RequestError
from kaiga.server.catalog import Catalog
from kaiga.server.errors import ApiError
from kaiga.server.settings import ServerSettings
from kaiga.server.waiters import Waiters
from kaiga.store.db import Database
from kaiga.store.gallery import Gallery
from kaiga.store.jobs import (
    PERSONALIZE,
    RECORD_EXTRA,
    IdempotencyConflict,
    JobNotFound,
    JobQueue,
    JobView,
    QueueFull,
    request_hash,
)
from kaiga.store.tables import Image, JobStatus
from kaiga.worker import INVALID_REQUEST, Workers

MAX_IDEMPOTENCY_KEY = 200


def with_seed(request: GenerationRequest) -> GenerationRequest:
    if request.seed is not None:
        return request
    return request.model_copy(update={"seed": secrets.randbelow(MAX_SEED + 1)})


def nul_field(fields: dict) -> str | None:
    """The first field whose text holds a NUL character, else None. PostgreSQL cannot store one in a
    text column, so such a request would fail in the database (a 500), or later in its job."""
    for name, value in fields.items():
        if isinstance(value, str) and "\x00" in value:
            return name
    return None


# How every interface says which words of a prompt were dropped (the CLI's warning says the same).
UNKNOWN_WORDS_NOTE = "the model does not know these words and ignored them"


def noted(records: Iterable[dict], key: str) -> list[str]:
    """What the Studio noted under `extra[key]` of the images' records, each once: `unknown_words` (the
    prompt's words the model did not know and ignored), `ignored_fields` (request fields it does not read)."""
    return list(dict.fromkeys(w for r in records for w in (r.get("extra") or {}).get(key, [])))


def unknown_words(records: Iterable[dict]) -> list[str]:
    """The words of the prompts the model did not know and ignored, each once, from the images' records."""
    return noted(records, "unknown_words")


@dataclass
class Principal:
    """Who is calling: a key's name, an A1111 user, or "anonymous"; `scope` separates idempotency keys."""

    name: str
    scope: str


@dataclass
class ServerState:
    settings: ServerSettings
    db: Database
    queue: JobQueue
    gallery: Gallery
    catalog: Catalog
    waiters: Waiters
    workers: Workers | None  # None: a server that only queues (tests)
    a1111_options: dict = field(default_factory=dict)
    live_studio: object | None = None  # /v1/live's Studio (kaiga.server.live_api), made on first use

    async def submit(self, request: GenerationRequest, *, principal: Principal, user: str | None = None,
                     priority: int = 0, idempotency_key: str | None = None, fingerprint: dict,
                     record_extra: dict | None = None, personalize: dict | None = None) -> JobView:
        """Queue `request` (or find the job an earlier try with the same idempotency key queued); `record_extra`:
        what its images' records add to `extra` (a remix says which), kept beside the request in the job;
        `personalize`: whose taste steers it (kaiga.server.personalize), kept there too."""
        try:
            self.catalog.check(request)
        except (RequestError, ModelError) as e:
            field_name = str(e).split(":", 1)[0]
            raise ApiError(400, str(e), param=field_name if field_name.isidentifier() else None,
                           code="invalid_value") from None
        key = None
        if idempotency_key is not None:
            if not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
                raise ApiError(400, f"Idempotency-Key: 1 to {MAX_IDEMPOTENCY_KEY} characters", param="Idempotency-Key")
            key = f"{principal.scope}:{idempotency_key}"
        stored = (with_seed(request).model_dump(mode="json") | ({RECORD_EXTRA: record_extra} if record_extra else {})
                  | ({PERSONALIZE: personalize} if personalize else {}))
        if (bad := nul_field({**stored, "user": user})) is not None:
            raise ApiError(400, f"{bad}: must not contain the NUL character (\\u0000)", param=bad, code="invalid_value")
        model = self.catalog.ref(request.model).name  # the worker of this model runs it
        try:
            job, created = await run_in_threadpool(
                self.queue.submit, stored, user=user or principal.name, priority=priority, idempotency_key=key,
                fingerprint=request_hash(fingerprint), model=model)
        except QueueFull as e:
            raise ApiError(429, str(e), code="queue_full", headers={"Retry-After": str(e.retry_after)}) from None
        except IdempotencyConflict as e:
            raise ApiError(409, str(e), param="Idempotency-Key", code="idempotency_key_reused") from None
        if created and self.workers is not None:
            self.workers.wake(model)
        return job

    async def wait(self, job: JobView) -> JobView:
        """The finished job; an ApiError if it failed, was cancelled or took too long."""
        try:
            job = await self.waiters.wait(job.id, self.settings.wait_timeout_s)
        except TimeoutError:
            raise ApiError(504, f"job {job.id} is still {job.status} after {self.settings.wait_timeout_s:g} s; "
                                f"GET /v1/jobs/{job.id} tells when it is done", code="timeout") from None
        if job.status == JobStatus.FAILED.value:
            if job.error and job.error.startswith(INVALID_REQUEST):
                raise ApiError(400, job.error.removeprefix(INVALID_REQUEST), code="invalid_value")
            raise ApiError(500, f"job {job.id} failed: {job.error}", code="generation_failed")
        return job

    async def images(self, job: JobView, with_bytes: bool = False) -> list[tuple[Image, bytes | None]]:
        """The job's image rows and, if asked, their PNG files' bytes (one trip to the thread pool)."""
        def load():
            rows = self.gallery.get(job.result_image_ids or [])
            return [(r, (self.gallery.folder / r.path).read_bytes() if with_bytes else None) for r in rows]

        return await run_in_threadpool(load)

    async def job(self, job_id: str) -> JobView:
        try:
            return await run_in_threadpool(self.queue.get, job_id)
        except JobNotFound:
            raise ApiError(404, f"no job {job_id!r}", param="job_id", code="not_found") from None

    def progress(self, job: JobView) -> float:
        """Live progress of a running job in this process, else what the database holds."""
        current = self.workers.current(job.id) if self.workers is not None else None
        if current is not None:
            return current.progress
        return job.progress
