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
from kaiga.store.tables import Image, Job, utcnow


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
    orphan = None
    try:
        deadline = time.monotonic() + 240
        while orphan is None and time.monotonic() < deadline:
            while time.monotonic() < deadline:  # kill a while both are busy: a's job is then likely in flight
                with db.session() as s:
                    running = s.query(Job).filter(Job.status == "running").count()
                    done = s.query(Job).filter(Job.status == "done").count()
                if running == 2 and done >= 2:
                    break
                time.sleep(0.05)
            killed_at = utcnow()
            os.kill(a.pid, signal.SIGKILL)
            a.wait()
            # a may have finished its job between the look and the kill; its job is in flight only if it stays
            # running without a beat (a living worker beats every lease/4 = 0.5 s; the lease runs out at 2 s)
            time.sleep(1.0)
            with db.session() as s:
                stale = [j.id for j in s.query(Job).filter(Job.status == "running")
                         if (j.heartbeat or j.started) < killed_at]
                left = s.query(Job).filter(Job.status == "pending").count()
            if stale:
                orphan = stale[0]
            else:  # nothing was in flight: kill a fresh worker mid-job instead
                assert left >= 2, "the killed worker never held a job in flight"
                a = _worker(database_url)
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
    assert orphan is not None, "no worker was killed mid-job"
    with db.session() as s:
        jobs = s.query(Job).all()
        images = s.query(Image).count()
        assert sorted(j.status for j in jobs) == ["done"] * 10 and images == 10  # none lost, none made twice
        assert all(len(j.result_image_ids) == 1 for j in jobs)
        assert {j.id: j.attempts for j in jobs}[orphan] == 2  # the killed worker's job, taken over
        assert max(j.attempts for j in jobs) == 2
    db.engine.dispose()
