"""The API bodies are derived from `GenerationRequest`: every request field is a body field under its own
name, under the API's listed name, or listed as not taken; values pass through and defaults agree."""

from __future__ import annotations

import pytest

from kaiga.request import GenerationRequest, field_specs, request_schema
from kaiga.server import a1111_api, a1111_img2img, openai_api, openai_edits
from kaiga.server.app import create_app
from kaiga.server.settings import ServerSettings

REQUEST = set(GenerationRequest.model_fields)


def _valid(name: str):
    """A valid value of a request field that is not its default: the top of its range, its last choice."""
    spec = field_specs()[name]
    if spec.choices:
        return spec.choices[-1]
    if spec.range is not None:
        return spec.type(spec.range[1])
    return {"prompt": "a red car"}.get(name, "tiny")


def test_each_api_names_every_request_field_or_says_it_does_not_take_it():
    assert REQUEST == set(openai_api.GENERATION_FIELDS) | set(openai_api.SIZE_FIELDS) | set(openai_api.EDIT_ONLY)
    assert REQUEST == set(openai_edits.EDIT_FIELDS) | set(openai_api.SIZE_FIELDS) | {"init_image", "mask", "blend"}
    assert REQUEST == set(a1111_api.TXT2IMG_FIELDS) | set(a1111_api.RENAME)
    assert set(a1111_api.RENAME) <= REQUEST


@pytest.mark.parametrize("body, fields", [
    (openai_api.ImageGenerationBody, openai_api.GENERATION_FIELDS),
    (openai_edits.EditForm, openai_edits.EDIT_FIELDS),
    (openai_edits.VariationForm, openai_edits.VARIATION_FIELDS),
    (a1111_api.Txt2ImgBody, a1111_api.TXT2IMG_FIELDS),
    (a1111_img2img.Img2ImgBody, a1111_api.TXT2IMG_FIELDS),
])
def test_the_bodies_hold_the_request_fields_with_their_help(body, fields):
    for ours, theirs in fields.items():
        assert theirs in body.model_fields, f"{body.__name__} lacks {theirs} (the request's {ours})"
        if ours not in ("prompt", "negative_prompt", "seed"):  # A1111's own defaults for those
            assert body.model_fields[theirs].description == field_specs()[ours].help


def test_openai_values_pass_through_and_defaults_agree():
    assert openai_api.to_request(openai_api.ImageGenerationBody(prompt="a red car")) == GenerationRequest(
        prompt="a red car")
    values = {name: _valid(name) for name in openai_api.GENERATION_FIELDS}
    body = {openai_api.GENERATION_FIELDS[name]: v for name, v in values.items()}  # kaiga's style is `styles` there
    request = openai_api.to_request(openai_api.ImageGenerationBody(**body, size="32x48"))
    assert {name: getattr(request, name) for name in values} == {
        **values, "sampler": GenerationRequest(prompt="x", sampler=values["sampler"]).sampler}
    assert (request.width, request.height) == (32, 48)


def test_a1111_values_pass_through_and_defaults_agree():
    assert a1111_api.to_request(a1111_api.Txt2ImgBody(prompt="a red car"), model=None) == GenerationRequest(
        prompt="a red car")
    fields = a1111_api.TXT2IMG_FIELDS
    values = {name: _valid(name) for name in fields if name not in ("width", "height")} | {"width": 64}
    body = a1111_api.Txt2ImgBody(**{fields[name]: v for name, v in values.items()}, batch_size=2, n_iter=3,
                                 sampler_name="Euler a")
    request = a1111_api.to_request(body, model="tiny")
    assert {name: getattr(request, name) for name in values} == values
    assert (request.n, request.sampler.value, request.model) == (6, "euler-a", "tiny")


def test_the_openapi_schema_shows_the_request_ranges(tmp_path):
    schema = create_app(ServerSettings(data_dir=tmp_path)).openapi()["components"]["schemas"]
    steps = schema["ImageGenerationBody"]["properties"]["steps"]
    assert (steps["minimum"], steps["maximum"], steps["description"]) == (1, 150, field_specs()["steps"].help)
    assert schema["Txt2ImgBody"]["properties"]["cfg_scale"]["maximum"] == 30
    assert schema["ImageGenerationBody"]["properties"]["sampler"]["enum"] == list(field_specs()["sampler"].choices)


def test_the_request_schema_lists_every_field(server):
    import httpx

    fields = httpx.get(server.url + "/v1/schema/request").json()["fields"]
    assert list(fields) == list(GenerationRequest.model_fields) and fields == request_schema()["fields"]
    assert fields["steps"] | {"description": ""} == {
        "type": "integer", "default": None, "required": False, "description": "", "minimum": 1, "maximum": 150,
        "choices": None, "max_length": None, "when_omitted": None}
    assert fields["sampler"]["choices"] == ["ddim", "euler", "euler-a", "dpm++2m", "lcm"]
    assert fields["prompt"]["required"] and fields["strength"]["when_omitted"] == 0.75
