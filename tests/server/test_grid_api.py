"""POST /v1/grids: A1111's X/Y/Z plot over HTTP, against a real server and worker."""

import io

import httpx
from PIL import Image


def test_a_grid_makes_every_cell_and_a_labelled_sheet_in_the_gallery(server):
    body = {"prompt": "a red car", "width": 64, "height": 64, "seed": 3, "x": "steps=1,2", "y": "prompt=red,blue"}
    r = httpx.post(server.url + "/v1/grids", json=body, timeout=120)
    assert r.status_code == 201, r.text
    cells, [sheet] = r.json()["cells"], r.json()["sheets"]
    assert [(c["record"]["steps"], c["record"]["prompt"]) for c in cells] == [
        (1, "a red car"), (2, "a red car"), (1, "a blue car"), (2, "a blue car")]
    assert {c["record"]["seed"] for c in cells} == {3}  # one seed for the whole plot
    assert cells[3]["record"]["extra"]["grid"] == {"x": "steps=1,2", "y": "prompt=red,blue", "cell": [1, 1]}
    assert sheet["record"]["extra"]["grid"] == {"x": "steps=1,2", "y": "prompt=red,blue"}
    with Image.open(io.BytesIO(httpx.get(sheet["url"]).content)) as im:
        assert im.width > 2 * 64 and im.height > 2 * 64  # two columns, two rows and their labels
    listed = {im["id"] for im in httpx.get(server.url + "/v1/gallery/images?limit=10").json()["data"]}
    assert {c["id"] for c in cells} | {sheet["id"]} <= listed


def test_a_bad_axis_or_cell_is_refused_before_any_job(server):
    def refused(**change):
        r = httpx.post(server.url + "/v1/grids", json={"prompt": "a red car", "x": "steps=1,2", **change})
        assert r.status_code == 400, r.text
        return r.json()["error"]

    assert refused(x="colour=red,blue")["message"].startswith("x: give FIELD=v1,v2,...")
    assert refused(x="")["message"].startswith("x: give FIELD=v1,v2,...")
    assert "the cell steps=0" in refused(x="steps=0,2")["message"]
    assert refused(z="seed=1,2")["param"] == "z"
    assert refused(n=2)["param"] == "n"
    assert httpx.get(server.url + "/v1/jobs?limit=5").status_code in (200, 405)
    assert httpx.get(server.url + "/v1/gallery/images").json()["data"] == []
