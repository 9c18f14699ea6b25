"""The styles library: presets, the user's files in kaiga's, A1111's and Fooocus's formats, and names."""

from __future__ import annotations

import json

import pytest

from kaiga.styles.library import (
    FORMAT,
    Style,
    StyleError,
    bundled_styles,
    find_style,
    import_styles,
    load_library,
    read_styles_file,
)


def test_the_presets_are_ours_and_cover_the_scenes_styles_and_more():
    presets = bundled_styles()
    assert len(presets) >= 30
    assert {"plain", "watercolor", "pixel-art", "sketch", "neon", "vintage"} <= set(presets)
    assert {s.group for s in presets.values()} >= {"scenes", "mood", "lighting", "palette", "era", "medium"}
    for s in presets.values():
        assert "{prompt}" in s.prompt and s.description, s.name


@pytest.mark.parametrize("template, prompt, want", [
    ("watercolor painting of {prompt}", "a red car", "watercolor painting of a red car"),
    ("{prompt}, 8-bit pixel art", "", "8-bit pixel art"),  # an empty prompt leaves no dangling comma
    ("masterpiece, best quality", "a dog", "a dog, masterpiece, best quality"),  # A1111: no {prompt}, appended
])
def test_a_template_applies_as_a1111_applies_it(template, prompt, want):
    assert Style("s", template).apply(prompt)[0] == want


def test_the_negative_prompt_joins_the_users(tmp_path):
    assert Style("s", "{prompt}", negative="neon").apply("a car", "fog") == ("a car", "fog, neon")
    assert Style("s", "{prompt}", negative="").apply("a car", "fog") == ("a car", "fog")


def test_a1111_csv_fooocus_json_and_kaiga_json_are_read(tmp_path):
    (tmp_path / "styles.csv").write_text('name,prompt,negative_prompt\nCine,"cinematic still of {prompt}",cartoon\n'
                                         'Tags,"masterpiece, best quality",\n,"no name is skipped",\n')
    (tmp_path / "fooocus.json").write_text(json.dumps([{"name": "Paper", "prompt": "{prompt}, papercraft",
                                                        "negative_prompt": "photo"}]))
    (tmp_path / "mine.json").write_text(json.dumps({"format": FORMAT, "styles": [
        {"name": "watercolor", "prompt": "my own watercolor {prompt}", "negative": ""}]}))
    library = load_library(tmp_path)
    assert library["Cine"].prompt == "cinematic still of {prompt}" and library["Cine"].negative == "cartoon"
    assert library["Tags"].apply("a dog")[0] == "a dog, masterpiece, best quality"
    assert library["Paper"].negative == "photo"
    assert library["watercolor"].prompt == "my own watercolor {prompt}"  # a user style replaces the preset
    assert library["watercolor"].source.endswith("mine.json") and library["neon"].source == "kaiga"


@pytest.mark.parametrize("content, says", [
    ("{bad", "not valid JSON"),
    ('{"styles": []}', "not a styles file"),
    ('[{"prompt": "x"}]', 'style 1 needs a "name"'),
    ('[{"name": "a,b", "prompt": "x"}]', "may not hold"),
    ('[{"name": "a", "prompt": 3}]', '"prompt" must be text'),
])
def test_a_bad_file_is_named_with_what_is_wrong(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(StyleError, match=says) as e:
        read_styles_file(path)
    assert str(path) in str(e.value)


def test_import_converts_to_kaigas_format(tmp_path):
    src = tmp_path / "styles.csv"
    src.write_text("name,prompt,negative_prompt\nCine,cinematic {prompt},cartoon\n")
    dest, count = import_styles(src, tmp_path / "home")
    assert count == 1 and json.loads(dest.read_text())["format"] == FORMAT
    assert load_library(tmp_path / "home")["Cine"].negative == "cartoon"


def test_names_are_case_insensitive_and_a_typo_gets_suggestions():
    library = bundled_styles()
    assert find_style("WaterColor", library).name == "watercolor"
    with pytest.raises(StyleError, match=r"did you mean watercolor\?"):
        find_style("watercolour", library)
