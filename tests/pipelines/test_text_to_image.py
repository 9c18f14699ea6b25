import numpy as np
import pytest

from kaiga.families.diffusion.model import LatentDiffusion
from kaiga.pipelines.text_to_image import text_to_image
from kaiga.request import GenerationRequest, RequestError


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return LatentDiffusion.load(tiny_model_dir)


def _arrays(images):
    return [np.asarray(im, np.int16) for im in images]


@pytest.mark.parametrize("sampler", ["ddim", "euler", "euler-a", "dpm++2m"])
def test_a_seed_gives_the_same_image_whatever_the_batch(model, sampler):
    req = GenerationRequest(prompt="a red car", steps=3, sampler=sampler, n=3)
    alone = _arrays(text_to_image(model, req, [11], batch_size=1))
    together = _arrays(text_to_image(model, req, [10, 11, 12], batch_size=3))
    in_pairs = _arrays(text_to_image(model, req, [10, 11, 12], batch_size=2))
    # Batched matrix products may differ in the last float bits; one grey level is the tolerance.
    assert np.abs(alone[0] - together[1]).max() <= 1
    assert np.abs(in_pairs[1] - together[1]).max() <= 1
    assert np.abs(together[0] - together[1]).mean() > 1  # different seeds, different images


def test_size_and_sampler_limits_of_the_model(model):
    with pytest.raises(RequestError, match="width: must be a multiple of 16"):
        text_to_image(model, GenerationRequest(prompt="a car", width=72, steps=1), [0])
    with pytest.raises(RequestError, match="height: at most 256"):
        text_to_image(model, GenerationRequest(prompt="a car", height=512, steps=1), [0])
    with pytest.raises(RequestError, match="sampler: this model supports ddim"):
        text_to_image(model, GenerationRequest(prompt="a car", sampler="lcm", steps=1), [0])


def test_other_sizes_and_upscale(model):
    [im] = text_to_image(model, GenerationRequest(prompt="a car", width=96, height=64, steps=1, upscale=2), [0])
    assert im.size == (192, 128)


def test_many_prompts_in_one_batch_match_each_prompt_alone(model):
    """Evaluation batches different prompts together; each image must equal its own prompt's."""
    req = GenerationRequest(prompt="unused", steps=3)
    prompts = ["a red car", "a blue dog in the snow", "night, forest, a cat"]
    mixed = _arrays(text_to_image(model, req, [5, 6, 7], batch_size=3, prompts=prompts))
    for prompt, seed, image in zip(prompts, [5, 6, 7], mixed):
        [alone] = _arrays(text_to_image(model, req.model_copy(update={"prompt": prompt}), [seed]))
        assert np.abs(alone - image).max() <= 1
    with pytest.raises(ValueError, match="one prompt per seed"):
        text_to_image(model, req, [1, 2], prompts=["a red car"])
