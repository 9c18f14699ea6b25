"""`personalize` over HTTP: the jobs API, OpenAI's generations (the `openai` client's extra_body) and A1111's
txt2img steer by the caller's taste, learned from the ratings they gave through the reviews API; refused, naming
the field, for someone who has judged too little, for another person's taste when the server has keys, and
beside a plot."""

from __future__ import annotations

import time

import httpx
import openai

from kaiga.store.keys import create_key

PLAN = {"name": "taste", "prompt": "a {colour} car", "axes": {"colour": ["red", "blue"]}, "seeds": 2, "steps": 1}


def _rated_campaign(server, headers=None) -> None:
    """Four campaign images, rated 5, 4, 2 and 1 by the caller."""
    assert httpx.post(server.url + "/v1/campaigns", json={"plan": PLAN}, headers=headers).status_code == 202
    deadline = time.monotonic() + 120
    while httpx.get(server.url + "/v1/campaigns/taste", headers=headers).json()["done"] < 4:
        assert time.monotonic() < deadline, "campaign not made"
        time.sleep(0.2)
    images = httpx.get(server.url + "/v1/campaigns/taste/images", headers=headers).json()["data"]
    for image, rating in zip(images, (5, 4, 2, 1)):
        r = httpx.post(server.url + "/v1/campaigns/taste/reviews", json={"image_id": image["id"], "rating": rating},
                       headers=headers)
        assert r.status_code == 200, r.text


def test_the_three_apis_steer_by_the_callers_taste(server):
    assert httpx.get(server.url + "/v1/taste").json() == {"person": "anonymous", "judgements": 0, "enough": False}
    r = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "personalize": "anonymous"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "personalize", r.text
    assert "anonymous has judged 0 image(s)" in r.json()["error"]["message"]
    _rated_campaign(server)
    assert httpx.get(server.url + "/v1/taste").json() == {"person": "anonymous", "judgements": 4, "enough": True}

    r = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "steps": 1, "n": 2, "seed": 3,
                                                  "personalize": "anonymous", "choose_from": 2})
    assert r.status_code == 202, r.text
    job = server.wait_for_job(r.json()["id"])
    assert job["status"] == "done" and len(job["images"]) == 2, job
    note = job["images"][0]["record"]["extra"]["personalize"]
    assert (note["person"], note["ratings"], note["candidates"], note["prompt_asked"]) == ("anonymous", 4, 2, "a car")
    assert job["request"]["personalize"] == {"person": "anonymous", "choose_from": 2}

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    made = client.images.generate(prompt="a car", n=1, response_format="url",
                                  extra_body={"steps": 1, "personalize": "anonymous", "choose_from": 2})
    assert len(made.data) == 1 and made.data[0].revised_prompt.startswith("a ")
    last = httpx.get(server.url + "/v1/gallery/images").json()["data"][0]
    assert last["record"]["extra"]["personalize"]["candidates"] == 2

    r = httpx.post(server.url + "/sdapi/v1/txt2img", json={"prompt": "a car", "steps": 1,
                                                           "personalize": "anonymous", "choose_from": 1})
    assert r.status_code == 200 and len(r.json()["images"]) == 1, r.text
    last = httpx.get(server.url + "/v1/gallery/images").json()["data"][0]
    assert last["record"]["extra"]["personalize"]["candidates"] == 1

    r = httpx.post(server.url + "/v1/images/generations", json={"prompt": "a car", "grid_x": "steps=1,2",
                                                                "personalize": "anonymous"})
    assert r.status_code == 400 and "personalize: not with grid_x" in r.json()["error"]["message"], r.text


def test_with_keys_a_caller_steers_by_their_own_taste_only(serve):
    server = serve(require_keys=True)
    ann = {"Authorization": f"Bearer {create_key(server.state.db, name='ann')}"}
    assert httpx.get(server.url + "/v1/taste", headers=ann).json()["person"] == "ann"
    r = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "personalize": "bob"}, headers=ann)
    assert r.status_code == 403 and "your own taste only ('ann'), not 'bob'" in r.json()["error"]["message"], r.text
    r = httpx.post(server.url + "/v1/jobs", json={"prompt": "a car", "personalize": "ann", "choose_from": 17},
                   headers=ann)
    assert r.status_code == 400 and "choose_from" in r.text
