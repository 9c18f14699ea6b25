import pytest
from pydantic import ValidationError

from kaiga.request import GenerationRequest, describe_error


@pytest.mark.parametrize("fields, message", [
    ({"prompt": ""}, "prompt: must not be empty"),
    ({"prompt": "   "}, "prompt: must contain some text"),
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
    assert (r.steps, r.guidance, r.sampler.value, r.width) == (20, 3.0, "ddim", None)
    assert r.seeds(4294967295) == [4294967295, 0, 1]


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
    ]:
        with pytest.raises(ValidationError) as e:
            GenerationRequest(**fields)
        assert describe_error(e.value).startswith(message)
