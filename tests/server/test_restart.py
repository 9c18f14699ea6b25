"""A server killed with SIGKILL mid-queue loses no job and runs none twice once restarted on its database.

The first server holds its first job at a denoising step (tests/server/held_serve.py) until it is
killed, so the kill lands mid-job whatever the machine's speed.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import func, select

from kaiga.store.db import open_database
from kaiga.store.tables import Image, Job

N_JOBS, N_IMAGES = 5, 4
JOB = {"prompt": "a red car", "width": 64, "height": 64, "steps": 4, "n": N_IMAGES}
HELD_SERVE = Path(__file__).with_name("held_serve.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, db_url: str, model: str, home, hold: Path | None = None):
        """`hold`: a file the server touches when its first job reaches a denoising step, where it then stays."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(HELD_SERVE), str(hold)] if hold is not None else ["-m", "kaiga.cli"]
        self.proc = subprocess.Popen(
            [sys.executable, *command, "serve", "--port", str(self.port), "--db", db_url, "--model", model],
            env={**os.environ, "KAIGA_HOME": str(home), "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(self.url + "/v1/models", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)

    def job(self, job_id: str) -> dict:
        return httpx.get(f"{self.url}/v1/jobs/{job_id}").json()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)  # no shutdown code runs: a crash
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


@pytest.mark.slow
def test_kill_9_mid_queue_then_restart_every_job_finishes_exactly_once(tmp_path, tiny_model_dir):
    db_url = f"sqlite:///{tmp_path / 'kaiga.db'}"
    running = tmp_path / "a-job-is-running"
    first = ServerProcess(db_url, str(tiny_model_dir), tmp_path, hold=running)
    try:
        ids = [httpx.post(first.url + "/v1/jobs", json={**JOB, "seed": 100 * i},
                          headers={"Idempotency-Key": f"job-{i}"}).json()["id"] for i in range(N_JOBS)]
        # A synchronous OpenAI request, queued behind them, whose connection the crash will cut.
        client = openai.OpenAI(base_url=first.url + "/v1", api_key="x", max_retries=0, timeout=120)
        sync_call = {"prompt": "a blue boat", "size": "64x64", "response_format": "b64_json",
                     "extra_body": {"steps": 1, "seed": 9}, "extra_headers": {"Idempotency-Key": "sync-1"}}
        outcome = []

        def call():
            try:
                outcome.append(client.images.generate(**sync_call))
            except openai.APIConnectionError as e:
                outcome.append(e)

        caller = threading.Thread(target=call)
        caller.start()
        db = open_database(db_url)
        deadline = time.monotonic() + 120
        while True:  # wait until a job is being generated (held there) and the synchronous request is queued...
            assert time.monotonic() < deadline
            held = running.exists()  # before reading the jobs: a job held now was claimed before the read
            with db.session() as s:
                statuses = dict(s.execute(select(Job.id, Job.status)).all())
            if held and len(statuses) == N_JOBS + 1:
                break
            time.sleep(0.02)
        assert list(statuses.values()).count("running") == 1 and statuses[ids[-1]] == "pending"
        first.kill()  # ...and the server dies
        caller.join(30)
        assert isinstance(outcome[0], openai.APIConnectionError)
    finally:
        first.stop()

    with db.session() as s:
        before = dict(s.execute(select(Job.id, Job.status)).all())
    [interrupted] = [i for i, status in before.items() if status == "running"]
    assert interrupted in ids and before[ids[-1]] == "pending" and len(before) == N_JOBS + 1

    second = ServerProcess(db_url, str(tiny_model_dir), tmp_path)
    try:
        deadline = time.monotonic() + 240
        while not all(second.job(i)["status"] == "done" for i in ids):  # nobody resubmits: they just run
            assert time.monotonic() < deadline, [second.job(i)["status"] for i in ids]
            time.sleep(0.2)
        # Clients retrying with their idempotency keys get the same jobs, already done, not new ones.
        for i in range(N_JOBS):
            again = httpx.post(second.url + "/v1/jobs", json={**JOB, "seed": 100 * i},
                               headers={"Idempotency-Key": f"job-{i}"}).json()
            assert again["id"] == ids[i] and again["status"] == "done"
        client = openai.OpenAI(base_url=second.url + "/v1", api_key="x", max_retries=0, timeout=120)
        retried = client.images.generate(**sync_call)
        assert len(retried.data) == 1
    finally:
        second.stop()

    with db.session() as s:
        jobs = {j.id: j for j in s.scalars(select(Job))}
        images_per_job = dict(s.execute(select(Image.job_id, func.count()).group_by(Image.job_id)).all())
        n_images = s.scalar(select(func.count()).select_from(Image))
    assert len(jobs) == N_JOBS + 1  # none lost, none added by the retries
    assert all(j.status == "done" for j in jobs.values())
    assert jobs[interrupted].attempts == 2  # the interrupted job ran again...
    assert all(j.attempts == 1 for i, j in jobs.items() if i != interrupted)
    assert all(images_per_job[i] == N_IMAGES for i in ids)  # ...but finished once: one set of images each
    assert n_images == N_JOBS * N_IMAGES + 1
    every_id = [i for j in jobs.values() for i in j.result_image_ids]
    assert sorted(every_id) == list(range(1, n_images + 1))  # no image claimed by two jobs
