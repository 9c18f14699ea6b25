"""`chaos` in every family: none and 0 are the same pixels, more chaos moves the images apart, and an image's
chaos comes from its own seed (the same picture whatever the batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kaiga.families.diffusion.model import LatentDiffusion, tiny_config
from kaiga.families.registry import family_class
from kaiga.request import GenerationRequest


def _model(family):
    torch.manual_seed(0)
    if family == "diffusion":
        return LatentDiffusion.create(tiny_config())
    cls = family_class(family)
    return cls.create(cls.config_class.tiny()).eval()


def _pixels(model, seeds, **fields):
    request = GenerationRequest(prompt="a red car in the snow", steps=3, **fields)
    return np.stack([np.asarray(im, np.float32) for im in model.sample(request, seeds=seeds)])


@pytest.mark.parametrize("family", ["diffusion", "gan", "vae", "transformer"])
def test_chaos_zero_is_nothing_and_chaos_is_the_seeds_own(family):
    model = _model(family)
    plain = _pixels(model, [5, 6])
    assert np.array_equal(_pixels(model, [5, 6], chaos=0), plain)
    shaken = _pixels(model, [5, 6], chaos=100)
    assert np.abs(shaken - plain).mean() > 0.5
    assert np.abs(_pixels(model, [6], chaos=100)[0] - shaken[1]).max() <= 1  # seed 6 alone: the same picture


def test_chaos_in_an_edit_and_a_composed_prompt():
    from PIL import Image

    model = _model("diffusion")
    init = Image.new("RGB", (64, 64), "blue")
    edit = lambda **kw: np.asarray(model.edit(GenerationRequest(  # noqa: E731
        prompt="a red car AND snow :0.5", steps=4, strength=0.75, init_image="0" * 64, **kw), init, seeds=[3])[0],
        np.float32)
    assert np.abs(edit(chaos=100) - edit()).mean() > 0.5
    assert np.array_equal(edit(chaos=0), edit())
