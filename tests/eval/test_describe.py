"""`kaiga describe` and `--sref`: the scenes judge's reading of an image as prompts and as a style, and a
describe → generate round trip through the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from kaiga.data.render import render
from kaiga.data.world import Layout, Scene, SceneObject
from kaiga.eval.describe import LOW_CONFIDENCE, describe, scene_of, sref_style
from kaiga.eval.readout import Reading
from kaiga.metadata import read_metadata


def _render(*objects, layout=Layout.SINGLE, relation=None, style="plain"):
    scene = Scene(tuple(SceneObject(n, c) for n, c in objects), layout, "forest", "snow", "night", style, relation)
    return scene, render(scene, np.random.default_rng(2))


def test_a_reading_becomes_the_scene_it_describes():
    for scene, _ in [_render(("dog", "yellow")), _render(("car", "red"), ("tree", "green"), layout=Layout.PAIR,
                                                          relation="left of"),
                     _render(("bird", "blue"), ("bird", "blue"), layout=Layout.COUNT)]:
        assert Reading.of_scene(scene_of(Reading.of_scene(scene))) == Reading.of_scene(scene)


def test_describe_reads_renders_surely_and_noise_doubtfully():
    _, image = _render(("cat", "white"), style="watercolor")
    d = describe(image.resize((256, 256)), n=3)  # an enlarged PNG is read at 64²
    assert len(set(d.prompts)) == 3 and "white cat" in d.prompts[0] and d.confidence >= LOW_CONFIDENCE
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    assert describe(noise).to_json()["low_confidence"]
    assert sref_style(image) == ("watercolor", {"read": "watercolor", "confidence": sref_style(image)[1]["confidence"]})


def test_describe_then_generate_from_the_command_line(tmp_path):
    _, image = _render(("car", "red"), style="neon")
    image.save(tmp_path / "ref.png")
    run = lambda *a: subprocess.run([sys.executable, "-m", "kaiga.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=300)
    r = run("describe", str(tmp_path / "ref.png"), "--json")
    assert r.returncode == 0, r.stderr
    described = json.loads(r.stdout)
    assert described["reading"]["style"] == "neon" and len(described["prompts"]) == 4
    r = run("generate", "a blue boat", "--sref", str(tmp_path / "ref.png"), "--steps", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    record = read_metadata(r.stdout.split()[0]).record
    assert record.extra["style"]["mix"] == "neon:1" and record.extra["sref"]["read"] == "neon"
    r = run("generate", "a blue boat", "--sref", str(tmp_path / "ref.png"), "--style", "sketch")
    assert r.returncode == 2 and "give --style or --sref, not both" in r.stderr


def test_a_pair_read_without_the_second_colour_is_described_as_its_first_object():
    """The web UI's describe button once failed (KeyError 'none') on an image whose second object the readout
    saw but gave no colour."""
    from kaiga.data.captions import canonical_caption

    reading = Reading(layout="pair", count=1, axis="horizontal", object_a="car", colour_a="red", object_b="tree",
                      colour_b="none", scene="city", weather="clear", time="day", style="plain")
    scene = scene_of(reading)
    assert scene.layout is Layout.SINGLE and canonical_caption(scene).startswith("a red car")
