"""The OpenAI-compatible API, called with the official `openai` package against a real server."""

import base64
import io

import httpx
import openai
import pytest
from PIL import Image

from kaiga.metadata import read_metadata

FAST = {"steps": 1}  # kaiga's own field, sent through the client's extra_body


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_b64_json_images_carry_their_record(client):
    r = client.images.generate(prompt="a red car", n=2, size="64x64", response_format="b64_json",
                               extra_body={**FAST, "seed": 11})
    assert len(r.data) == 2 and r.created > 0
    records = [read_metadata(base64.b64decode(d.b64_json)).record for d in r.data]
    assert [rec.seed for rec in records] == [11, 12]
    assert {(rec.width, rec.height, rec.steps, rec.model) for rec in records} == {(64, 64, 1, "tiny-diffusion")}


def test_url_images_are_served_from_the_gallery(client, server):
    r = client.images.generate(prompt="a blue boat", size="64x64", response_format="url", extra_body=FAST)
    url = r.data[0].url
    assert url.startswith(server.url + "/v1/images/files/") and url.endswith(".png")
    got = httpx.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(got.content)).size == (64, 64)
    assert httpx.get(server.url + "/v1/images/files/" + "0" * 64 + ".png").status_code == 404
    assert httpx.get(server.url + "/v1/images/files/..%2F..%2Fkaiga.db").status_code == 404


def test_quality_and_style_map_onto_steps_and_guidance(client):
    r = client.images.generate(prompt="a red car", size="64x64", quality="low", style="natural",
                               response_format="b64_json")
    rec = read_metadata(base64.b64decode(r.data[0].b64_json)).record
    assert (rec.steps, rec.guidance) == (10, 2.0)


@pytest.mark.parametrize("kwargs, param", [
    ({"size": "64 by 64"}, "size"),
    ({"size": "60x64"}, "size"),  # GenerationRequest: multiple of 8
    ({"size": "4096x64"}, "size"),  # GenerationRequest: at most 2048
    ({"n": 40}, "n"),
    ({"model": "dall-e-3"}, "model"),
    ({"response_format": "jpeg"}, "response_format"),
    ({"quality": "ultra"}, "quality"),
    ({"extra_body": {"sampler": "plms"}}, "sampler"),
    ({"extra_body": {"colour": "red"}}, "colour"),  # an unknown field, refused as OpenAI does
])
def test_bad_values_give_openai_shaped_400(client, kwargs, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(prompt="a red car", **kwargs)
    err = e.value.body  # the client unwraps {"error": {...}}
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]


def test_an_empty_prompt_names_the_field(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(prompt="", size="64x64")
    assert e.value.body["param"] == "prompt" and "prompt" in e.value.body["message"]


def test_models_lists_the_served_models(client):
    ids = [m.id for m in client.models.list()]
    assert "tiny-diffusion" in ids and "scenes-diffusion" in ids


def test_idempotency_key_makes_a_retry_return_the_same_images(client, server):
    headers = {"Idempotency-Key": "retry-1"}
    raw1 = client.images.with_raw_response.generate(prompt="a red car", size="64x64", extra_headers=headers,
                                                    extra_body=FAST)
    raw2 = client.images.with_raw_response.generate(prompt="a red car", size="64x64", extra_headers=headers,
                                                    extra_body=FAST)
    assert raw1.headers["x-kaiga-job-id"] == raw2.headers["x-kaiga-job-id"]
    assert raw1.parse().data[0].url == raw2.parse().data[0].url  # the seed was drawn once, the job ran once
    assert server.state.queue.depth() == 0
    with server.state.db.session() as s:
        from kaiga.store.tables import Job

        assert s.query(Job).count() == 1
    with pytest.raises(openai.APIStatusError) as e:  # the same key with another request
        client.images.generate(prompt="a blue car", size="64x64", extra_headers=headers, extra_body=FAST)
    assert e.value.status_code == 409 and e.value.body["param"] == "Idempotency-Key"


def test_a_size_the_model_refuses_names_size(client):
    """The model's own limit (the tiny one makes at most 256²) is told about `size`, the field the client sent."""
    with pytest.raises(openai.BadRequestError) as e:
        client.images.generate(prompt="a red car", size="1024x1024", extra_body=FAST)
    assert e.value.body["param"] == "size" and e.value.body["message"].startswith("size: width at most 256")


@pytest.mark.parametrize("body, message", [
    (b'{"prompt": "a red car", ',
     "body: not valid JSON (Expecting property name enclosed in double quotes at character 24)"),
    (b'{"prompt": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body: JSON nested too deeply to parse"),
])
@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/jobs"])
def test_unparsable_json_gets_the_openai_error_shape(server, path, body, message):
    got = httpx.post(server.url + path, content=body, headers={"content-type": "application/json"})
    assert got.status_code == 400
    assert got.json() == {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                    "code": "invalid_json"}}


def test_revised_prompt_names_the_words_the_model_ignored(client):
    r = client.images.generate(prompt="a zebra car", size="64x64", n=2, extra_body=FAST)
    assert [d.revised_prompt for d in r.data] == ["a zebra car (the model does not know these words and ignored "
                                                  "them: zebra)"] * 2
    r = client.images.generate(prompt="a red car", size="64x64", response_format="b64_json", extra_body=FAST)
    assert r.data[0].revised_prompt == "a red car"  # every word known: the prompt as it was


def test_a_style_mix_goes_through_extra_body(client):
    r = client.images.generate(prompt="a red car", size="64x64", response_format="b64_json",
                               extra_body={**FAST, "seed": 3, "styles": "watercolor:0.7,neon:0.3", "stylize": 200},
                               style="vivid")  # OpenAI's own style (guidance) beside kaiga's mix
    record = read_metadata(base64.b64decode(r.data[0].b64_json)).record
    assert record.extra["style"]["mix"] == "watercolor:0.7,neon:0.3" and record.extra["stylize"] == 200
    with pytest.raises(openai.BadRequestError, match="no style named 'nope'"):
        client.images.generate(prompt="a red car", size="64x64", extra_body={**FAST, "styles": "nope"})


def test_sref_through_extra_body_takes_the_style_of_an_image(client, watercolor_png):
    """Midjourney's --sref as kaiga's extra_body `sref`: the judge reads the image's style, the record says so."""
    r = client.images.generate(prompt="a red car", size="64x64", response_format="b64_json",
                               extra_body={**FAST, "seed": 3, "sref": watercolor_png})
    record = read_metadata(base64.b64decode(r.data[0].b64_json)).record
    assert record.extra["sref"]["read"] == "watercolor" and len(record.extra["sref"]["sha256"]) == 64
    assert record.extra["style"]["mix"].startswith("watercolor")
    with pytest.raises(openai.BadRequestError, match="sref: give a style or sref, not both"):
        client.images.generate(prompt="a red car", size="64x64",
                               extra_body={**FAST, "sref": watercolor_png, "styles": "neon"})
    with pytest.raises(openai.BadRequestError, match="sref: not valid base64"):
        client.images.generate(prompt="a red car", size="64x64", extra_body={**FAST, "sref": "not base64!"})


def test_the_prompt_syntax_through_the_openai_api(client):
    r = client.images.generate(prompt="a __colour__ car [in the snow:0.5]", size="64x64", response_format="b64_json",
                               extra_body={**FAST, "seed": 3})
    record = read_metadata(base64.b64decode(r.data[0].b64_json)).record
    assert "__" not in record.prompt and record.prompt.endswith(" car [in the snow:0.5]")
    assert record.extra["prompt_template"]["prompt"] == "a __colour__ car [in the snow:0.5]"
    with pytest.raises(openai.BadRequestError, match="no wildcard list __nope__"):
        client.images.generate(prompt="a __nope__ car", size="64x64", extra_body=FAST)


def test_describe_through_a_chat_completion(client):
    """Midjourney's /describe as OpenAI's clients ask a vision model: a user message with the image as a data:
    URL, model kaiga-describe; each choice is a prompt that makes the image again, the canonical caption first."""
    import numpy as np

    from kaiga.data.render import render
    from kaiga.data.world import Layout, Scene, SceneObject

    image = render(Scene((SceneObject("dog", "yellow"),), Layout.SINGLE, "beach", "clear", "sunset", "plain"),
                   np.random.default_rng(1))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    message = {"role": "user", "content": [{"type": "text", "text": "Describe this image as a prompt"},
                                           {"type": "image_url", "image_url": {"url": url}}]}
    r = client.chat.completions.create(model="kaiga-describe", messages=[message], n=3)
    prompts = [c.message.content for c in r.choices]
    assert prompts[0] == "a yellow dog on the beach, at sunset" and len(set(prompts)) == 3
    assert r.model_extra["kaiga"]["prompts"][:3] == prompts and 0 < r.model_extra["kaiga"]["confidence"] <= 1
    for kwargs, param in (({"model": "gpt-4o"}, "model"), ({"stream": True}, "stream"),
                          ({"messages": [{"role": "user", "content": "no image"}]}, "messages[0].content"),
                          ({"messages": [{"role": "user", "content": [
                              {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
                           "messages[0].content[0].image_url.url")):
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(**{"model": "kaiga-describe", "messages": [message], **kwargs})
        assert e.value.body["param"] == param, e.value.body


def test_an_xyz_plot_through_extra_body(client, server):
    """kaiga's grid_x / grid_y on generations: the X/Y plot of POST /v1/grids, the labelled sheet first, then one
    image a cell with its record's place; a bad axis is a 400 naming it."""
    r = client.images.generate(prompt="a red car", size="64x64", response_format="b64_json",
                               extra_body={**FAST, "seed": 2, "grid_x": "steps=1,2", "grid_y": "prompt=red,blue"})
    sheet, *cells = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in r.data]
    assert len(cells) == 4 and sheet.width > 2 * 64
    records = [read_metadata(c).record for c in cells]
    assert [(rec.steps, rec.prompt, rec.seed, rec.extra["grid"]["cell"]) for rec in records] == [
        (1, "a red car", 2, [0, 0]), (2, "a red car", 2, [1, 0]), (1, "a blue car", 2, [0, 1]),
        (2, "a blue car", 2, [1, 1])]
    assert read_metadata(sheet).record.extra["grid"] == {"x": "steps=1,2", "y": "prompt=red,blue"}
    urls = client.images.generate(prompt="a red car", size="64x64", extra_body={**FAST, "grid_x": "seed=1,2"})
    assert len(urls.data) == 3 and all(d.url.endswith(".png") for d in urls.data)
    for extra, param in (({"grid_x": "colour=red"}, "grid_x"), ({"grid_x": "steps=1", "grid_z": "seed=1,2"}, "grid_z"),
                         ({"grid_y": "seed=1,2"}, "grid_x"), ({"grid_x": "steps=1,2", "n": 2}, "n")):
        with pytest.raises(openai.BadRequestError) as e:
            client.images.generate(prompt="a red car", extra_body={**FAST, **extra})
        assert e.value.body["param"] == param, e.value.body
