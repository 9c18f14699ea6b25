"""The Studio expands a prompt's {a|b} groups and __wildcards__ before any work: one image per combination and
seed, wildcards drawn from each image's seed, the limits and missing lists said before a model loads."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kaiga import Studio
from kaiga.request import RequestError


@pytest.fixture(scope="module")
def studio():
    return Studio(watermark=False)


def test_permutations_make_one_image_per_combination_with_the_same_seeds(studio, tiny_model_dir):
    done = []
    images = studio.generate("a {red|blue} car in {snow|rain}", seed=5, n=2, steps=2, model=str(tiny_model_dir),
                             on_step=lambda d, t: done.append((d, t)))
    assert [(i.record.prompt, i.record.seed) for i in images] == [
        ("a red car in snow", 5), ("a red car in snow", 6), ("a red car in rain", 5), ("a red car in rain", 6),
        ("a blue car in snow", 5), ("a blue car in snow", 6), ("a blue car in rain", 5), ("a blue car in rain", 6)]
    assert images[0].record.extra["prompt_template"]["prompt"] == "a {red|blue} car in {snow|rain}"
    assert done[-1] == (16, 16)  # one progress bar over every combination: 8 images × 2 steps
    [again] = studio.generate("a blue car in rain", seed=6, steps=2, model=str(tiny_model_dir))
    # the record remakes the image: alone, or batched with the other seven (within 1 grey level, as the golden
    # pixels: a batch of 8 and a batch of 1 take different kernels on some CPUs)
    assert np.abs(np.asarray(again.image, int) - np.asarray(images[-1].image, int)).max() <= 1


def test_wildcards_come_from_the_users_lists_and_the_seed(studio, tiny_model_dir):
    home = Path(os.environ["KAIGA_HOME"])
    (home / "wildcards" / "animals").mkdir(parents=True)
    (home / "wildcards" / "animals" / "pets.txt").write_text("# pets\ndog\n\ncat\n")
    images = studio.generate("a __colour__ __animals/pets__", seed=0, n=8, steps=1, model=str(tiny_model_dir))
    prompts = [i.record.prompt for i in images]
    assert len(set(prompts)) > 2 and all("__" not in p for p in prompts)
    assert {p.split()[-1] for p in prompts} <= {"dog", "cat"}
    again = studio.generate("a __colour__ __animals/pets__", seed=3, n=1, steps=1, model=str(tiny_model_dir))
    assert again[0].record.prompt == prompts[3]  # seed 3 draws the same lines, whatever n
    assert images[0].record.extra["prompt_template"]["prompt"] == "a __colour__ __animals/pets__"


def test_a_missing_wildcard_and_too_many_images_are_said_before_any_work(studio):
    with pytest.raises(RequestError, match=r"prompt: at character 3: no wildcard list __color__ \(did you mean "
                                           r"__colour__\?\)"):
        studio.generate("a __color__ car", steps=1, model="/nonexistent/never-loaded")
    with pytest.raises(RequestError, match=r"make 27 prompts × n 3 = 81 images; at most 64"):
        studio.generate("{a|b|c} {d|e|f} {g|h|i}", n=3, model="/nonexistent/never-loaded")
