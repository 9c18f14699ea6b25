"""Making a campaign's cells on a Ray cluster: a pool of model-holding actors, each a kaiga Worker on the queue.

Why actors on the queue rather than Ray Data's `map_batches`: the durable queue (kaiga/store/jobs.py) already
gives what a campaign needs and Ray does not: a cell is a row before it runs, a claim is a conditional UPDATE
(no cell runs twice, whichever machine claims it), a claimed cell's worker beats, and a cell whose worker died
(a killed actor, a lost node) goes back to the queue when its lease runs out. So each actor holds one Studio
(the model loaded once) and claims cells one after another, exactly as `kaiga worker` does; Ray places the
actors on the cluster's nodes and restarts none of them itself: the driver starts a fresh actor for a dead one.
Because the cells, keys and database are the same, a campaign can move between one machine and a cluster
mid-way: what one made, the other counts as made.

What every node needs: the database (PostgreSQL across machines; a SQLite file only on one machine), the gallery
folder (a shared filesystem across machines) and the models. The driver hands each actor the database URL and
folders, and the `KAIGA_*` environment (the home with the models and the signing identity).

Example (a local cluster, as `kaiga campaign run PLAN.yaml --ray local` starts):
    >>> spec = RayWorkerSpec(db_url="sqlite:////tmp/k.db", gallery_dir="/tmp/g", uploads_dir="/tmp/u",
    ...                      campaign="ad", threads=1, lease_s=30.0)
    >>> spec.resources()
    {'num_cpus': 1}
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from kaiga.campaigns.plan import CampaignCell, CampaignPlan
from kaiga.campaigns.runner import CELL_ATTEMPTS, CampaignStatus, status, submit_cells
from kaiga.store.jobs import JobQueue, JobView
from kaiga.store.tables import JobStatus

log = logging.getLogger(__name__)

DEATHS_PER_WORKER = 3  # actors that die (killed, their node lost) are replaced up to this many times each
PROBE_TIMEOUT_S = 5.0  # how long an address may take to accept a TCP connection
IDLE_WAIT_S = 0.5  # an actor with nothing to claim while cells still run elsewhere looks again after this


class RayError(Exception):
    """The cluster cannot run the campaign (cannot connect, or its workers keep dying); one line."""


@dataclass(frozen=True)
class RayWorkerSpec:
    """What an actor needs to build its kaiga Worker: where the queue and images are, and how to run."""

    db_url: str
    gallery_dir: str
    uploads_dir: str
    campaign: str
    threads: int = 1  # torch CPU threads, and the CPUs Ray reserves for the actor
    lease_s: float = 30.0  # a cell whose actor stops beating this long goes back to the queue
    device: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # KAIGA_* variables for the actor's process

    def resources(self) -> dict:
        if self.device and self.device.startswith("cuda"):
            return {"num_cpus": self.threads, "num_gpus": 1}
        return {"num_cpus": self.threads}


class CellWorker:
    """A Ray actor: one kaiga Worker claiming the campaign's cells (made remote in `run_on_ray`, so that this
    module imports without Ray)."""

    def __init__(self, spec: RayWorkerSpec):
        import torch

        from kaiga.model_files import resolve_model
        from kaiga.provenance.credentials import sign_by_default
        from kaiga.store.db import open_database
        from kaiga.store.gallery import Gallery
        from kaiga.store.uploads import UploadStore
        from kaiga.worker import Worker

        torch.set_num_threads(spec.threads)  # the same threads as a local run: the same pixels
        database = open_database(spec.db_url)
        self.worker = Worker(JobQueue(database, lease_s=spec.lease_s),
                             Gallery(database, spec.gallery_dir, finish=sign_by_default),
                             lambda name: resolve_model(name).path, device=spec.device, campaign=spec.campaign,
                             uploads=UploadStore(spec.uploads_dir))

    def run_one(self, wait_s: float = 0.0) -> JobView | None:
        """Claim and make one cell (after `wait_s`); None when there is none to claim."""
        time.sleep(wait_s)
        return self.worker.run_one()


def connect(address: str, num_cpus: int | None = None) -> dict:
    """Join the cluster at `address` ("auto": the running one; "local": start one here with `num_cpus`);
    returns its resources (CPU, GPU counts)."""
    import ray

    if address not in ("local", "auto"):
        _check_reachable(address)
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus or os.cpu_count(), **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayError(f"--ray {address}: {str(e).splitlines()[0]}") from e
    return ray.cluster_resources()


def _check_reachable(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """A RayError unless something answers at `address` ("host:port" or "ray://host:port"): ray.init itself
    retries an address where nothing listens for minutes without a word."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayError(f"--ray {address}: give 'auto', 'local' or a cluster's HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        raise RayError(f"--ray {address}: no Ray cluster answers there ({e.strerror or e}); start one with "
                       "'ray start --head' or use --ray local") from e


def run_on_ray(queue: JobQueue, plan: CampaignPlan, cells: list[CampaignCell], spec: RayWorkerSpec, workers: int,
               on_cell: Callable[[JobView], None] = lambda job: None,
               model_name: Callable[[str | None], str] = lambda model: model or "") -> CampaignStatus:
    """Submit the missing cells and make every pending one with `workers` actors on the connected cluster; the
    local runner's rules hold (kaiga.campaigns.runner.run_campaign): a rerun retries failed cells, and within
    a run a failed cell gets `CELL_ATTEMPTS` tries. A dead actor is replaced; its cell comes back after its
    lease. `on_cell(job)` after each cell made (or failed)."""
    import ray
    from ray.exceptions import RayActorError

    queue.release_campaign(plan.name)  # left running by a killed runner: this run makes them now
    submit_cells(queue, plan, cells, model_name)
    queue.retry_failed(plan.name)
    actor_class = ray.remote(CellWorker).options(max_restarts=0, runtime_env={"env_vars": spec.env},
                                                 **spec.resources())

    def call(actor, wait_s: float = 0.0):
        calls[actor.run_one.remote(wait_s)] = actor

    calls: dict = {}
    for _ in range(workers):
        call(actor_class.remote(spec))
    deaths = 0
    while calls:
        (ref,), _ = ray.wait(list(calls), num_returns=1)
        actor = calls.pop(ref)
        try:
            job = ray.get(ref)
        except RayActorError as e:
            deaths += 1
            if deaths > DEATHS_PER_WORKER * workers:
                raise RayError(f"Ray workers died {deaths} times; the last: {_first_line(e)}") from e
            log.warning("campaign %s: a Ray worker died (%s); starting another", plan.name, _first_line(e))
            call(actor_class.remote(spec))
            continue
        if job is not None:
            on_cell(job)
            call(actor)
            continue
        if _unfinished(queue, plan.name) or queue.retry_failed(plan.name, CELL_ATTEMPTS):
            call(actor, IDLE_WAIT_S)  # a dead actor's cell comes back when its lease runs out
        else:
            ray.kill(actor)
    return status(queue, plan, cells)


def _unfinished(queue: JobQueue, campaign: str) -> int:
    """The campaign's cells queued or running (on another actor, or on a dead one until its lease runs out)."""
    return sum(j.status in (JobStatus.PENDING.value, JobStatus.RUNNING.value) for j in queue.campaign_jobs(campaign))


def _first_line(error: Exception) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
