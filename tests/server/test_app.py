"""The app's life: OpenAPI docs, and a graceful stop that puts the running job back in the queue."""

import time

import httpx


def test_openapi_docs(server):
    assert httpx.get(server.url + "/docs").status_code == 200
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/images/generations", "/v1/models", "/v1/jobs/{job_id}", "/sdapi/v1/txt2img"} <= set(paths)


def test_stopping_the_server_requeues_its_running_job_without_counting_it(serve, tmp_path):
    server = serve(data_dir=tmp_path / "a")
    job = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "steps": 150, "n": 4}).json()
    deadline = time.monotonic() + 30
    while server.state.queue.get(job["id"]).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    server.stop()  # uvicorn's shutdown: the worker stops between two denoising steps
    stopped = server.state.queue.get(job["id"])
    assert (stopped.status, stopped.attempts) == ("pending", 0)

    again = serve(data_dir=tmp_path / "a")  # the next start runs it
    deadline = time.monotonic() + 120
    while (final := again.state.queue.get(job["id"])).status != "done":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert final.attempts == 1 and len(final.result_image_ids) == 4
