"""The gallery over HTTP: list, search, curate, boards, export, delete, and re-run with the same pixels."""

import io
import json
import zipfile

import httpx
import numpy as np
from PIL import Image

JOB = {"prompt": "a red car", "width": 64, "height": 64, "steps": 1}


def _wait(server, job_id):
    job = server.wait_for_job(job_id)
    assert job["status"] == "done", job
    return job


def _generate(server, **fields):
    job = httpx.post(server.url + "/v1/jobs", json={**JOB, **fields}).json()
    return [im["id"] for im in _wait(server, job["id"])["images"]]


def _error(r, status):
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_gallery_over_http(serve, database_url):  # on SQLite and on PostgreSQL
    server = serve(db_url=database_url)
    g = server.url + "/v1/gallery"
    cars = _generate(server, n=2, seed=3)
    boat = _generate(server, prompt="a 100% blue_boat", seed=9)[0]

    page = httpx.get(g + "/images", params={"limit": 2}).json()
    assert [im["id"] for im in page["data"]] == [boat, *cars[::-1]][:2] and page["total"] == 3
    rest = httpx.get(g + "/images", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [im["id"] for im in rest["data"]] == [cars[0]] and rest["next_cursor"] is None
    item = rest["data"][0]
    assert set(item) == {"id", "sha256", "url", "prompt", "created", "favourite", "rating", "boards", "review",
                         "record"}
    assert item["record"]["seed"] == 3 and httpx.get(item["url"]).status_code == 200
    assert [im["id"] for im in httpx.get(g + "/images", params={"q": "100%"}).json()["data"]] == [boat]
    assert httpx.get(g + "/images", params={"q": "0_"}).json()["data"] == []
    assert _error(httpx.get(g + "/images", params={"limit": 0}), 400)["param"] == "limit"
    assert _error(httpx.get(g + "/images", params={"colour": "red"}), 400)["param"] == "colour"

    for bad in (0, 6, "five"):
        assert _error(httpx.patch(f"{g}/images/{boat}", json={"rating": bad}), 400)["param"] == "rating"
    assert _error(httpx.patch(f"{g}/images/{boat}", json={}), 400)["code"] == "invalid_value"
    r = httpx.patch(f"{g}/images/{boat}", json={"rating": 4, "favourite": True})
    assert (r.json()["rating"], r.json()["favourite"]) == (4, True)
    assert httpx.patch(f"{g}/images/{boat}", json={"rating": None}).json()["rating"] is None
    assert [im["id"] for im in httpx.get(g + "/images", params={"favourite": "true"}).json()["data"]] == [boat]
    assert _error(httpx.patch(f"{g}/images/999", json={"rating": 1}), 404)["code"] == "not_found"

    board = httpx.post(g + "/boards", json={"name": "cars"})
    assert board.status_code == 201
    board = board.json()
    assert _error(httpx.post(g + "/boards", json={"name": "cars"}), 409)["param"] == "name"
    assert _error(httpx.post(g + "/boards", json={"name": " "}), 400)["param"] == "name"
    assert _error(httpx.post(g + "/boards", json={"name": "x" * 101}), 400)["param"] == "name"
    for image_id in cars:
        assert httpx.put(f"{g}/boards/{board['id']}/images/{image_id}").json()["added"] is True
    assert httpx.put(f"{g}/boards/{board['id']}/images/{cars[0]}").json()["added"] is False
    assert _error(httpx.put(f"{g}/boards/{board['id']}/images/999"), 404)["param"] == "image_id"
    assert _error(httpx.get(f"{g}/images/0"), 400)["param"] == "image_id"  # a bad id names itself, not "path"
    assert httpx.patch(f"{g}/boards/{board['id']}", json={"name": "red cars"}).json()["name"] == "red cars"
    assert [(b["name"], b["images"]) for b in httpx.get(g + "/boards").json()["data"]] == [("red cars", 2)]
    on_board = httpx.get(g + "/images", params={"board": board["id"]}).json()
    assert {im["id"] for im in on_board["data"]} == set(cars)
    assert on_board["data"][0]["boards"] == [{"id": board["id"], "name": "red cars"}]
    assert _error(httpx.get(g + "/images", params={"board": 999}), 404)["param"] == "board_id"

    r = httpx.get(g + "/export", params={"board": board["id"]})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        records = [json.loads(line) for line in zf.read("records.jsonl").splitlines()]
        assert [e["id"] for e in records] == cars[::-1] and all(e["boards"] == ["red cars"] for e in records)
        assert zf.read(records[0]["file"]) == httpx.get(on_board["data"][0]["url"]).content

    assert httpx.delete(f"{g}/boards/{board['id']}/images/{cars[0]}").json()["removed"] is True
    url = httpx.get(f"{g}/images/{cars[0]}").json()["url"]
    assert httpx.delete(f"{g}/images/{cars[0]}").json()["deleted"] is True
    assert httpx.get(url).status_code == 404 and _error(httpx.get(f"{g}/images/{cars[0]}"), 404)
    assert httpx.delete(f"{g}/boards/{board['id']}").json()["deleted"] is True
    assert httpx.get(g + "/boards").json()["data"] == [] and httpx.get(g + "/images").json()["total"] == 2


def _pixels(url):
    return Image.open(io.BytesIO(httpx.get(url).content))


def _rerun(server, image_id):
    original = httpx.get(f"{server.url}/v1/gallery/images/{image_id}").json()
    r = httpx.post(f"{server.url}/v1/gallery/images/{image_id}/rerun")
    assert r.status_code == 202 and r.json()["request"]["seed"] == original["record"]["seed"], r.text
    assert r.json()["request"]["n"] == 1
    again = _wait(server, r.json()["id"])["images"][0]
    same = ("prompt", "seed", "steps", "guidance", "sampler", "width", "height", "model", "model_hash")
    assert {k: again["record"][k] for k in same} == {k: original["record"][k] for k in same}
    return np.asarray(_pixels(original["url"])), np.asarray(_pixels(again["url"]))


def test_rerun_makes_the_same_pixels(server):
    before, after = _rerun(server, _generate(server, seed=11)[0])
    assert before.shape == after.shape and before.tobytes() == after.tobytes()  # byte-identical pixels
    # An image made in a batch is re-made alone: the same image, but batched float sums may round
    # differently, so a few values may differ by a least significant bit.
    before, after = _rerun(server, _generate(server, n=2, seed=20)[1])
    assert np.abs(before.astype(int) - after.astype(int)).max() <= 2
    assert _error(httpx.post(f"{server.url}/v1/gallery/images/999/rerun"), 404)["code"] == "not_found"


def test_boards_are_private_to_their_owner(serve):
    server = serve(api_auth=("ann:pw1", "bob:pw2"), run_worker=False)
    ann, bob = httpx.Client(auth=("ann", "pw1")), httpx.Client(auth=("bob", "pw2"))
    g = server.url + "/v1/gallery"
    assert _error(httpx.get(g + "/boards"), 401)["code"] == "invalid_api_key"
    board = ann.post(g + "/boards", json={"name": "mine"}).json()
    assert bob.get(g + "/boards").json()["data"] == []
    assert _error(bob.patch(f"{g}/boards/{board['id']}", json={"name": "ours"}), 404)["code"] == "not_found"
    assert _error(bob.get(g + "/images", params={"board": board["id"]}), 404)["param"] == "board_id"
    assert bob.post(g + "/boards", json={"name": "mine"}).status_code == 201  # names are per owner


def test_the_list_and_export_parameters_are_in_the_openapi_schema(tmp_path):
    from kaiga.server import ServerSettings, create_app

    paths = create_app(ServerSettings(data_dir=tmp_path)).openapi()["paths"]
    names = lambda path: [p["name"] for p in paths[path]["get"]["parameters"]]  # noqa: E731
    assert names("/v1/gallery/images") == ["q", "favourite", "rating", "min_rating", "board", "held", "limit", "cursor"]
    assert names("/v1/gallery/export") == ["q", "favourite", "rating", "min_rating", "board", "held"]


def test_vary_pan_zoom_and_upscale_a_gallery_image(server):
    [source] = _generate(server, seed=5)
    base = f"{server.url}/v1/gallery/images/{source}"
    original = httpx.get(base).json()
    for path, body, strength in (("vary", {"strength": "subtle", "n": 2, "seed": 7, "steps": 3}, 0.35),
                                 ("zoom", {"factor": 1.5, "n": 1}, 1.0), ("pan", {"direction": "left", "n": 1}, 1.0)):
        r = httpx.post(f"{base}/{path}", json=body)
        assert r.status_code == 202, r.text
        images = _wait(server, r.json()["id"])["images"]
        assert len(images) == body["n"] and r.json()["remix"].startswith(path)
        record = images[0]["record"]
        assert record["prompt"] == original["record"]["prompt"] and record["strength"] == strength
        assert (record["mask"] is None) == (path == "vary") and record["init_image"]
        assert (record["extra"]["remix"], record["extra"]["remixed_image"]) == (r.json()["remix"], source)
    up = httpx.post(f"{base}/upscale", json={})
    assert up.status_code == 201, up.text
    assert (up.json()["record"]["upscale"], up.json()["record"]["extra"]["upscaler"]) == (4, "kaiga-4x")
    assert up.json()["record"]["seed"] == original["record"]["seed"] and up.json()["id"] != source
    lanczos = httpx.post(f"{base}/upscale", json={"factor": 2, "method": "lanczos"}).json()["record"]
    assert (lanczos["upscale"], lanczos["extra"]["upscaler"]) == (2, "Lanczos")
    assert _error(httpx.post(f"{base}/upscale", json={"method": "bicubic"}), 400)["param"] == "method"
    assert _error(httpx.post(f"{base}/pan", json={"direction": "sideways"}), 400)["param"] == "direction"
    assert _error(httpx.post(f"{base}/zoom", json={"factor": 9}), 400)["param"] == "factor"
    assert _error(httpx.post(f"{server.url}/v1/gallery/images/999/vary", json={}), 404)["code"] == "not_found"


def test_blend_two_gallery_images(server):
    """POST /v1/gallery/images/blend mixes 2-4 gallery images: a job whose images' records name the blended uploads,
    their shares and the gallery images they came from; a count outside 2-4 or a missing image is refused."""
    a = _generate(server, seed=5, prompt="a red car")[0]
    b = _generate(server, seed=6, prompt="a blue boat")[0]
    url = f"{server.url}/v1/gallery/images/blend"
    r = httpx.post(url, json={"images": [a, b], "weights": [3, 1], "n": 2, "seed": 1, "steps": 4})
    assert r.status_code == 202, r.text
    images = _wait(server, r.json()["id"])["images"]
    record = images[0]["record"]
    assert len(images) == 2 and record["extra"]["remix"] == "blend" and record["extra"]["remixed_images"] == [a, b]
    assert record["extra"]["blend"]["weights"] == [0.75, 0.25] and len(record["extra"]["blend"]["images"]) == 2
    assert record["prompt"] == "a red car::0.75 a blue boat::0.25" and record["strength"] == 0.6
    assert _error(httpx.post(url, json={"images": [a]}), 400)["param"] == "images"
    assert _error(httpx.post(url, json={"images": [a, 999]}), 404)["code"] == "not_found"
    assert _error(httpx.post(url, json={"images": [a, b], "weights": [1]}), 400)["param"] == "blend"
