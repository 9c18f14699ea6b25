"""Images the safety filter flags are held for review in the gallery: out of the default listing and the
export, listed with ?held=true (blurred, with their note), approved back into the gallery or rejected
(deleted), over the real server, on SQLite and on PostgreSQL."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image

JOB = {"width": 64, "height": 64, "steps": 1}


def _generate(server, prompt, **fields):
    job = httpx.post(server.url + "/v1/jobs", json={**JOB, "prompt": prompt, **fields}).json()
    job = server.wait_for_job(job["id"])
    assert job["status"] == "done", job
    return [im["id"] for im in job["images"]]


def _error(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]


@pytest.mark.slow  # two jobs through the real server (~6 s)
def test_flagged_images_are_held_then_approved_or_rejected(serve, database_url):
    server = serve(db_url=database_url)
    g = server.url + "/v1/gallery/images"
    [clean] = _generate(server, "a red car", seed=1)
    held = _generate(server, "a red car, nude", seed=1, n=2)

    assert [im["id"] for im in httpx.get(g).json()["data"]] == [clean]  # held images are not listed...
    page = httpx.get(g, params={"held": "true"}).json()
    assert [im["id"] for im in page["data"]] == held[::-1] and page["total"] == 2  # ...but listed for review
    item = page["data"][0]
    assert item["review"] == "held" and item["record"]["extra"]["safety"]["terms"] == ["nude"]
    assert item["record"]["extra"]["safety"]["action"] == "blurred"
    flagged = np.asarray(Image.open(io.BytesIO(httpx.get(item["url"]).content)).convert("RGB"), dtype=np.float32)
    original = httpx.get(f"{g}/{clean}").json()
    shown = np.asarray(Image.open(io.BytesIO(httpx.get(original["url"]).content)).convert("RGB"), dtype=np.float32)
    assert flagged.mean() > 10 and np.abs(np.diff(flagged, axis=1)).mean() < np.abs(np.diff(shown, axis=1)).mean()
    assert original["review"] is None

    assert _error(httpx.post(f"{g}/{held[0]}/review", json={"decision": "maybe"}), 400)["param"] == "decision"
    assert _error(httpx.post(f"{g}/{clean}/review", json={"decision": "approve"}), 400)["param"] == "decision"
    assert _error(httpx.post(f"{g}/999/review", json={"decision": "approve"}), 404)["code"] == "not_found"

    approved = httpx.post(f"{g}/{held[0]}/review", json={"decision": "approve"}).json()
    assert approved["review"] == "approved" and approved["url"] == httpx.get(f"{g}/{held[0]}").json()["url"]
    rejected = httpx.post(f"{g}/{held[1]}/review", json={"decision": "reject"}).json()
    assert rejected == {"id": held[1], "object": "image", "review": "rejected", "deleted": True}
    assert _error(httpx.get(f"{g}/{held[1]}"), 404)["code"] == "not_found"
    assert [im["id"] for im in httpx.get(g).json()["data"]] == [held[0], clean]
    assert httpx.get(g, params={"held": "true"}).json()["total"] == 0
