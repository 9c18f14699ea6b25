"""Making a campaign's cells: each cell a job of the durable queue (kaiga/store/jobs.py), run by a worker.

Why the queue: it already survives a crash (every cell is a row before it runs), runs a cell once (a claim is a
conditional UPDATE, so several workers or processes can share it) and stores each image in the gallery with its
record in the same transaction that marks the job done. A campaign adds a name to its jobs (`jobs.campaign`) and
an idempotency key per cell, `campaign/NAME/KEY` with the cell's pixel fingerprint as KEY
(kaiga.campaigns.plan.cell_key): submitting the plan again finds the cells already queued or made and adds only
the missing ones. Campaign cells queue below API requests (priority -10) and are not counted against the
server's queue limit, so a server sharing the database keeps answering its clients.

`run_campaign` submits, then runs the campaign's cells in this process: cells left running by a killed run go
back to the queue first, a failed cell is tried once more (`CELL_ATTEMPTS`) and then stays failed while the rest
go on. Each image's record says its campaign and cell (`extra.campaign`).

Example:
    >>> from kaiga.store.db import open_database
    >>> from kaiga.store.jobs import JobQueue
    >>> from kaiga.campaigns.plan import CampaignPlan, with_keys
    >>> queue = JobQueue(open_database("sqlite://"))
    >>> plan = CampaignPlan.model_validate({"name": "demo", "prompt": "a {colour} car", "axes": {"colour": ["red", "blue"]}})
    >>> cells = with_keys(plan.cells(), lambda model: "0123456789")
    >>> submit_cells(queue, plan, cells), submit_cells(queue, plan, cells)
    (2, 0)
    >>> status(queue, plan, cells).counts
    {'pending': 2}
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from kaiga.campaigns.plan import CampaignCell, CampaignPlan
from kaiga.store.jobs import RECORD_EXTRA, JobQueue, JobView
from kaiga.store.tables import JobStatus

CELL_ATTEMPTS = 2  # a failed cell is tried once more, then recorded as failed
PRIORITY = -10  # below API requests sharing the queue


def job_key(name: str, cell: CampaignCell) -> str:
    return f"campaign/{name}/{cell.key}"


def submit_cells(queue: JobQueue, plan: CampaignPlan, cells: list[CampaignCell],
                 model_name: Callable[[str | None], str] = lambda model: model or "") -> int:
    """Queue every cell not queued yet; returns how many were new. `model_name`: the catalog name whose worker
    runs a cell's model (the job's `model`)."""
    new = 0
    for cell in cells:
        stored = cell.request.model_dump(mode="json") | {RECORD_EXTRA: {"campaign": {
            "name": plan.name, "cell": cell.index, "values": cell.values, "key": cell.key}}}
        _, created = queue.submit(stored, user=f"campaign:{plan.name}", priority=PRIORITY,
                                  idempotency_key=job_key(plan.name, cell), fingerprint=cell.key,
                                  model=model_name(cell.request.model), campaign=plan.name)
        new += created
    return new


@dataclass
class CampaignStatus:
    name: str
    cells: int  # in the plan as it is now
    counts: dict[str, int]  # the plan's cells by status: done, failed, pending, running (never made: pending)
    failures: list[tuple[dict, str]] = field(default_factory=list)  # (the cell's values, the error)
    images: dict[int, list[int]] = field(default_factory=dict)  # cell index -> gallery image ids
    outside_plan: int = 0  # jobs of the campaign that the plan no longer has (an axis value taken out)

    @property
    def done(self) -> int:
        return self.counts.get(JobStatus.DONE.value, 0)

    def to_dict(self) -> dict:
        return {"name": self.name, "cells": self.cells, **{s: self.counts.get(s, 0) for s in
                                                           ("done", "failed", "pending", "running")},
                "failures": [{"cell": values, "error": error} for values, error in self.failures],
                "outside_plan": self.outside_plan}


def status(queue: JobQueue, plan: CampaignPlan, cells: list[CampaignCell]) -> CampaignStatus:
    """Where each of the plan's cells stands, from the campaign's jobs."""
    jobs = {j.idempotency_key: j for j in queue.campaign_jobs(plan.name)}
    counts: Counter = Counter()
    result = CampaignStatus(plan.name, len(cells), {})
    for cell in cells:
        job = jobs.pop(job_key(plan.name, cell), None)
        state = job.status if job is not None else JobStatus.PENDING.value
        counts[JobStatus.PENDING.value if state == JobStatus.CANCELLED.value else state] += 1
        if job is not None and job.status == JobStatus.FAILED.value:
            result.failures.append((cell.values, job.error or ""))
        if job is not None and job.result_image_ids:
            result.images[cell.index] = list(job.result_image_ids)
    result.counts, result.outside_plan = dict(counts), len(jobs)
    return result


def run_campaign(queue: JobQueue, plan: CampaignPlan, cells: list[CampaignCell], make_worker,
                 on_cell: Callable[[JobView], None] = lambda job: None,
                 model_name: Callable[[str | None], str] = lambda model: model or "") -> CampaignStatus:
    """Submit the missing cells and make every pending one here (`make_worker(campaign)` builds the
    kaiga.worker.Worker that claims only this campaign's cells); `on_cell(job)` after each cell it ran.

    A rerun tries the failed (and cancelled) cells again; within a run a failed cell gets `CELL_ATTEMPTS` tries."""
    queue.release_campaign(plan.name)  # left running by a run that was killed: this process runs them now
    submit_cells(queue, plan, cells, model_name)
    queue.retry_failed(plan.name)
    worker = make_worker(plan.name)
    for _ in range(CELL_ATTEMPTS):
        while (job := worker.run_one()) is not None:
            on_cell(job)
        if not queue.retry_failed(plan.name, CELL_ATTEMPTS):
            break
    return status(queue, plan, cells)
