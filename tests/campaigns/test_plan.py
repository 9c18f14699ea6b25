"""Campaign plans: the cells a plan makes, and one line naming the key for every plan that cannot run."""

from __future__ import annotations

import pytest

from kaiga.campaigns.plan import MAX_CELLS, CampaignPlan, PlanError, cell_key, load_plan
from kaiga.request import GenerationRequest


def _plan(**kw) -> CampaignPlan:
    return CampaignPlan.model_validate({"prompt": "a {colour} car in the {scene}", "seeds": 2,
                                        "axes": {"colour": ["red", "blue"], "scene": ["city", "forest"]}, **kw})


def test_the_smallest_plan_makes_one_cell_per_combination_and_seed():
    cells = _plan(steps=4).cells()
    assert len(cells) == 8 and len({c.request.model_dump_json() for c in cells}) == 8
    assert [(c.request.prompt, c.request.seed) for c in cells[:3]] == [
        ("a red car in the city", 0), ("a red car in the city", 1), ("a red car in the forest", 0)]
    assert all(c.request.steps == 4 and c.request.n == 1 for c in cells)


def test_an_axis_may_be_a_request_field_or_a_wildcard_list():
    plan = CampaignPlan.model_validate({"prompt": "a {colour} car", "seeds": [5, 9],
                                        "axes": {"colour": "__colour__", "style": ["plain", "neon"]}})
    cells = plan.cells()
    colours = {c.values["colour"] for c in cells}
    assert len(colours) >= 6 and {c.request.style for c in cells} == {"plain", "neon"}
    assert {c.request.seed for c in cells} == {5, 9}


def test_the_key_is_the_pixels_fingerprint():
    a, b = GenerationRequest(prompt="a red car", seed=1), GenerationRequest(prompt="a red car", seed=2)
    assert cell_key(a, "0123456789") != cell_key(b, "0123456789") != cell_key(b, "9876543210")
    assert cell_key(a, "0123456789") == cell_key(a.model_copy(update={"n": 3}), "0123456789")


@pytest.mark.parametrize("text, start", [
    ('prompt: "a {colour} car"\naxes: {}\n', "prompt: the slot {colour} has no axis"),
    ('prompt: "a car"\naxes: {weather: [snow]}\n', "axes.weather: neither a {weather} slot"),
    ('prompt: "a {c} car"\naxes: {c: __nope__}\n', "axes.c: a list of values or a wildcard list's name"),
    ('prompt: "a {c} car"\naxes: {c: []}\n', "axes.c: at least one value"),
    ('prompt: "a {c} car"\naxes: {c: [red]}\nsteps: 500\n', "the cell c=red, seed=0: steps: must be between 1"),
    ('prompt: "a {c} car"\naxes: {c: [red]}\ncolour: red\n', "colour: not a plan key"),
    ('prompt: "a {c} car"\naxes: {c: [red]}\nseeds: [1, 1]\n', "seeds: a list of different seeds"),
    ('prompt: "a {red|blue} car"\n', "prompt: a campaign varies its prompt with axes"),
    ('prompt: "a car"\nname: "no spaces"\n', "name: Value error, letters, digits"),
    (f'prompt: "a {{c}} car"\naxes: {{c: [red, blue]}}\nseeds: {MAX_CELLS}\n', "the plan makes 20,000 cells"),
    ('prompt: "a car\naxes: [\n', "not valid YAML at line"),
    ('- a list\n', "a plan is a mapping"),
])
def test_a_plan_that_cannot_run_is_one_line_naming_the_key(tmp_path, text, start):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as e:
        load_plan(path)
    assert str(e.value).startswith(f"{path}: {start}"), str(e.value)


def test_the_name_defaults_to_the_file_name(tmp_path):
    path = tmp_path / "spring ad.yaml"
    path.write_text('prompt: "a {c} car"\naxes: {c: [red]}\n')
    assert load_plan(path).name == "spring-ad"
