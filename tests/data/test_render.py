import numpy as np
import pytest

from kaiga.data.captions import (NO_OMISSIONS, RELATION_WORDS, canonical_caption, random_caption,
                                 vocabulary_words)
from kaiga.data.render import render
from kaiga.data.world import (
    COLOURS, HOLD_OUT, OBJECTS, RELATIONS, SCENES, STYLES, TIMES, WEATHERS, Layout, Scene, SceneObject, sample_scene,
)


def test_world_meets_the_design_table():
    assert len(OBJECTS) >= 10 and len(COLOURS) >= 8 and len(SCENES) >= 6
    assert len(WEATHERS) == 4 and len(TIMES) == 3 and len(STYLES) >= 6 and len(RELATIONS) == 4


def test_render_is_deterministic():
    a = render(sample_scene(np.random.default_rng(5)), np.random.default_rng(5))
    b = render(sample_scene(np.random.default_rng(5)), np.random.default_rng(5))
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_sampling_covers_every_attribute_value():
    rng = np.random.default_rng(0)
    seen = {k: set() for k in ("object", "colour", "count", "relation", "scene", "weather", "time", "style")}
    for _ in range(3000):
        s = sample_scene(rng, split="any")
        for o in s.objects:
            seen["object"].add(o.name)
            seen["colour"].add(o.colour)
        seen["count"].add(len(s.objects) if s.layout is Layout.COUNT else 1)
        seen["relation"].add(s.relation)
        seen["scene"].add(s.scene)
        seen["weather"].add(s.weather)
        seen["time"].add(s.time)
        seen["style"].add(s.style)
    assert seen["object"] == set(OBJECTS) and seen["colour"] == set(COLOURS)
    assert seen["count"] == {1, 2, 3} and seen["relation"] == set(RELATIONS) | {None}
    assert seen["scene"] == set(SCENES) and seen["weather"] == set(WEATHERS)
    assert seen["time"] == set(TIMES) and seen["style"] == set(STYLES)


def test_train_split_never_contains_held_out_pairs_and_heldout_only_those():
    rng = np.random.default_rng(1)
    assert not any(HOLD_OUT.is_held_out(sample_scene(rng, "train")) for _ in range(2000))
    assert all(HOLD_OUT.is_held_out(sample_scene(rng, "heldout")) for _ in range(200))


@pytest.mark.parametrize("style", STYLES)
def test_every_style_changes_the_picture_but_keeps_the_size(style):
    base = Scene((SceneObject("car", "red"),), Layout.SINGLE, "city", "clear", "day", "plain")
    styled = Scene(base.objects, base.layout, base.scene, base.weather, base.time, style)
    a = np.asarray(render(base, np.random.default_rng(0)), np.int16)
    b = np.asarray(render(styled, np.random.default_rng(0)), np.int16)
    assert b.shape == (64, 64, 3)
    assert (style == "plain") == (np.abs(a - b).mean() == 0)


def test_colour_of_an_object_shows_in_its_pixels():
    def mean_rgb(colour):
        s = Scene((SceneObject("car", colour),), Layout.SINGLE, "city", "clear", "day", "plain")
        return np.asarray(render(s, np.random.default_rng(0)), np.float32)[30:54, 18:46].reshape(-1, 3).mean(0)

    red, blue = mean_rgb("red"), mean_rgb("blue")
    assert red[0] > blue[0] + 30 and blue[2] > red[2] + 30


def test_captions_mention_the_attributes_in_words_the_vocabulary_knows():
    rng = np.random.default_rng(2)
    vocab = vocabulary_words()
    for _ in range(300):
        s = sample_scene(rng)
        for caption in (canonical_caption(s), random_caption(s, rng)):
            words = caption.replace(",", " ").replace("-", " - ").split()
            assert set(words) <= vocab | {"-"}, caption
    s = Scene((SceneObject("car", "red"),), Layout.SINGLE, "city", "snow", "night", "watercolor")
    assert canonical_caption(s) == "a red car in the city, snowy, at night, watercolor painting"


def test_some_captions_leave_colour_context_or_relation_unsaid():
    s = Scene((SceneObject("dog", "blue"), SceneObject("cat", "red")), Layout.PAIR, "beach", "rain", "sunset",
              "neon", relation="left of")
    rng = np.random.default_rng(0)
    captions = [random_caption(s, rng) for _ in range(400)]
    relation_words = {w for opts in RELATION_WORDS.values() for p in opts for w in p.split()} - {"of", "the", "to", "on"}
    no_relation = [c for c in captions if not set(c.replace(",", " ").split()) & relation_words]
    assert 0.2 < len(no_relation) / len(captions) < 0.4  # CaptionMix.p_no_relation = 0.3
    assert any(c.startswith(("a cat", "a kitten", "a kitty")) for c in no_relation)  # either order
    assert any("blue" not in c and "azure" not in c and "navy" not in c for c in captions)
    assert any(not any(w in c for w in ("beach", "sea", "seaside")) for c in captions)
    full = [random_caption(s, rng, NO_OMISSIONS) for _ in range(100)]
    assert all(any(w in c for w in ("beach", "sea", "seaside")) for c in full)
    assert all(set(c.replace(",", " ").split()) & relation_words for c in full)


def test_captions_vary_in_words_and_order():
    s = Scene((SceneObject("dog", "blue"),), Layout.SINGLE, "beach", "rain", "sunset", "neon")
    rng = np.random.default_rng(0)
    captions = {random_caption(s, rng) for _ in range(50)}
    assert len(captions) > 20
    assert any(c.startswith(("a ", "an ", "one ")) for c in captions) and any("," in c.split(" ")[0] for c in captions)


@pytest.mark.parametrize("style", STYLES)
def test_scale_4_draws_the_same_scene_at_256(style):
    """The upscaler's targets: the same scene and draws at 256², so shrunk back it is close to the 64² render."""
    from PIL import Image

    base = sample_scene(np.random.default_rng(3))
    s = Scene(base.objects, base.layout, base.scene, base.weather, base.time, style, base.relation)
    small = np.asarray(render(s, np.random.default_rng(9)), np.float32)
    big = render(s, np.random.default_rng(9), scale=4)
    assert big.size == (256, 256)
    shrunk = np.asarray(big.resize((64, 64), Image.BOX), np.float32)
    other = np.asarray(render(s, np.random.default_rng(10)), np.float32)  # another draw of the same scene
    # the same picture, not another draw (the edge styles' outlines differ most: 26 against 35 for sketch)
    assert np.abs(shrunk - small).mean() < 0.8 * np.abs(other - small).mean(), style


def test_scale_must_be_a_whole_number():
    with pytest.raises(ValueError, match="scale"):
        render(sample_scene(np.random.default_rng(3)), np.random.default_rng(9), scale=1.5)
