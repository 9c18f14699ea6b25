"""kaiga's job endpoints, the full queue's 429, and cancellation, over HTTP."""

import shutil
import time

import httpx
import openai
import pytest

JOB = {"prompt": "a red car", "width": 64, "height": 64, "steps": 1}


def test_submit_follow_and_fetch(server):
    r = httpx.post(server.url + "/v1/jobs", json={**JOB, "n": 2, "seed": 4})
    assert r.status_code == 202 and r.json()["status"] in ("pending", "running", "done")
    job = server.wait_for_job(r.json()["id"])
    assert job["status"] == "done" and job["progress"] == 1.0 and job["attempts"] == 1
    assert [im["record"]["seed"] for im in job["images"]] == [4, 5]
    assert httpx.get(job["images"][0]["url"]).status_code == 200
    assert httpx.get(server.url + "/v1/jobs/nope").json()["error"]["code"] == "not_found"


def test_job_timestamps_carry_their_time_zone(server):
    from datetime import datetime, timedelta, timezone

    job = server.wait_for_job(httpx.post(server.url + "/v1/jobs", json=JOB).json()["id"])
    times = [job[k] for k in ("created", "started", "finished")]
    assert all(t.endswith("+00:00") for t in times), times  # UTC, said so: not a naive local-looking time
    created, started, finished = (datetime.fromisoformat(t) for t in times)
    assert created <= started <= finished and abs(datetime.now(timezone.utc) - created) < timedelta(minutes=10)


def test_bad_job_request_names_the_field(server):
    r = httpx.post(server.url + "/v1/jobs", json={**JOB, "steps": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "steps"
    r = httpx.post(server.url + "/v1/jobs", json={**JOB, "width": 72})  # the tiny model needs multiples of 16
    assert r.status_code == 400 and r.json()["error"]["param"] == "width"


def test_full_queue_is_429_with_retry_after(serve):
    server = serve(run_worker=False, max_queued=2)  # nothing runs: jobs stay queued
    for _ in range(2):
        assert httpx.post(server.url + "/v1/jobs", json=JOB).status_code == 202
    r = httpx.post(server.url + "/v1/jobs", json=JOB)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["error"]["type"] == "rate_limit_error"
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.images.generate(prompt="a red car", size="64x64")


def test_cancel_a_pending_job(serve):
    server = serve(run_worker=False)
    job = httpx.post(server.url + "/v1/jobs", json=JOB).json()
    assert httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert server.state.queue.depth() == 0


def test_cancel_a_running_job_stops_it_between_steps(server):
    job = httpx.post(server.url + "/v1/jobs", json={**JOB, "steps": 150, "n": 16}).json()  # many seconds of work
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    t0 = time.monotonic()
    httpx.post(f"{server.url}/v1/jobs/{job['id']}/cancel")
    final = server.wait_for_job(job["id"])
    assert final["status"] == "cancelled" and final["images"] == [] and time.monotonic() - t0 < 5


def test_priority_runs_first(serve):
    server = serve(run_worker=False)
    low = httpx.post(server.url + "/v1/jobs", json=JOB).json()
    high = httpx.post(server.url + "/v1/jobs", json={**JOB, "priority": 10}).json()
    assert server.state.queue.claim().id == high["id"]
    assert server.state.queue.claim().id == low["id"]


def test_each_model_has_its_own_worker(serve, tiny_model_dir, tmp_path):
    # A second model (a copy of the tiny one under another name): its job must not wait for the first's.
    other = tmp_path / "tiny-other"
    shutil.copytree(tiny_model_dir, other)
    server = serve(extra_models=(other,))
    slow = httpx.post(server.url + "/v1/jobs", json={**JOB, "steps": 150, "n": 16}).json()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/v1/jobs/{slow['id']}").json()["status"] == "pending":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    quick = httpx.post(server.url + "/v1/jobs", json={**JOB, "model": "tiny-other"}).json()
    quick = server.wait_for_job(quick["id"])
    slow = server.wait_for_job(slow["id"])
    assert quick["status"] == slow["status"] == "done"
    assert quick["started"] < slow["finished"]  # it ran while the first model's job was running
    assert {row.model for row in _job_rows(server)} == {tiny_model_dir.name, "tiny-other"}


def _job_rows(server):
    from sqlalchemy import select

    from kaiga.store.tables import Job

    with server.state.db.session() as s:
        return list(s.scalars(select(Job)))


def test_a_job_names_the_words_the_model_ignored(server):
    job = server.wait_for_job(httpx.post(server.url + "/v1/jobs", json={**JOB, "prompt": "a zebra car"}).json()["id"])
    assert job["unknown_words"] == ["zebra"] and job["images"][0]["record"]["extra"]["unknown_words"] == ["zebra"]


def test_a_job_names_the_fields_the_model_does_not_read(server):
    job = server.wait_for_job(httpx.post(server.url + "/v1/jobs", json={**JOB, "truncation": 0.5}).json()["id"])
    record = job["images"][0]["record"]
    assert job["ignored_fields"] == ["truncation"] and record["extra"]["ignored_fields"] == ["truncation"]
    assert "truncation" not in record["extra"]  # ran without it, so the record does not say it was used


def test_a_server_started_in_bf16_says_so_in_every_record(serve):
    server = serve(precision="bf16")
    job = httpx.post(server.url + "/v1/jobs", json={"prompt": "a red car", "steps": 1, "seed": 2}).json()
    job = server.wait_for_job(job["id"])
    assert job["status"] == "done" and job["images"][0]["record"]["extra"]["precision"] == "bf16", job
