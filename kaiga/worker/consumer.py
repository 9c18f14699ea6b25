"""The job worker: one thread per model that takes that model's jobs from the queue and runs them.

It claims a job, generates with the Studio (reporting progress, and stopping between denoising
steps when the job is cancelled or the worker is stopped), stores the images in the gallery and marks
the job done in one transaction, then calls `on_finished` (the server wakes its waiting requests).
It knows nothing of HTTP: a request's model name becomes a path through the `resolve` it is given.

Example (a worker on the tiny test model; `run_one` does one job in the calling thread):
    >>> import tempfile
    >>> from pathlib import Path
    >>> from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
    >>> from kaiga.store.db import open_database
    >>> from kaiga.store.gallery import Gallery
    >>> from kaiga.store.jobs import JobQueue
    >>> path = LatentDiffusion.create(tiny_config()).save(Path(tempfile.mkdtemp()) / "tiny")
    >>> db = open_database("sqlite://")
    >>> worker = Worker(JobQueue(db), Gallery(db, tempfile.mkdtemp()), resolve=lambda name: path)
    >>> job, _ = worker.queue.submit({"prompt": "a red car", "seed": 1, "steps": 1, "n": 2})
    >>> worker.run_one().result_image_ids
    [1, 2]
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kaiga.model_files import ModelError
from kaiga.request import GenerationRequest, RequestError
from kaiga.store.gallery import Gallery
from kaiga.store.jobs import JobQueue, JobView, StaleClaim, personalize_of, split_request
from kaiga.store.uploads import UploadStore

log = logging.getLogger("kaiga.worker")

INVALID_REQUEST = "invalid request: "  # prefix of errors that were the request's fault (HTTP 400, not 500)
_PROGRESS_EVERY_S = 0.25  # how often progress is written to the database (and cancellation looked for)


class _Stop(Exception):
    def __init__(self, cancelled: bool):
        self.cancelled = cancelled


@dataclass
class Current:
    """The job the worker is running now, for progress reports."""

    job_id: str
    step: int = 0
    total: int = 1
    started: float = 0.0

    @property
    def progress(self) -> float:
        return self.step / self.total if self.total else 0.0


class Worker:
    """Runs queued jobs one after another in a background thread."""

    def __init__(self, queue: JobQueue, gallery: Gallery, resolve: Callable[[str | None], Path], *,
                 device: str | None = None, batch_size: int = 16, poll_s: float = 0.5,
                 on_finished: Callable[[str], None] = lambda job_id: None,
                 uploads: UploadStore | None = None, models: tuple[str, ...] | None = None,
                 campaign: str | None = None, precision: str = "fp32", batch_jobs: bool = True,
                 backend: str = "eager"):
        self.queue, self.gallery = queue, gallery
        self.batch_jobs = batch_jobs  # run pending jobs of one batch key together (`batch_key`)
        self.precision = precision  # the Studio's: fp32, or bf16 autocast (kaiga/pipelines/precision.py)
        self.backend = backend  # the Studio's: eager, or jit (kaiga/families/diffusion/traced.py)
        self.resolve = resolve  # a request's model name (None: the default) -> its path; ModelError if unknown
        self.models = models  # the models whose jobs this worker claims; None: every job
        self.campaign = campaign  # only this campaign's cells (a campaign's own runner); None: any job
        self.uploads = uploads  # where edit requests' init images and masks are; None: the Studio's default
        self.device, self.batch_size, self.poll_s = device, batch_size, poll_s
        self.on_finished = on_finished
        self.current: Current | None = None
        self._studio = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._interrupt: set[str] = set()
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------
    def start(self) -> None:
        name = f"kaiga-worker-{self.models[0]}" if self.models else "kaiga-worker"
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the thread to stop after the current denoising step, without waiting for it."""
        self._stopping.set()
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the current denoising step; a job cut short goes back to the queue."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        """A job was queued: look now rather than at the next poll."""
        self._wake.set()

    def interrupt(self, job_id: str | None = None) -> str | None:
        """Cancel the running job (or `job_id` if it is the running one); returns the job id stopped."""
        current = self.current
        if current is not None and job_id in (None, current.job_id):
            self._interrupt.add(current.job_id)
            return current.job_id
        return None

    # --- running ---------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self.run_one()
            except Exception:  # the database went away for a moment, say: never kill the thread
                log.exception("worker: unexpected error; going on")
                job = None
            if job is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def studio(self):
        if self._studio is None:
            from kaiga.studio import Studio  # imports torch: only when there is work

            self._studio = Studio(device=self.device, batch_size=self.batch_size, uploads=self.uploads,
                                  precision=self.precision, backend=self.backend)
        return self._studio

    def run_one(self) -> JobView | None:
        """Claim and run one job, with the pending jobs that can share its batch (`batch_key`); None if the queue
        is empty. Returns the first job as it ended."""
        job = self.queue.claim(self.models, self.campaign)
        if job is None:
            return None
        jobs = [job, *self._companions(job)]
        self.current = Current(job.id, started=time.monotonic())
        beats = [self._beat(j.id, j.attempts) for j in jobs]
        try:
            results = self._run(jobs)
        finally:
            for stop_beating in beats:
                stop_beating.set()
            self.current = None
            for j in jobs:
                self._interrupt.discard(j.id)
        for j in jobs:
            self.on_finished(j.id)
        return results[0]

    def _companions(self, job: JobView) -> list[JobView]:
        """Pending jobs with `job`'s settings but their seeds, claimed to run in one batch with it (each image keeps
        its own seed, so its pixels are what it would be alone), up to `batch_size` images in all."""
        key = batch_key(job.request) if self.batch_jobs else None
        room = [self.batch_size - int(job.request.get("n", 1))]
        if key is None or room[0] <= 0:
            return []

        def fits(request: dict) -> bool:
            n = int(request.get("n", 1))
            if n > room[0] or batch_key(request) != key:
                return False
            room[0] -= n
            return True

        return self.queue.claim_alike(job, fits, campaign=self.campaign)

    def _beat(self, job_id: str, attempt: int) -> threading.Event:
        """Where the queue has a lease (several worker processes): beat for the job every quarter lease, in a
        thread of its own (a model's first load can outlast a lease without a denoising step), until the event."""
        stop = threading.Event()
        if self.queue.lease_s is None:
            return stop

        def beating() -> None:
            while not stop.wait(self.queue.lease_s / 4):
                try:
                    if not self.queue.heartbeat(job_id, attempt):
                        return  # no longer ours (taken over, cancelled): finishing it will say so
                except Exception:  # the database away for a moment: beat again next time
                    log.warning("worker: heartbeat of job %s failed; trying again", job_id)

        threading.Thread(target=beating, name=f"kaiga-heartbeat-{job_id[:8]}", daemon=True).start()
        return stop

    def _run(self, jobs: list[JobView]) -> list[JobView]:
        """Run claimed jobs of one batch key as one generation (or a single job as it is); finish each with its
        own images. A job cancelled meanwhile is marked so and its images dropped; the others go on."""
        last_write = [time.monotonic()]  # a job shorter than _PROGRESS_EVERY_S never writes progress
        cancelled: set[str] = set()

        def on_step(done: int, total: int) -> None:
            current = self.current
            current.step, current.total = done, total
            if self._stopping.is_set():
                raise _Stop(cancelled=False)
            cancelled.update(j.id for j in jobs if j.id in self._interrupt)
            now = time.monotonic()
            if now - last_write[0] >= _PROGRESS_EVERY_S:
                last_write[0] = now
                for j in jobs:
                    if j.id not in cancelled and self.queue.set_progress(j.id, done / total if total else 0.0):
                        cancelled.add(j.id)  # cancelled via the API
            if len(cancelled) == len(jobs):
                raise _Stop(cancelled=True)

        def each(end: Callable[[JobView], JobView]) -> list[JobView]:
            return [end(j) for j in jobs]

        try:
            fields, record_extra = split_request(jobs[0].request)
            request = GenerationRequest.model_validate(fields)
            request = request.model_copy(update={"model": str(self.resolve(request.model))})
            if (personal := personalize_of(jobs[0].request)) is not None:  # never batched (batch_key)
                per_job = [self._personalised(request, personal, on_step, record_extra)]
            elif len(jobs) == 1:
                per_job = [self.studio().generate(request, on_step=on_step, record_extra=record_extra)]
            else:
                seeds = [GenerationRequest.model_validate(split_request(j.request)[0]).seeds(j.request["seed"])
                         for j in jobs]
                images = self.studio().generate_seeds(request, [s for ss in seeds for s in ss], on_step=on_step,
                                                      record_extra=record_extra)
                starts = [sum(len(ss) for ss in seeds[:k]) for k in range(len(jobs))]
                per_job = [images[a:a + len(ss)] for a, ss in zip(starts, seeds)]
            return [self._finish(j, images, j.id in cancelled) for j, images in zip(jobs, per_job)]
        except _Stop as stop:
            if stop.cancelled:
                return each(lambda j: self.queue.mark_cancelled(j.id, j.attempts))
            return each(lambda j: self.queue.release(j.id, j.attempts))
        except (RequestError, ModelError, ValueError) as e:  # ValueError: pydantic's, from a bad stored request
            message = INVALID_REQUEST + str(e)
            return each(lambda j: self.queue.fail(j.id, j.attempts, message))
        except Exception as e:
            log.exception("worker: job(s) %s failed", ", ".join(j.id for j in jobs))
            message = f"{type(e).__name__}: {e}"
            return each(lambda j: self.queue.fail(j.id, j.attempts, message))

    def _finish(self, job: JobView, images: list, cancelled: bool) -> JobView:
        """Store a job's images and mark it done, in one transaction (or mark it cancelled, dropping them)."""
        if cancelled:
            return self.queue.mark_cancelled(job.id, job.attempts)
        try:
            return self.queue.finish(job.id, job.attempts, add_images=lambda s: [
                self.gallery.add(s, img.image, img.record, job_id=job.id) for img in images])
        except StaleClaim as e:
            log.warning("worker: %s", e)
            return self.queue.get(job.id)

    def _personalised(self, request: GenerationRequest, personal: dict, on_step, record_extra: dict | None) -> list:
        """The job's images steered by a person's taste, learned now from the gallery's judgements (so a rating
        given a moment ago counts); a person with too few is the request's fault."""
        from kaiga.taste.judgements import Judgements
        from kaiga.taste.steer import generate_personalised

        person = personal["person"]
        judgements = Judgements.read(self.gallery.db, self.gallery.folder)
        if (why := judgements.too_few(person)) is not None:
            raise RequestError(f"personalize: {why}")
        images, _ = generate_personalised(self.studio(), request, judgements.taste(), person,
                                          int(personal.get("choose_from", 4)), on_step, record_extra)
        return images


def batch_key(stored: dict) -> str | None:
    """What jobs must share to run in one batch: every field of the stored request but `seed` and `n` (the model,
    prompt, steps, guidance, size, style, what the records add ...); None for a job that runs alone: one steered
    by a person's taste, an edit, a prompt of {a|b} combinations or __wildcards__ (which draw per request).

    >>> batch_key({"prompt": "a red car", "seed": 1, "n": 2}) == batch_key({"prompt": "a red car", "seed": 9})
    True
    >>> batch_key({"prompt": "a {red|blue} car", "seed": 1}) is None
    True
    """
    from kaiga.prompt_syntax import count_permutations

    fields, _ = split_request(stored)
    prompt = str(fields.get("prompt", ""))
    if personalize_of(stored) is not None or fields.get("init_image") or "__" in prompt \
            or count_permutations(prompt) != 1:
        return None
    same = {k: v for k, v in stored.items() if k not in ("seed", "n")}
    return json.dumps(same, sort_keys=True, default=str)


class Workers:
    """One `Worker` per model name, all on one device.

    A model's jobs run one at a time on its own worker (which keeps the model loaded), while jobs for
    different models do not wait for each other. Jobs queued before jobs named their model ("") go to
    the `default` model's worker. Idle workers only poll the queue.
    """

    def __init__(self, names: list[str], default: str, make: Callable[[tuple[str, ...]], Worker]):
        self.by_model = {name: make((name, "") if name == default else (name,)) for name in names}

    def start(self) -> None:
        for worker in self.by_model.values():
            worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every worker after its current denoising step (in parallel: each waits for its own step)."""
        for worker in self.by_model.values():
            worker.request_stop()
        for worker in self.by_model.values():
            worker.stop(timeout)

    def wake(self, model: str) -> None:
        """A job for `model` was queued."""
        if model in self.by_model:
            self.by_model[model].wake()

    def interrupt(self, job_id: str | None = None) -> str | None:
        """Cancel `job_id` where it runs (or, without one, the running jobs); returns a job id stopped."""
        stopped = None
        for worker in self.by_model.values():
            stopped = worker.interrupt(job_id) or stopped
        return stopped

    def current(self, job_id: str | None = None) -> Current | None:
        """The running job `job_id`'s progress, or (without one) any running job's."""
        for worker in self.by_model.values():
            current = worker.current
            if current is not None and job_id in (None, current.job_id):
                return current
        return None
