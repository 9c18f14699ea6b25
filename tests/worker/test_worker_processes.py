"""Two `kaiga worker` processes share one queue (SQLite and PostgreSQL): every job runs once, and a worker killed
with `kill -9` mid-job loses nothing, as the other takes its job over once the lease runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kaiga.request import GenerationRequest
from kaiga.store.db import open_database
from kaiga.store.jobs import JobQueue
from kaiga.store.tables import Image, Job


def _worker(url: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kaiga.cli", "worker", "--db", url, "--lease", "2", "--poll", "0.1"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


@pytest.mark.slow  # two worker processes, one killed (~30 s per database on two busy cores)
def test_two_workers_share_the_queue_and_survive_a_kill_9(database_url, tiny_model_dir):
    db = open_database(database_url)
    queue = JobQueue(db, lease_s=2)
    for i in range(10):
        # each its own steps: jobs that differ only in seed would run as one batch (kaiga.worker.consumer.batch_key)
        request = GenerationRequest(prompt="a red car", model=str(tiny_model_dir), steps=40 + i, seed=i)
        queue.submit(request.model_dump(mode="json"), user="test")
    a, b = _worker(database_url), _worker(database_url)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # kill a while both are busy: a's job is then in flight
            with db.session() as s:
                running = s.query(Job).filter(Job.status == "running").count()
                done = s.query(Job).filter(Job.status == "done").count()
            if running == 2 and done >= 2:
                break
            time.sleep(0.05)
        os.kill(a.pid, signal.SIGKILL)
        a.wait()
        while time.monotonic() < deadline:
            with db.session() as s:
                if s.query(Job).filter(Job.status == "done").count() == 10:
                    break
            time.sleep(0.2)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
                p.wait(30)
    with db.session() as s:
        jobs = s.query(Job).all()
        images = s.query(Image).count()
        assert sorted(j.status for j in jobs) == ["done"] * 10 and images == 10  # none lost, none made twice
        assert all(len(j.result_image_ids) == 1 for j in jobs)
        assert max(j.attempts for j in jobs) == 2  # the killed worker's job, taken over
    db.engine.dispose()
