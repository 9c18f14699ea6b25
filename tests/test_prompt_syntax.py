"""The one prompt syntax (kaiga/prompt_syntax.py): permutations, wildcards, AND / ::, prompt editing, and a
malformed prompt as one line pointing at the character, through the request every interface builds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kaiga.prompt_syntax import (count_permutations, fill_wildcards, is_composed, main_text, parts, permutations,
                                 schedule, vector_terms)
from kaiga.request import GenerationRequest, describe_error


def test_permutations_make_every_combination_and_count_them_first():
    prompt = "a {red|blue|green} car in {snow|rain}"
    assert count_permutations(prompt) == 6
    assert permutations(prompt)[:3] == ["a red car in snow", "a red car in rain", "a blue car in snow"]
    assert len(set(permutations(prompt))) == 6
    assert permutations("a car in the {prompt}") == ["a car in the {prompt}"]  # no `|`: text
    assert count_permutations(r"a \{red|blue} car") == 1


def test_wildcards_draw_from_the_seed_and_nest():
    lists = {"colour": ["red", "blue", "green", "pink"], "thing": ["__colour__ car", "__colour__ boat"]}
    draws = {fill_wildcards("a __thing__ and a __colour__ bird", lists, seed) for seed in range(40)}
    assert len(draws) > 8  # the seed chooses
    assert fill_wildcards("a __thing__", lists, 7) == fill_wildcards("a __thing__", lists, 7)
    assert all("__" not in d for d in draws)


def test_and_weights_are_as_written_and_colon_weights_are_relative():
    assert [(p.text, p.weight) for p in parts("a red car AND snow :0.5 AND fog")] == [
        ("a red car", 1.0), ("snow", 0.5), ("fog", 1.0)]
    assert [(p.text, p.weight) for p in parts("red car::2 snow::2")] == [("red car", 0.5), ("snow", 0.5)]
    assert [(p.text, p.weight) for p in parts("still life:: fruit::-0.5")] == [("still life", 2.0), ("fruit", -1.0)]
    assert [(p.text, p.weight) for p in parts("a (red:1.3) car")] == [("a (red:1.3) car", 1.0)]  # weights stay
    assert [p.text for p in parts("a BAND AND android")] == ["a BAND", "android"]  # AND is a word of its own


def test_prompt_editing_switches_at_a_fraction_or_a_step_and_alternates():
    assert schedule("a [dog:cat:0.25] in the snow", 20) == [(5, "a dog in the snow"), (20, "a cat in the snow")]
    assert schedule("a [dog:cat:3] x", 10) == [(3, "a dog x"), (10, "a cat x")]
    assert schedule("car [in fog:0.5]", 4) == [(2, "car "), (4, "car in fog")]  # added from then on
    assert schedule("car [in fog::0.5]", 4) == [(2, "car in fog"), (4, "car ")]  # removed
    assert [t for _, t in schedule("[red|blue] car", 4)] == ["red car", "blue car", "red car", "blue car"]
    assert schedule("a [[red:blue:0.5] car:boat:0.75]", 4) == [(2, "a red car"), (3, "a blue car"), (4, "a boat")]
    assert schedule("a [foggy] (red:1.2) car", 4) == [(4, "a [foggy] (red:1.2) car")]  # weighting untouched
    assert not is_composed("a [foggy] car, (red:1.3)") and is_composed("a [foggy:0.5] car")


def test_models_without_steps_read_edits_as_shares_and_parts_as_a_mean():
    assert vector_terms("a [dog:cat:0.25]") == [("a dog", 0.25), ("a cat", 0.75)]
    assert vector_terms("a car AND a boat") == [("a car", 0.5), ("a boat", 0.5)]
    assert vector_terms("a car AND a boat :0") == [("a car", 1.0), ("a boat", 0.0)]
    assert main_text("a car::1 a [dog:cat:0.25] boat::3") == "a cat boat"


@pytest.mark.parametrize("prompt, says", [
    ("a {red|blue car", "prompt: at character 3: `{` is never closed"),
    ("a {red|{blue|green}} car", "at character 8: permutations do not nest"),
    ("a [dog:cat:soon] car", "at character 12: the `when` of [from:to:when] must be a number"),
    ("a [dog:cat:-1] car", "at character 12: the `when` of [from:to:when] must be 0 or more"),
    ("a [dog:cat:mouse:2] car", "at character 18: prompt editing is [from:to:when]"),
    ("a [dog||cat] car", "at character 8: an alternation"),
    ("a red car AND", "at character 14: AND needs a prompt on each side"),
    ("AND a red car", "at character 1: AND needs a prompt"),
    ("::2 car", "at character 1: `::` needs words before it"),
    ("car::-2 boat::1", "at character 4: the `::` weights sum to -1"),
    ("car::2 AND boat", "use AND (A1111) or :: (Midjourney)"),
])
def test_a_malformed_prompt_is_one_line_naming_the_character(prompt, says):
    with pytest.raises(ValidationError) as e:
        GenerationRequest(prompt=prompt)
    message = describe_error(e.value)
    assert len(message.splitlines()) == 1
    assert says in message, message


def test_the_negative_prompt_takes_words_weights_and_wildcards_only():
    GenerationRequest(prompt="a car", negative_prompt="(fog:1.2), __weather__")
    with pytest.raises(ValidationError, match="negative_prompt: AND, ::, {a|b} and \\[from:to:when\\]"):
        GenerationRequest(prompt="a car", negative_prompt="fog AND rain")
