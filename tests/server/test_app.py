"""The app's life: OpenAPI docs, and a graceful stop that puts the running job back in the queue."""

import threading

import httpx
import pytest

from kaiga.worker import Worker


def test_openapi_docs(server):
    assert httpx.get(server.url + "/docs").status_code == 200
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert {"/v1/images/generations", "/v1/models", "/v1/jobs/{job_id}", "/sdapi/v1/txt2img"} <= set(paths)


def test_post_jobs_documents_every_request_field_and_its_400(server):
    from kaiga.request import field_specs

    schema = httpx.get(server.url + "/openapi.json").json()
    post = schema["paths"]["/v1/jobs"]["post"]
    body = schema["components"]["schemas"][post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                                           .rsplit("/", 1)[1]]
    kaiga_own = {"priority", "user", "sref", "personalize", "choose_from"}
    assert set(body["properties"]) == {*field_specs(), *kaiga_own} and body["required"] == ["prompt"]
    assert body["properties"]["steps"]["maximum"] == field_specs()["steps"].range[1]
    assert "422" not in post["responses"]  # the server answers a bad body 400, in OpenAI's shape, as documented
    error = post["responses"]["400"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][error]["properties"]) == {"error"}
    bad = httpx.post(server.url + "/v1/jobs", json={"prompt": "a red car", "steps": "many"})
    assert bad.status_code == 400 and set(bad.json()["error"]) == {"message", "type", "param", "code"}
    assert "422" in schema["paths"]["/sdapi/v1/txt2img"]["post"]["responses"]  # A1111's own, as A1111 answers


@pytest.fixture
def held_jobs(monkeypatch):
    """Jobs wait at their first denoising step until their worker is told to stop.

    So a job is surely running, and not yet done, when the server stops: no race against its speed.
    Returns the event set when a job reaches that step.
    """
    reached, stopping = threading.Event(), threading.Event()
    real_studio, real_request_stop = Worker.studio, Worker.request_stop

    def studio(self):
        real = real_studio(self)

        class Held:
            def generate(self, request, on_step, record_extra=None):
                def step(done: int, total: int) -> None:
                    if not stopping.is_set():
                        reached.set()
                        assert stopping.wait(60), "the worker was never told to stop"
                    on_step(done, total)

                return real.generate(request, on_step=step, record_extra=record_extra)

        return Held()

    def request_stop(self):
        real_request_stop(self)
        stopping.set()

    monkeypatch.setattr(Worker, "studio", studio)
    monkeypatch.setattr(Worker, "request_stop", request_stop)
    return reached


def test_stopping_the_server_requeues_its_running_job_without_counting_it(serve, held_jobs, tmp_path):
    server = serve(data_dir=tmp_path / "a")
    job = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "steps": 3, "n": 4}).json()
    assert held_jobs.wait(60), "the job never started"
    assert server.state.queue.get(job["id"]).status == "running"
    server.stop()  # uvicorn's shutdown: the worker stops between two denoising steps
    stopped = server.state.queue.get(job["id"])
    assert (stopped.status, stopped.attempts, stopped.result_image_ids) == ("pending", 0, None)

    again = serve(data_dir=tmp_path / "a")  # the next start runs it (the worker was told to stop: no hold)
    final = again.wait_for_job(job["id"])
    assert final["status"] == "done" and final["attempts"] == 1 and len(final["images"]) == 4
