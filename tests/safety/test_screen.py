"""Flagging: a flagged image is blurred (its content gone, its colours kept: never black) and its record
noted; the Studio screens what it makes; the filter off is said in every record; bad settings name the variable."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from kaiga.data.dataset import scene_example
from kaiga.metadata import GenerationRecord
from kaiga.safety import Check, SafetySettings, SafetySettingsError, blur, screen
from kaiga.studio import Studio


def _detail(image: Image.Image) -> float:
    """Edge energy: the variance of the Laplacian of the grey image."""
    return float(np.asarray(image.convert("L").filter(ImageFilter.FIND_EDGES), dtype=np.float32)[2:-2, 2:-2].var())


def test_blur_hides_the_content_but_is_never_black():
    for i in range(8):
        image = scene_example(i, seed=2)[0]
        out = blur(image)
        a, b = np.asarray(image, dtype=np.float32), np.asarray(out, dtype=np.float32)
        assert out.size == image.size and out.mode == image.mode
        assert _detail(out) < 0.02 * _detail(image)  # the edges are gone
        assert np.abs(a.mean(axis=(0, 1)) - b.mean(axis=(0, 1))).max() < 8  # the colours are kept
        assert b.mean() > 10 and b.std() > 0  # not black, not one flat fill either


def test_a_flagged_prompt_blurs_and_notes_every_image_of_the_request():
    images = [scene_example(i, seed=4)[0] for i in range(2)]
    records = [GenerationRecord(prompt="a NSFW car", seed=i, sampler="", steps=0, width=64, height=64, model="m",
                                model_hash="0123456789", extra={"truncation": 0.7}) for i in range(2)]
    out = screen(images, records, "a NSFW car", SafetySettings())
    for (image, record, verdict), original in zip(out, images):
        assert verdict.flagged and verdict.check is Check.PROMPT and verdict.terms == ("nsfw",)
        assert record.extra["truncation"] == 0.7  # the rest of the record is kept
        note = record.extra["safety"]
        assert (note["check"], note["terms"], note["action"], note["review"]) == ("prompt", ["nsfw"], "blurred", "held")
        assert 0 <= note["score"] < note["threshold"] == 0.8  # the image itself passed; the prompt flagged it
        assert _detail(image) < 0.02 * _detail(original)


def test_the_filter_off_is_recorded(monkeypatch):
    monkeypatch.setenv("KAIGA_SAFETY", "off")
    image = scene_example(0, seed=4)[0]
    rec = GenerationRecord(prompt="nude", seed=0, sampler="", steps=0, width=64, height=64, model="m",
                           model_hash="0123456789")
    [(same, record, verdict)] = screen([image], [rec], "nude")
    assert same is image and not verdict.flagged and record.extra["safety"] == {"filter": "off"}


@pytest.mark.parametrize("env, message", [
    ({"KAIGA_SAFETY": "maybe"}, "KAIGA_SAFETY: must be on or off (got 'maybe')"),
    ({"KAIGA_SAFETY_THRESHOLD": "0"}, "KAIGA_SAFETY_THRESHOLD: must be a number above 0 and at most 1 (got 0.0)"),
    ({"KAIGA_SAFETY_THRESHOLD": "nan"}, "KAIGA_SAFETY_THRESHOLD: must be a number above 0 and at most 1 (got nan)"),
])
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(SafetySettingsError) as e:
        SafetySettings.from_env(env)
    assert str(e.value) == message


@pytest.mark.slow  # loads a model (~15 s on a busy 2-core machine)
def test_the_studio_screens_what_it_makes(tiny_model_dir, monkeypatch):
    studio = Studio()
    [clean] = studio.generate("a red car", seed=3, steps=1, model=str(tiny_model_dir))
    [flagged] = studio.generate("a red car, naked", seed=3, steps=1, model=str(tiny_model_dir))
    assert "safety" not in clean.record.extra and flagged.record.extra["safety"]["terms"] == ["naked"]
    assert _detail(flagged.image) < 0.1 * _detail(clean.image)
    monkeypatch.setenv("KAIGA_SAFETY_THRESHOLD", "2")
    with pytest.raises(SafetySettingsError, match="KAIGA_SAFETY_THRESHOLD"):
        Studio()


def test_explain_frames_are_screened_too(tiny_model_dir):
    """`kaiga explain`'s frames go through the same filter: a blocklisted prompt blurs every frame (never black) and
    the captions say so; a clean prompt leaves them as the model drew them."""
    studio = Studio(device="cpu")
    clean = studio.explain("a red car in the city", model=str(tiny_model_dir), seed=2)
    flagged = studio.explain("a naked red car in the city", model=str(tiny_model_dir), seed=2)
    assert not any("blurred" in c for c in clean.captions)
    assert all(c.endswith("(blurred: safety filter)") for c in flagged.captions)
    assert all(_detail(f) < 0.5 * _detail(c) for f, c in zip(flagged.frames, clean.frames))
    assert all(np.asarray(f).mean() > 5 for f in flagged.frames)  # softened, not replaced by black
