"""The durable job queue: every generation request is a row in `jobs`, so a crash loses none.

Order: higher priority first; among equals, the user whose last job started longest ago (users
never served come first), which is round-robin across users; then first come, first served.
Each job names its model, and the server runs one worker per model, which claims only that model's
jobs: jobs for different models run side by side, jobs for one model one at a time.
A worker claims a job with a conditional UPDATE (pending -> running), so two workers, even in two
processes, never take the same job; finishing is conditional on the claim's attempt number, so a
stale worker cannot finish a job twice. On start-up `recover()` puts jobs that were running when the
process died back in the queue, or fails them once they have been started `max_attempts` times.
Where several processes share the queue (`kaiga worker`), a queue with a lease (`lease_s`) takes that place: a
running job's worker beats every few seconds (`heartbeat`), and `claim` first puts back a job whose worker has
not beaten for `lease_s` (it died: `kill -9`, a lost machine), counting the attempt.

Example:
    >>> from kaiga.store.db import open_database
    >>> q = JobQueue(open_database("sqlite://"))
    >>> job, created = q.submit({"prompt": "a red car", "seed": 1}, user="ann")
    >>> created, job.status
    (True, 'pending')
    >>> q.claim().id == job.id
    True
    >>> q.finish(job.id, attempt=1, image_ids=[]).status
    'done'
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from kaiga.store.db import Database
from kaiga.store.tables import FINISHED, Job, JobStatus, utcnow

RECORD_EXTRA = "record_extra"  # beside a job's request fields: what its images' records add to `extra` (a remix)
# beside them too: {"person": name, "choose_from": k}, generation steered by that person's taste (kaiga/taste/).
# A job's option, not a request field: a campaign cell's key fingerprints the request's fields, and stays as it was.
PERSONALIZE = "personalize"


def split_request(stored: dict) -> tuple[dict, dict | None]:
    """A job's stored request as the request's fields alone, and what its records add (None: nothing)."""
    fields = {k: v for k, v in stored.items() if k not in (RECORD_EXTRA, PERSONALIZE)}
    return fields, stored.get(RECORD_EXTRA)


def personalize_of(stored: dict) -> dict | None:
    """Whose taste a job's images are steered by, and how many candidates each is the best of (None: nobody's)."""
    return stored.get(PERSONALIZE)


class QueueFull(Exception):
    """The queue holds `max_queued` unfinished jobs; try again after `retry_after` seconds."""

    def __init__(self, depth: int, retry_after: int):
        super().__init__(f"the queue is full ({depth} jobs waiting or running); retry after {retry_after} s")
        self.retry_after = retry_after


class IdempotencyConflict(Exception):
    """An idempotency key was reused with a different request."""


class JobNotFound(KeyError):
    pass


class StaleClaim(RuntimeError):
    """A worker tried to finish a job it no longer holds; nothing was written."""


@dataclass(frozen=True)
class JobView:
    """A job as read at one moment (detached from any database session)."""

    id: str
    status: str
    priority: int
    user: str
    request: dict
    progress: float
    error: str | None
    attempts: int
    result_image_ids: list[int] | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    idempotency_key: str | None = None
    campaign: str | None = None

    @property
    def finished_ok(self) -> bool:
        return self.status == JobStatus.DONE.value

    @property
    def is_finished(self) -> bool:
        return JobStatus(self.status) in FINISHED

    @classmethod
    def of(cls, job: Job) -> JobView:
        return cls(job.id, job.status, job.priority, job.user, dict(job.request), job.progress, job.error,
                   job.attempts, list(job.result_image_ids) if job.result_image_ids is not None else None,
                   job.created, job.started, job.finished, job.idempotency_key, job.campaign)


def request_hash(request: dict) -> str:
    """A stable hash of a request (sorted-key JSON), to tell a retry from a different request."""
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()


class JobQueue:
    """Submit, claim, finish, cancel and recover jobs stored in `db`."""

    def __init__(self, db: Database, max_queued: int = 64, max_attempts: int = 3, lease_s: float | None = None):
        self.db = db
        self.max_queued = max_queued
        self.max_attempts = max_attempts
        self.lease_s = lease_s  # None: one process runs the queue's jobs (the server), so `recover` at its start

    # --- clients ---------------------------------------------------------------------------
    def submit(self, request: dict, *, user: str = "", priority: int = 0, idempotency_key: str | None = None,
               fingerprint: str | None = None, model: str = "", campaign: str | None = None) -> tuple[JobView, bool]:
        """Queue `request`; returns (job, created). With a known idempotency key: the existing job.

        `fingerprint` identifies the request as the client sent it (default: `request`'s hash); a key
        reused with another fingerprint raises IdempotencyConflict. A `campaign`'s cells are bounded by its
        plan, not by `max_queued` (which keeps API clients from flooding the queue), and are not counted in it.
        """
        fingerprint = fingerprint or request_hash(request)
        if idempotency_key is not None:
            existing = self._by_key(idempotency_key, fingerprint)
            if existing is not None:
                return existing, False
        depth = self.depth() if campaign is None else 0
        if depth >= self.max_queued:
            raise QueueFull(depth, self.retry_after(depth))
        job = Job(id=str(uuid.uuid4()), status=JobStatus.PENDING.value, priority=priority, user=user, model=model,
                  idempotency_key=idempotency_key, request_hash=fingerprint, request=request, progress=0.0,
                  attempts=0, cancel_requested=False, created=utcnow(), campaign=campaign)
        try:
            with self.db.session() as s:
                s.add(job)
        except IntegrityError:  # the same key submitted concurrently: the other request won
            existing = self._by_key(idempotency_key, fingerprint) if idempotency_key else None
            if existing is None:
                raise
            return existing, False
        return JobView.of(job), True

    def _by_key(self, key: str, fingerprint: str) -> JobView | None:
        with self.db.session() as s:
            job = s.scalar(select(Job).where(Job.idempotency_key == key))
            if job is None:
                return None
            if job.request_hash != fingerprint:
                raise IdempotencyConflict("this Idempotency-Key was used before with a different request")
            return JobView.of(job)

    def get(self, job_id: str) -> JobView:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise JobNotFound(job_id)
            return JobView.of(job)

    def cancel(self, job_id: str) -> JobView:
        """Cancel a pending job now; ask the worker to stop a running one (it checks between steps)."""
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.PENDING.value)
                      .values(status=JobStatus.CANCELLED.value, finished=utcnow(), cancel_requested=True))
            s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
                      .values(cancel_requested=True))
        return self.get(job_id)

    def depth(self) -> int:
        """Jobs not finished yet (pending or running), campaigns' cells aside."""
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(Job).where(
                Job.status.in_([JobStatus.PENDING.value, JobStatus.RUNNING.value]), Job.campaign.is_(None))) or 0

    def retry_after(self, depth: int) -> int:
        """Seconds until about one place frees up: the mean run time of recent jobs (1 s if none)."""
        with self.db.session() as s:
            rows = s.execute(select(Job.started, Job.finished).where(Job.status == JobStatus.DONE.value)
                             .order_by(Job.finished.desc()).limit(20)).all()
        times = [(f - st).total_seconds() for st, f in rows if st is not None and f is not None]
        mean = sum(times) / len(times) if times else 1.0
        return max(1, min(3600, math.ceil(mean)))

    # --- the worker ------------------------------------------------------------------------
    def claim(self, models: tuple[str, ...] | None = None, campaign: str | None = None) -> JobView | None:
        """Take the next job (see the module docstring for the order) and mark it running.

        `models`: only jobs queued for these models (a model's worker); None: any job. `campaign`: only that
        campaign's cells (a campaign's own runner).
        """
        if self.lease_s is not None:
            self.expire_leases()
        for _ in range(10):  # another worker may win the race for a row; then look again
            with self.db.session() as s:
                other = aliased(Job)
                last_start = (select(func.max(other.started)).where(other.user == Job.user)
                              .correlate(Job).scalar_subquery())
                pending = select(Job.id).where(Job.status == JobStatus.PENDING.value)
                if models is not None:
                    pending = pending.where(Job.model.in_(models))
                if campaign is not None:
                    pending = pending.where(Job.campaign == campaign)
                order = (Job.priority.desc(), last_start.asc().nulls_first(), Job.created, Job.id)
                job_id = s.scalar(pending.order_by(*order).limit(1))
                if job_id is None:
                    return None
                claimed = s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.PENDING.value)
                                    .values(status=JobStatus.RUNNING.value, attempts=Job.attempts + 1,
                                            started=utcnow(), heartbeat=utcnow(), progress=0.0)).rowcount
                if claimed == 1:
                    return JobView.of(s.get(Job, job_id, populate_existing=True))
        return None

    def claim_alike(self, first: JobView, fits: Callable[[dict], bool], limit: int = 64,
                    campaign: str | None = None) -> list[JobView]:
        """More pending jobs to run in one batch with the claimed job `first`: of its model and its priority (so no
        job jumps ahead of a waiting one of higher priority), in the queue's order, each one whose stored request
        `fits` (the worker's test: the same settings but the seed, room left in the batch), claimed as `claim`
        does, all in one transaction and with `first`'s start (a batch is one claim in the record). Looks at
        `limit` pending jobs at most. Among equal priorities they run before other users' jobs of other settings
        that waited longer: they run in the same time as `first`, the price of batching."""
        with self.db.session() as s:
            model = s.scalar(select(Job.model).where(Job.id == first.id))
            pending = select(Job.id, Job.request).where(Job.status == JobStatus.PENDING.value, Job.model == model,
                                                        Job.priority == first.priority)
            if campaign is not None:
                pending = pending.where(Job.campaign == campaign)
            candidates = s.execute(pending.order_by(Job.priority.desc(), Job.created, Job.id).limit(limit)).all()
        # One transaction for the whole batch, and the batch's start for each of its jobs: a batch is then one claim
        # in the record (its jobs share `started`), however long a busy database takes over the rows. Locks are
        # taken in the queue's order, the same in every worker, so two workers' batches cannot deadlock.
        started = first.started or utcnow()
        claimed = []
        with self.db.session() as s:
            for job_id, request in candidates:
                if not fits(dict(request)):
                    continue
                won = s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.PENDING.value)
                                .values(status=JobStatus.RUNNING.value, attempts=Job.attempts + 1,
                                        started=started, heartbeat=utcnow(), progress=0.0)).rowcount
                if won == 1:
                    claimed.append(job_id)
            views = [JobView.of(s.get(Job, job_id, populate_existing=True)) for job_id in claimed]
        return views

    def _finish(self, job_id: str, attempt: int, **values) -> JobView:
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value,
                                        Job.attempts == attempt).values(**({"finished": utcnow()} | values)))
        return self.get(job_id)

    def finish(self, job_id: str, attempt: int, image_ids: list[int] | None = None,
               add_images: Callable[[Session], list[int]] | None = None) -> JobView:
        """Mark a claimed job done with its images, all in one transaction.

        `add_images(session)` stores the images and returns their ids. If the claim is stale (the job
        was re-queued, cancelled or finished meanwhile) nothing is committed: StaleClaim.
        """
        with self.db.session() as s:
            ids = list(image_ids or []) + (add_images(s) if add_images else [])
            done = s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value,
                                               Job.attempts == attempt)
                             .values(status=JobStatus.DONE.value, progress=1.0, result_image_ids=ids,
                                     finished=utcnow())).rowcount
            if done != 1:
                raise StaleClaim(f"job {job_id} attempt {attempt} is no longer running here")
        return self.get(job_id)

    def fail(self, job_id: str, attempt: int, error: str) -> JobView:
        return self._finish(job_id, attempt, status=JobStatus.FAILED.value, error=error)

    def release(self, job_id: str, attempt: int) -> JobView:
        """Put a claimed job back in the queue (the worker is shutting down), not counting the attempt."""
        return self._finish(job_id, attempt, status=JobStatus.PENDING.value, progress=0.0, finished=None,
                            attempts=attempt - 1)

    def mark_cancelled(self, job_id: str, attempt: int) -> JobView:
        return self._finish(job_id, attempt, status=JobStatus.CANCELLED.value, error="cancelled while running")

    def set_progress(self, job_id: str, progress: float) -> bool:
        """Store progress; returns whether cancellation was requested meanwhile."""
        with self.db.session() as s:
            s.execute(update(Job).where(Job.id == job_id).values(progress=progress))
            return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    def retry_failed(self, campaign: str, attempts: int | None = None) -> int:
        """Queue again a campaign's failed cells started fewer than `attempts` times; returns how many. With
        `attempts` None: every failed or cancelled cell, from its first attempt again (a rerun of the campaign)."""
        ended = [JobStatus.FAILED.value] + ([JobStatus.CANCELLED.value] if attempts is None else [])
        again = {"status": JobStatus.PENDING.value, "error": None, "finished": None, "progress": 0.0}
        with self.db.session() as s:
            query = update(Job).where(Job.campaign == campaign, Job.status.in_(ended))
            if attempts is not None:
                return s.execute(query.where(Job.attempts < attempts).values(**again)).rowcount
            return s.execute(query.values(**again, attempts=0, cancel_requested=False)).rowcount

    def release_campaign(self, campaign: str) -> int:
        """Put a campaign's cells left running (its runner was killed) back in the queue, their attempt not
        counted; returns how many. For the campaign's own runner, which alone runs its cells."""
        with self.db.session() as s:
            return s.execute(update(Job).where(Job.campaign == campaign, Job.status == JobStatus.RUNNING.value)
                             .values(status=JobStatus.PENDING.value, progress=0.0, started=None,
                                     attempts=Job.attempts - 1)).rowcount

    def campaign_jobs(self, campaign: str) -> list[JobView]:
        """Every job of a campaign, oldest first."""
        with self.db.session() as s:
            return [JobView.of(j) for j in s.scalars(select(Job).where(Job.campaign == campaign)
                                                     .order_by(Job.created, Job.id))]

    def heartbeat(self, job_id: str, attempt: int) -> bool:
        """The worker running `job_id` (this attempt) is alive; False when the job is no longer its own."""
        with self.db.session() as s:
            return s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING.value,
                                               Job.attempts == attempt).values(heartbeat=utcnow())).rowcount == 1

    def expire_leases(self) -> tuple[int, int]:
        """Put back the running jobs whose worker has not beaten for `lease_s` (failing those started
        `max_attempts` times); (requeued, failed)."""
        cutoff = utcnow() - timedelta(seconds=self.lease_s)
        with self.db.session() as s:
            stale = (Job.status == JobStatus.RUNNING.value,
                     func.coalesce(Job.heartbeat, Job.started) < cutoff)
            failed = s.execute(update(Job).where(*stale, Job.attempts >= self.max_attempts)
                               .values(status=JobStatus.FAILED.value, finished=utcnow(),
                                       error=f"its worker stopped answering {self.max_attempts} times; not retried "
                                             "again")).rowcount
            requeued = s.execute(update(Job).where(*stale).values(status=JobStatus.PENDING.value, progress=0.0,
                                                                  heartbeat=None)).rowcount
        return requeued, failed

    def recover(self) -> tuple[int, int]:
        """After a crash: re-queue interrupted jobs, fail those started `max_attempts` times. (requeued, failed)

        Assumes one server process per database (no other process is running these jobs now).
        """
        with self.db.session() as s:
            running = JobStatus.RUNNING.value
            failed = s.execute(update(Job).where(Job.status == running, Job.attempts >= self.max_attempts)
                               .values(status=JobStatus.FAILED.value, finished=utcnow(),
                                       error=f"interrupted {self.max_attempts} times (the server stopped while "
                                             "it ran); not retried again")).rowcount
            requeued = s.execute(update(Job).where(Job.status == running)
                                 .values(status=JobStatus.PENDING.value, progress=0.0)).rowcount
        return requeued, failed
