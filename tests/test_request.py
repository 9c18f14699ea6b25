import pytest
from pydantic import ValidationError

from kaiga.capabilities import Capabilities, check_request, ignored_fields, with_defaults
from kaiga.request import GenerationRequest, RequestError, describe_error


@pytest.mark.parametrize("fields, message", [
    ({"prompt": "x" * 1001}, "prompt: at most 1000 characters"),
    ({"negative_prompt": "x" * 1001}, "negative_prompt: at most 1000 characters"),
    ({"steps": 0}, "steps: must be between 1 and 150 (got 0)"),
    ({"steps": 151}, "steps: must be between 1 and 150 (got 151)"),
    ({"n": 17}, "n: must be between 1 and 16 (got 17)"),
    ({"guidance": -1}, "guidance: must be between 0.0 and 30.0 (got -1)"),
    ({"width": 65}, "width: must be a multiple of 8 (got 65)"),
    ({"height": 4096}, "height: must be between 16 and 2048 (got 4096)"),
    ({"seed": -5}, "seed: must be between 0 and 4294967295 (got -5)"),
    ({"sampler": "plms"}, "sampler: must be one of 'ddim', 'euler', 'euler-a', 'dpm++2m' or 'lcm' (got 'plms')"),
    ({"colour": "red"}, "colour: unknown field"),
])
def test_bad_requests_name_the_field_and_the_range(fields, message):
    with pytest.raises(ValidationError) as e:
        GenerationRequest(**{"prompt": "a red car", **fields})
    assert describe_error(e.value).startswith(message)


def test_defaults_and_seeds():
    r = GenerationRequest(prompt="a red car", n=3)
    assert (r.steps, r.guidance, r.upscale, r.sampler.value, r.width) == (None, None, None, "ddim", None)
    assert r.seeds(4294967295) == [4294967295, 0, 1]


def test_the_models_defaults_fill_what_the_request_leaves_out():
    kaiga = Capabilities.from_info({"family": "diffusion", "samplers": ["ddim"]})
    sd = Capabilities.from_info({"family": "diffusion", "samplers": ["ddim"], "native_size": 512,
                                 "defaults": {"steps": 50, "guidance": 7.5}})
    r = GenerationRequest(prompt="a red car")
    assert (with_defaults(kaiga, r).steps, with_defaults(kaiga, r).guidance, with_defaults(kaiga, r).upscale) == (20, 3.0, 1)
    assert (with_defaults(sd, r).steps, with_defaults(sd, r).guidance) == (50, 7.5)
    given = GenerationRequest(prompt="a red car", steps=4, guidance=1.0)
    assert (with_defaults(sd, given).steps, with_defaults(sd, given).guidance) == (4, 1.0)
    # The CLI's enlargement for a screen: 64-pixel images ×4, Stable Diffusion's 512 as they are.
    assert (kaiga.view_upscale(r), sd.view_upscale(r), kaiga.view_upscale(r.model_copy(update={"width": 128}))) == (4, 1, 2)


def test_fields_a_model_does_not_read_are_named_and_dropped():
    gan = Capabilities.from_info({"family": "gan", "options": ["truncation"]})
    diffusion = Capabilities.from_info({"family": "diffusion", "samplers": ["ddim", "euler"]})
    r = GenerationRequest(prompt="a red car", steps=4, sampler="euler", negative_prompt="snow", truncation=0.5,
                          temperature=0.7)
    assert ignored_fields(gan, r) == ["sampler", "steps", "negative_prompt", "temperature"]
    assert ignored_fields(diffusion, r) == ["truncation", "temperature"]
    run = with_defaults(gan, r)
    assert (run.steps, run.sampler.value, run.negative_prompt, run.temperature, run.truncation) == (None, "ddim", "", None, 0.5)
    assert ignored_fields(gan, run) == [] and ignored_fields(gan, GenerationRequest(prompt="a car")) == []


def test_an_empty_prompt_is_an_unconditional_image_where_the_interface_allows_it():
    assert GenerationRequest(prompt="").prompt == ""  # A1111 and diffusers take it
    for prompt, message in (("", "prompt: must not be empty"), ("   ", "prompt: must contain some text")):
        with pytest.raises(RequestError, match=message):
            GenerationRequest(prompt=prompt).require_prompt()  # the CLI and the OpenAI API do not
    assert GenerationRequest(prompt="", init_image="ab" * 32).require_prompt().is_edit  # a variation needs none


def test_an_edit_with_the_models_default_steps_must_run_one():
    caps = Capabilities.from_info({"family": "diffusion", "samplers": ["ddim"], "defaults": {"steps": 4}})
    with pytest.raises(RequestError, match=r"strength: 0.1 × 4 steps runs no step"):
        check_request(caps, GenerationRequest(prompt="a car", init_image="ab" * 32, strength=0.1))


def test_edit_fields():
    sha = "ab" * 32
    edit = GenerationRequest(prompt="", init_image=sha, mask=sha)  # a variation may have no prompt
    assert (edit.is_edit, edit.denoise_strength, edit.strength) == (True, 0.75, None)
    assert GenerationRequest.model_validate(edit.model_dump(mode="json")) == edit  # stored as JSON in the queue
    for fields, message in [
        ({"prompt": "a car", "mask": sha}, "mask: only applies to an image edit"),
        ({"prompt": "a car", "strength": 0.5}, "strength: only applies to an image edit"),
        ({"prompt": "a car", "init_image": sha, "strength": 1.5}, "strength: must be between 0.0 and 1.0"),
        ({"prompt": "a car", "init_image": sha, "strength": 0.1, "steps": 5}, "strength: 0.1 × 5 steps runs no step"),
        ({"prompt": "a car", "init_image": "../etc/passwd"}, "init_image: must be the SHA-256"),
        ({"prompt": "a car", "init_image": sha, "mask": sha, "mask_blur": 65}, "mask_blur: must be between 0 and 64"),
    ]:
        with pytest.raises(ValidationError) as e:
            GenerationRequest(**fields)
        assert describe_error(e.value).startswith(message)


def test_midjourneys_no_joins_the_negative_prompt_in_every_interface():
    """`--no` is read by the request itself, so the CLI, both APIs and the UI read it the same way."""
    r = GenerationRequest(prompt="a red car in the city --no fog, rain", negative_prompt="blurry")
    assert (r.prompt, r.negative_prompt) == ("a red car in the city", "blurry, fog, rain")
    assert GenerationRequest.model_validate(r.model_dump()) == r  # read once: validating again changes nothing
    assert GenerationRequest(prompt="snow--not a flag").prompt == "snow--not a flag"
    with pytest.raises(ValidationError, match="at character 7 of 'a car --no': --no needs the words"):
        GenerationRequest(prompt="a car --no")
    with pytest.raises(ValidationError, match="--no twice"):
        GenerationRequest(prompt="a car --no fog --no rain")
