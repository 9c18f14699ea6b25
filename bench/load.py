"""Load on `kaiga serve`: tens of concurrent clients queueing, polling, cancelling and retrying jobs.

`run_load(url, plan)` is the load itself, shared with `tests/server/test_load.py` (which checks
the database afterwards); `main()` times it against `kaiga serve` in its own process, and times
the baseline, the same requests through `Studio.generate` in a loop, after it in the same run.

Each client is a thread with its own HTTP connection. Client `i` acts for one user (a third of the
clients share user "u0", so one user floods the queue while others trickle in) and makes
`jobs_per_client` jobs, every one a distinct seed:
- most go through `POST /v1/jobs` (202 at once), some with priority 5, then `GET /v1/jobs/{id}`
  is polled until the job is finished;
- every `openai_every`-th goes through `POST /v1/images/generations`, which waits for the images;
- every `retry_every`-th is sent twice *at the same time* with one `Idempotency-Key` (a client
  retrying a request it thinks was lost): both answers must name the same job;
- every `cancel_every`-th `/v1/jobs` job is cancelled right after it is queued.
A 429 (queue full) is retried after its Retry-After, with the same Idempotency-Key when there is one.

Beside the clients, `--campaign-cells N` posts a campaign of N cells (`POST /v1/campaigns`, below the API's jobs
in the queue) and waits for all of it; afterwards the database is read: every cell done with exactly one image,
no two images for one cell key. `--workers K` starts K `kaiga worker` processes beside the server's own worker
on the same database and gallery (two worker processes: `--workers 1`), so jobs/s can be read against worker
processes.

Usage:
    python bench/load.py [--model NAME|PATH] [--db URL] [--clients 30] [--jobs-per-client 6] [--steps 1]
                         [--workers 0] [--campaign-cells 0] [--json bench/results/load.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "load.json"
FINISHED = {"done", "failed", "cancelled"}
PROMPTS = ("a red car in the snow", "a blue bird above a house", "two yellow flowers in the desert at sunset")


@dataclass(frozen=True)
class LoadPlan:
    clients: int = 30
    jobs_per_client: int = 6
    steps: int = 1  # denoising steps of every job: the load measures the server, not the model
    openai_every: int = 3  # every 3rd job waits on the OpenAI endpoint, the others use /v1/jobs
    retry_every: int = 5  # every 5th job is sent twice at once with one Idempotency-Key
    cancel_every: int = 7  # every 7th /v1/jobs job is cancelled right after it is queued
    priority_every: int = 4  # every 4th /v1/jobs job has priority 5 (the others 0)
    two_images_every: int = 6  # every 6th job asks for n=2
    poll_s: float = 0.2  # status polling interval of each client
    timeout_s: float = 300.0  # a job not finished by then counts as an error


@dataclass
class Call:
    """One HTTP exchange: what (`submit_jobs`, `submit_openai`, `status`, `cancel`), status code, ms."""

    kind: str
    status: int
    ms: float


@dataclass
class Submitted:
    """A job as the client saw it: how it was asked for, and how it ended."""

    job_id: str
    api: str  # "jobs" or "openai"
    user: str
    priority: int
    n: int
    seed: int
    key: str | None  # Idempotency-Key
    cancel_sent: bool = False
    final: dict | None = None  # the last GET /v1/jobs/{id}


@dataclass
class LoadReport:
    plan: LoadPlan
    calls: list[Call] = field(default_factory=list)
    jobs: list[Submitted] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what a client found wrong (a retry got another job, ...)
    wall_s: float = 0.0  # first request to the last job finished

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for c in self.calls:
            counts[c.status] = counts.get(c.status, 0) + 1
        return dict(sorted(counts.items()))

    def server_errors(self) -> list[Call]:
        return [c for c in self.calls if c.status >= 500]

    def latency_ms(self, kind: str) -> dict[str, float | int]:
        ms = sorted(c.ms for c in self.calls if c.kind == kind)
        if not ms:
            return {"count": 0}
        return {"count": len(ms), "p50": round(statistics.median(ms), 2),
                "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 2), "max": round(ms[-1], 2)}


def user_of(client: int, plan: LoadPlan) -> str:
    """A third of the clients are user u0 (a flood); the rest are spread over u1..u4."""
    return "u0" if client < plan.clients // 3 else f"u{1 + client % 4}"


def run_load(url: str, plan: LoadPlan = LoadPlan()) -> LoadReport:
    """Run `plan` against the server at `url`; every exchange and job is in the report."""
    report = LoadReport(plan)
    lock = threading.Lock()
    t0 = time.perf_counter()

    def record(kind: str, response: httpx.Response, started: float) -> None:
        with lock:
            report.calls.append(Call(kind, response.status_code, (time.perf_counter() - started) * 1000))

    def problem(text: str) -> None:
        with lock:
            report.problems.append(text)

    def send(http: httpx.Client, kind: str, method: str, path: str, **kw) -> httpx.Response:
        while True:
            started = time.perf_counter()
            r = http.request(method, path, **kw)
            record(kind, r, started)
            if r.status_code != 429:
                return r
            time.sleep(min(2.0, float(r.headers.get("retry-after", "1"))))

    def twice(http: httpx.Client, kind: str, path: str, body: dict, key: str | None, retry: bool) -> list[httpx.Response]:
        """Send once, or (retry) twice at the same time on two connections, the same key on both."""
        headers = {"Idempotency-Key": key} if key else {}
        if not retry:
            return [send(http, kind, "POST", path, json=body, headers=headers)]
        with httpx.Client(base_url=url, timeout=plan.timeout_s) as other:
            with ThreadPoolExecutor(2) as pool:
                futures = [pool.submit(send, c, kind, "POST", path, json=body, headers=headers) for c in (http, other)]
                return [f.result() for f in futures]

    def client(i: int) -> None:
        user = user_of(i, plan)
        mine: list[Submitted] = []
        with httpx.Client(base_url=url, timeout=plan.timeout_s) as http:
            for j in range(plan.jobs_per_client):
                k = i * plan.jobs_per_client + j  # the job's number over the whole load, and its seed
                n = 2 if k % plan.two_images_every == plan.two_images_every - 1 else 1
                retry = k % plan.retry_every == 0
                key = f"load-{k}" if retry or k % 2 else None  # half the jobs carry a key
                prompt = PROMPTS[k % len(PROMPTS)]
                if k % plan.openai_every == 1:
                    body = {"prompt": prompt, "n": n, "steps": plan.steps, "seed": k, "user": user,
                            "response_format": "url"}
                    answers = twice(http, "submit_openai", "/v1/images/generations", body, key, retry)
                    ids = {r.headers.get("x-kaiga-job-id") for r in answers}
                    if any(r.status_code != 200 for r in answers) or None in ids:
                        problem(f"openai job {k}: {[(r.status_code, r.text[:200]) for r in answers]}")
                        continue
                    if any(len(r.json()["data"]) != n for r in answers):
                        problem(f"openai job {k}: not {n} images")
                    job = Submitted(ids.pop(), "openai", user, 0, n, k, key)
                    if ids:
                        problem(f"openai job {k}: an idempotent retry made another job")
                else:
                    priority = 5 if k % plan.priority_every == 0 else 0
                    body = {"prompt": prompt, "n": n, "steps": plan.steps, "seed": k, "user": user,
                            "priority": priority}
                    answers = twice(http, "submit_jobs", "/v1/jobs", body, key, retry)
                    if any(r.status_code != 202 for r in answers):
                        problem(f"job {k}: {[(r.status_code, r.text[:200]) for r in answers]}")
                        continue
                    ids = {r.json()["id"] for r in answers}
                    job = Submitted(ids.pop(), "jobs", user, priority, n, k, key)
                    if ids:
                        problem(f"job {k}: an idempotent retry made another job")
                    if k % plan.cancel_every == 0:
                        job.cancel_sent = True
                        r = send(http, "cancel", "POST", f"/v1/jobs/{job.job_id}/cancel")
                        if r.status_code != 200:
                            problem(f"cancel of job {k}: {r.status_code} {r.text[:200]}")
                mine.append(job)
            deadline = time.monotonic() + plan.timeout_s
            for job in mine:  # follow every job to its end (the OpenAI ones are done already)
                while True:
                    r = send(http, "status", "GET", f"/v1/jobs/{job.job_id}")
                    if r.status_code != 200:
                        problem(f"status of {job.job_id}: {r.status_code} {r.text[:200]}")
                        break
                    job.final = r.json()
                    if job.final["status"] in FINISHED:
                        break
                    if time.monotonic() > deadline:
                        problem(f"job {job.job_id} still {job.final['status']} after {plan.timeout_s:g} s")
                        break
                    time.sleep(plan.poll_s)
        with lock:
            report.jobs.extend(mine)

    with ThreadPoolExecutor(plan.clients) as pool:
        for f in [pool.submit(client, i) for i in range(plan.clients)]:
            f.result()
    report.wall_s = time.perf_counter() - t0
    return report


def direct_images_per_s(model: str, plan: LoadPlan, count: int) -> float:
    """The baseline: the same kind of request, `count` images one after another, `Studio.generate` in-process."""
    from kaiga.studio import Studio

    studio = Studio()
    studio.generate("a red car in the snow", steps=plan.steps, seed=0, model=model)  # load the model
    t0 = time.perf_counter()
    for seed in range(count):
        studio.generate(PROMPTS[seed % len(PROMPTS)], steps=plan.steps, seed=seed, model=model)
    return count / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: str | None, db: str | None, max_queued: int, home: Path) -> tuple[subprocess.Popen, str]:
    """`kaiga serve` as a user runs it, in its own process (so the clients' threads do not share its GIL)."""
    port = free_port()
    cmd = [sys.executable, "-m", "kaiga.cli", "serve", "--port", str(port), "--max-queued", str(max_queued)]
    proc = subprocess.Popen(cmd + (["--model", model] if model else []) + (["--db", db] if db else []),
                            env={**os.environ, "KAIGA_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            httpx.get(url + "/v1/models").raise_for_status()
            return proc, url
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("kaiga serve did not start") from None
            time.sleep(0.2)


def start_workers(count: int, db: str | None, home: Path) -> list[subprocess.Popen]:
    """`kaiga worker` processes on the server's database and gallery (its home)."""
    env = {**os.environ, "KAIGA_HOME": str(home), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    cmd = [sys.executable, "-m", "kaiga.cli", "worker", "--lease", "30"] + (["--db", db] if db else [])
    return [subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL) for _ in range(count)]


def campaign_plan(cells: int, steps: int) -> dict:
    """A plan of `cells` cells: colours × scenes × seeds (the seeds fill up the count)."""
    colours, scenes = ["red", "blue", "green", "yellow"], ["city", "forest", "beach", "desert", "mountains"]
    seeds = -(-cells // (len(colours) * len(scenes)))
    return {"name": "load", "prompt": "a {colour} car in the {scene}", "steps": steps, "seeds": seeds,
            "axes": {"colour": colours, "scene": scenes}}


def campaign_check(db_url: str, name: str) -> dict:
    """The campaign's cells in the database: done, images, cells with more than one image or none."""
    from sqlalchemy import func, select

    from kaiga.store.db import open_database
    from kaiga.store.tables import Image, Job

    db = open_database(db_url)
    with db.session() as s:
        jobs = s.execute(select(Job.status, func.count()).where(Job.campaign == name).group_by(Job.status)).all()
        per_job = s.execute(select(Job.id, func.count(Image.id)).join(Image, Image.job_id == Job.id, isouter=True)
                            .where(Job.campaign == name).group_by(Job.id)).all()
        keys = [i.record["extra"]["campaign"]["key"] for i in s.scalars(
            select(Image).join(Job, Image.job_id == Job.id).where(Job.campaign == name))]
    db.engine.dispose()
    return {"cells": dict(jobs), "images": len(keys), "cells_without_image": sum(1 for _, n in per_job if n == 0),
            "cells_with_several_images": sum(1 for _, n in per_job if n > 1),
            "duplicate_keys": len(keys) - len(set(keys))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--db", default=None, help="SQLAlchemy URL of an empty database (default: SQLite in a temporary folder)")
    ap.add_argument("--clients", type=int, default=LoadPlan.clients)
    ap.add_argument("--jobs-per-client", type=int, default=LoadPlan.jobs_per_client)
    ap.add_argument("--steps", type=int, default=LoadPlan.steps)
    ap.add_argument("--baseline-images", type=int, default=60)
    ap.add_argument("--workers", type=int, default=0, help="kaiga worker processes beside the server's own worker")
    ap.add_argument("--campaign-cells", type=int, default=0, help="a campaign of this many cells beside the clients")
    ap.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args()
    plan = LoadPlan(clients=args.clients, jobs_per_client=args.jobs_per_client, steps=args.steps)

    home = Path(tempfile.mkdtemp(prefix="kaiga-load-"))
    proc, url = start_server(args.model, args.db, max(64, 2 * plan.clients * plan.jobs_per_client), home)
    workers = start_workers(args.workers, args.db, home)
    campaign, campaign_s = None, None
    try:
        model = httpx.get(url + "/v1/models").json()["data"][0]["id"]
        job = httpx.post(url + "/v1/jobs", json={"prompt": "warm up", "steps": 1}).json()  # loads the model
        while httpx.get(f"{url}/v1/jobs/{job['id']}").json()["status"] not in FINISHED:
            time.sleep(0.1)
        if args.campaign_cells:
            started = time.perf_counter()
            r = httpx.post(url + "/v1/campaigns", json={"plan": campaign_plan(args.campaign_cells, plan.steps)},
                           timeout=120)
            r.raise_for_status()
        report = run_load(url, plan)
        if args.campaign_cells:
            while (state := httpx.get(url + "/v1/campaigns/load").json())["pending"] + state["running"]:
                time.sleep(0.5)
            campaign_s = time.perf_counter() - started
    finally:
        for p in [proc, *workers]:
            p.terminate()
        for p in [proc, *workers]:
            p.wait(60)
    if args.campaign_cells:
        campaign = campaign_check(args.db or f"sqlite:///{home / 'kaiga.db'}", "load")

    import torch

    from kaiga.server.catalog import Catalog

    torch.set_num_threads(1)  # as the server's worker ran (OMP_NUM_THREADS=1)
    baseline = direct_images_per_s(str(Catalog(args.model).default.path), plan, args.baseline_images)
    ends = Counter(job.final["status"] if job.final else "unknown" for job in report.jobs)
    images = sum(len(j.final["images"]) for j in report.jobs if j.final and j.final["status"] == "done")
    result = {
        "settings": {"model": model, "steps": plan.steps, "size": "native", "clients": plan.clients,
                     "jobs_per_client": plan.jobs_per_client, "poll_s": plan.poll_s,
                     "database": args.db.split(":", 1)[0] if args.db else "sqlite (WAL)",
                     "server": "kaiga serve (own process)", "worker_processes": 1 + args.workers,
                     "campaign_cells": args.campaign_cells, "baseline_images": args.baseline_images},
        "environment": {"torch_threads": 1, "cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2)},
        "wall_s": round(report.wall_s, 2),
        "jobs": {"submitted": len(report.jobs), **dict(sorted(ends.items()))},
        "jobs_per_s": round(len(report.jobs) / report.wall_s, 2),
        "images_per_s": round(images / report.wall_s, 2),
        "direct_images_per_s": round(baseline, 2),
        # < 1: the server under load makes fewer images per second than Studio.generate in a loop
        "ratio_server_over_direct_images_per_s": round(images / report.wall_s / baseline, 3),
        "latency_ms": {kind: report.latency_ms(kind) for kind in ("submit_jobs", "submit_openai", "status", "cancel")},
        "http_statuses": {str(k): v for k, v in report.statuses().items()},
        "errors": {"server_errors_5xx": len(report.server_errors()), "client_problems": len(report.problems)},
        "problems": report.problems[:20],
    }
    if campaign is not None:
        made = campaign["images"]
        result["campaign"] = campaign | {"wall_s": round(campaign_s, 2), "cells_per_s": round(made / campaign_s, 2),
                                         # every job of the run: the clients' and the campaign's cells
                                         "all_jobs_per_s": round((len(report.jobs) + made) / campaign_s, 2)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
