"""Campaigns over HTTP: POST /v1/campaigns queues the cells, the server's workers make them, GET says where they
stand; posting again queues nothing new; a plan that cannot run is a 400 naming the key."""

from __future__ import annotations

import io
import time

import httpx
from PIL import Image

PLAN = {"name": "ad", "prompt": "a {colour} car", "axes": {"colour": ["red", "blue"], "steps": [1, 2]}, "seeds": 1}


def _wait_done(server, name: str, cells: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = httpx.get(f"{server.url}/v1/campaigns/{name}").json()
        if got["done"] + got["failed"] == cells:
            return got
        time.sleep(0.2)
    raise AssertionError(f"campaign {name} not done: {got}")


def test_a_campaign_posted_is_made_by_the_servers_workers(server):
    r = httpx.post(server.url + "/v1/campaigns", json={"plan": PLAN})
    assert r.status_code == 202, r.text
    assert (r.json()["cells"], r.json()["queued_now"]) == (4, 4)
    done = _wait_done(server, "ad", 4)
    assert (done["done"], done["failed"]) == (4, 0)
    images = httpx.get(server.url + "/v1/gallery/images").json()["data"]
    cells = sorted((i["record"]["prompt"], i["record"]["steps"]) for i in images)
    assert cells == [("a blue car", 1), ("a blue car", 2), ("a red car", 1), ("a red car", 2)]
    assert {i["record"]["extra"]["campaign"]["name"] for i in images} == {"ad"}
    again = httpx.post(server.url + "/v1/campaigns", json={"plan": PLAN}).json()
    assert (again["queued_now"], again["done"]) == (0, 4)
    grown = httpx.post(server.url + "/v1/campaigns", json={"plan": {**PLAN, "seeds": 2}}).json()
    assert grown["queued_now"] == 4 and _wait_done(server, "ad", 8)["done"] == 8
    listed = httpx.get(server.url + "/v1/campaigns").json()["data"]
    assert [(c["name"], c["cells"], c["done"]) for c in listed] == [("ad", 8, 8)]


def test_a_plan_that_cannot_run_is_a_400_naming_the_key(server):
    for plan, param, start in (
        ({**PLAN, "axes": {"colour": ["red"], "weather": ["snow"]}}, "axes.weather", "axes.weather: neither"),
        ({k: v for k, v in PLAN.items() if k != "name"}, "name", "name: a campaign sent to the server needs a name"),
        ({**PLAN, "width": 1000}, "plan", "the cell colour=red, steps=1, seed=0: width"),
        ({**PLAN, "model": "nope"}, "model", "model: unknown model 'nope'"),
    ):
        r = httpx.post(server.url + "/v1/campaigns", json={"plan": plan})
        assert r.status_code == 400 and r.json()["error"]["message"].startswith(start), r.text
        assert r.json()["error"]["param"] == param, r.json()
    assert httpx.get(server.url + "/v1/campaigns/nope").status_code == 404
    assert server.state.queue.campaign_jobs("ad") == []  # refused before a cell was queued


def test_reviews_over_http_name_the_caller(server):
    """GET /v1/campaigns/{name}/images lists the made cells with their reviews; POST .../reviews records the
    caller's decision, star and note, and refuses an image of another campaign."""
    plan = {**PLAN, "name": "rev", "axes": {"colour": ["red", "blue"]}}
    assert httpx.post(server.url + "/v1/campaigns", json={"plan": plan}).status_code == 202
    _wait_done(server, "rev", 2)
    images = httpx.get(server.url + "/v1/campaigns/rev/images").json()["data"]
    assert [i["values"]["colour"] for i in images] == ["red", "blue"] and all(i["reviews"] == [] for i in images)
    first = images[0]["id"]
    r = httpx.post(server.url + "/v1/campaigns/rev/reviews", json={"image_id": first, "decision": "approved",
                                                                    "star": True, "note": "keep"})
    assert r.status_code == 200 and (r.json()["decision"], r.json()["star"], r.json()["note"]) == ("approved", True, "keep")
    cleared = httpx.post(server.url + "/v1/campaigns/rev/reviews", json={"image_id": first, "decision": None,
                                                                          "rating": 4}).json()
    assert (cleared["decision"], cleared["star"], cleared["note"], cleared["rating"]) == (None, True, "keep", 4)
    again = httpx.get(server.url + "/v1/campaigns/rev/images").json()["data"][0]
    assert again["starred_by"] and again["reviews"][0]["reviewer"] == cleared["reviewer"]
    more = httpx.post(server.url + "/v1/campaigns/rev/more", json={"n": 2, "strength": "strong"})
    assert more.status_code == 400 and "no approved image yet" in more.json()["error"]["message"]
    httpx.post(server.url + "/v1/campaigns/rev/reviews", json={"image_id": first, "decision": "approved"})
    more = httpx.post(server.url + "/v1/campaigns/rev/more", json={"n": 2, "strength": "strong"})
    assert more.status_code == 202 and more.json()["images"] == [first]
    job = more.json()["jobs"][0]
    deadline = time.monotonic() + 60
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.2)
        job = httpx.get(f"{server.url}/v1/jobs/{job['id']}").json()
    records = [im["record"] for im in job["images"]]
    assert len(records) == 2 and all(r["extra"]["campaign"] == {"name": "rev", "more_like": first} for r in records)
    assert all(r["strength"] == 0.75 and r["extra"]["remix"] == "vary-strong" for r in records)
    assert httpx.post(server.url + "/v1/campaigns/rev/reviews", json={"image_id": 99999}).status_code == 404
    bad = httpx.post(server.url + "/v1/campaigns/rev/reviews", json={"image_id": first, "decision": "maybe"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "decision"
    bad = httpx.post(server.url + "/v1/campaigns/rev/reviews", json={"image_id": first, "rating": 6})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rating"


def test_contact_sheets_over_http(server):
    """GET /v1/campaigns/{name}/sheets names a sheet per pair of axes; each is a PNG of the cells made so far."""
    plan = {**PLAN, "name": "sheets", "prompt": "a {colour} car in the {scene}", "seeds": 2, "axes": {"colour": ["red", "blue"], "scene": ["city", "forest"]}}
    assert httpx.post(server.url + "/v1/campaigns", json={"plan": plan}).status_code == 202
    _wait_done(server, "sheets", 8)
    sheets = httpx.get(server.url + "/v1/campaigns/sheets/sheets").json()["data"]
    assert [s["name"] for s in sheets] == ["colour-x-scene", "colour-x-seed", "scene-x-seed"]
    png = httpx.get(sheets[0]["url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as sheet:
        assert sheet.width > 2 * 64 * 2 and sheet.height > 2 * 64 * 2  # 2 × 2 cells at twice their size, labelled
    missing = httpx.get(server.url + "/v1/campaigns/sheets/sheets/colour-x-nothing.png")
    assert missing.status_code == 404 and "colour-x-scene.png" in missing.json()["error"]["message"]

