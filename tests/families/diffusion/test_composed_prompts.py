"""Composed prompts in the diffusion family: AND / :: sum the sub-prompts' guidance, [from:to:when] switches the
text at its step; the degenerate cases are exactly the plain prompt's images, so the rule is checked, not just run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.request import GenerationRequest


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LatentDiffusion.create(tiny_config())


def _pixels(model, prompt, **kw):
    request = GenerationRequest(prompt=prompt, steps=4, guidance=3.0, **kw)
    return np.stack([np.asarray(im, np.float32) for im in model.sample(request, seeds=[3, 4])])


def _edit_pixels(model, prompt):
    from PIL import Image

    request = GenerationRequest(prompt=prompt, steps=4, guidance=3.0, strength=0.5, init_image="0" * 64)
    return np.asarray(model.edit(request, Image.new("RGB", (64, 64), "blue"), seeds=[3])[0], np.float32)


def test_an_edit_that_never_or_always_switches_is_the_plain_prompt(model):
    red, blue = _pixels(model, "a red car"), _pixels(model, "a blue car")
    assert np.abs(_pixels(model, "a [red:blue:0] car") - blue).max() <= 1  # switched before the first step
    assert np.abs(_pixels(model, "a [red:blue:99] car") - red).max() <= 1  # never switched
    halfway = _pixels(model, "a [red:blue:0.5] car")
    assert np.abs(halfway - red).max() > 1 and np.abs(halfway - blue).max() > 1


def test_an_and_part_of_weight_zero_changes_nothing_and_of_weight_one_does(model):
    plain = _pixels(model, "a red car")
    assert np.abs(_pixels(model, "a red car AND a blue boat :0") - plain).max() <= 1
    assert np.abs(_pixels(model, "a red car AND a blue boat") - plain).max() > 1
    # :: weights are relative: 1:1 is 2:2, and both are half of each part's guidance
    assert np.abs(_pixels(model, "a red car::1 a blue boat::1") - _pixels(model, "a red car::2 a blue boat::2")).max() <= 1


def test_edits_run_the_schedule_from_the_step_they_start_at(model):
    # strength 0.5 of 4 steps runs steps 3 and 4; a switch at step 2 is over before the edit starts
    assert np.abs(_edit_pixels(model, "a [red:blue:2] car") - _edit_pixels(model, "a blue car")).max() <= 1
    assert np.abs(_edit_pixels(model, "a [red:blue:3] car") - _edit_pixels(model, "a blue car")).max() > 1
