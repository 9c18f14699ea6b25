"""The invisible watermark (issue 20, item 1): its error correction, its payload, and that the Studio marks every
family's images at native size and keeps the mark through upscaling, JPEG, resizing and crops.

The measured figures (bit accuracy per attack, detection, false positives) are bench/watermark.py's."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PIL import Image

from kaiga.data.dataset import scene_example
from kaiga.metadata import GenerationRecord
from kaiga.provenance.attacks import ATTACKS
from kaiga.provenance.bch import BCH
from kaiga.provenance.watermark import codeword, detect, embed, p_value, payload_of

RECORD = GenerationRecord(prompt="a red car", seed=7, sampler="ddim", steps=2, guidance=3.0, width=64, height=64,
                          model="scenes-diffusion", model_hash="0123456789")


def test_bch_corrects_up_to_t_errors_and_refuses_more():
    code, rng = BCH(m=6, t=5), random.Random(0)
    assert (code.n, code.k) == (63, 36)
    for errors in range(6):
        data = [rng.randint(0, 1) for _ in range(code.k)]
        word = code.encode(data)
        for i in rng.sample(range(code.n), errors):
            word[i] ^= 1
        assert code.decode(word) == (data, errors)
    refused = 0
    for _ in range(50):  # 9 errors: mostly detected as too many, never silently "fixed" into the sent data
        data = [rng.randint(0, 1) for _ in range(code.k)]
        word = code.encode(data)
        for i in rng.sample(range(code.n), 9):
            word[i] ^= 1
        fixed, _ = code.decode(word)
        assert fixed != data
        refused += fixed is None
    assert refused > 35


def test_the_payload_names_the_pixels_not_the_moment():
    later = RECORD.model_copy(update={"created": "2030-01-01T00:00:00+00:00", "timings": {"ms_per_image": 1.0}})
    assert payload_of(later) == payload_of(RECORD)
    assert payload_of(RECORD.model_copy(update={"seed": 8})) != payload_of(RECORD)
    marked = RECORD.model_copy(update={"extra": {"watermark": f"{payload_of(RECORD):08x}"}})
    assert payload_of(marked) == payload_of(RECORD)  # saying the payload does not change it


def test_a_constant_reading_is_no_codeword():
    assert not np.array_equal(codeword(0), np.zeros(63)) and p_value(0) < 1e-9 and p_value(5) > 1e-3


@pytest.mark.parametrize("attack", ["clean", "resize0.5", "noise0.02", "crop10"])
def test_a_render_keeps_its_payload_through(attack):
    image = scene_example(3, 99)[0]
    marked = embed(image, 0x1234ABCD)
    psnr = -10 * np.log10(((np.asarray(marked, float) - np.asarray(image, float)) ** 2).mean() / 255**2)
    assert psnr >= 38.0
    found = detect(ATTACKS[attack](marked, 1), expected=0x1234ABCD)
    assert found.marked and found.payload == 0x1234ABCD, found
    assert found.expected_agreement >= 58


def test_unmarked_images_are_not_marked():
    images = [scene_example(i, 4242)[0] for i in range(6)] + [Image.new("RGB", (64, 64), c) for c in ("white", "black")]
    assert not any(detect(im, search=False).marked for im in images)


def test_the_studio_marks_every_family_and_the_mark_survives_upscaling():
    from kaiga.studio import Studio

    studio = Studio()
    for model in ("scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer"):
        [image] = studio.generate("a red car on a snowy road", seed=1, steps=2, model=model, upscale=2)
        payload = image.record.extra["watermark"]
        assert payload == f"{payload_of(image.record):08x}"
        assert image.image.size == (128, 128)
        found = detect(image.image)
        assert found.marked and found.payload_hex == payload, (model, found)
    [plain] = Studio(watermark=False).generate("a red car on a snowy road", seed=1, steps=2, model="scenes-gan")
    assert "watermark" not in plain.record.extra and not detect(plain.image, search=False).marked
