import logging

import pytest
from pydantic import ValidationError

from kaiga import GenerationRequest, Studio
from kaiga.metadata import to_a1111_parameters
from kaiga.request import RequestError


@pytest.fixture(scope="module")
def studio():
    return Studio()


def test_generate_returns_images_with_full_records(studio, tiny_model_dir):
    images = studio.generate("a red car", seed=41, n=2, steps=2, model=str(tiny_model_dir), negative_prompt="fog")
    assert [i.record.seed for i in images] == [41, 42]
    rec = images[0].record
    assert (rec.prompt, rec.negative_prompt, rec.steps, rec.sampler, rec.width, rec.height) == (
        "a red car", "fog", 2, "ddim", 64, 64)
    assert rec.model == "tiny-diffusion" and len(rec.model_hash) == 10 and rec.timings["ms_per_image"] > 0


def test_a_request_object_and_field_overrides(studio, tiny_model_dir):
    req = GenerationRequest(prompt="a blue boat", seed=5, steps=2, model=str(tiny_model_dir))
    [a] = studio.generate(req)
    [b] = studio.generate(req, seed=6)
    assert (a.record.seed, b.record.seed) == (5, 6)
    with pytest.raises(ValidationError, match=r"steps\n  Input should be greater than or equal to 1 "):
        studio.generate(req, steps=0)  # overrides are validated like everything else


def test_no_seed_draws_one_and_records_it(studio, tiny_model_dir):
    [img] = studio.generate("a cat", steps=1, model=str(tiny_model_dir))
    [again] = studio.generate("a cat", steps=1, seed=img.record.seed, model=str(tiny_model_dir))
    assert list(img.image.getdata()) == list(again.image.getdata())


def test_unknown_words_are_warned_and_recorded(studio, tiny_model_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="kaiga"):
        [img] = studio.generate("a red zebra", steps=1, seed=0, model=str(tiny_model_dir))
    assert "zebra" in caplog.text and img.record.extra["unknown_words"] == ["zebra"]


def test_model_limits_are_errors(studio, tiny_model_dir):
    with pytest.raises(RequestError, match="width"):
        studio.generate("a car", width=1024, steps=1, model=str(tiny_model_dir))


def test_saved_png_round_trips_the_record(studio, tiny_model_dir, tmp_path):
    from kaiga.metadata import read_metadata

    [img] = studio.generate("a car", steps=1, seed=3, model=str(tiny_model_dir))
    path = img.save(tmp_path / "x.png")
    assert read_metadata(path).record == img.record


def test_explain_through_the_studio_checks_the_prompt_and_names_the_model():
    studio = Studio(device="cpu")
    explanation = studio.explain("a red car in the city", model="scenes-gan", seed=2)
    assert explanation.model == "scenes-gan" and explanation.family == "gan"
    assert len(explanation.frames) == len(explanation.captions) >= 4
    with pytest.raises(RequestError, match="prompt: must not be empty"):
        studio.explain("")


def test_a_variation_takes_the_prompt_from_the_image_record(tmp_path):
    from kaiga.store.uploads import UploadStore
    from kaiga.studio import VARIATION_STRENGTH, variation_fields

    studio = Studio(device="cpu", uploads=UploadStore(tmp_path / "uploads"))
    [source] = studio.generate("a red car in the snow at night", seed=3, steps=4)
    source.save(tmp_path / "source.png")
    data = (tmp_path / "source.png").read_bytes()
    assert variation_fields(data)["prompt"] == "a red car in the snow at night"
    assert variation_fields(b"not an image") == {"prompt": "", "negative_prompt": "", "strength": VARIATION_STRENGTH}
    [varied] = studio.vary(data, seed=4, steps=4)
    assert varied.record.prompt == "a red car in the snow at night" and varied.record.strength == VARIATION_STRENGTH
    assert varied.record.init_image is not None and varied.image.size == source.image.size


def test_fields_a_model_does_not_read_are_warned_and_kept_out_of_the_record(studio, caplog):
    raw = Studio(watermark=False)  # the model's own pixels: the watermark's payload names the (other) record
    with caplog.at_level(logging.WARNING, logger="kaiga"):
        [gan] = raw.generate("a red car", seed=3, model="scenes-gan", steps=7, guidance=9.0, sampler="euler")
    [plain] = raw.generate("a red car", seed=3, model="scenes-gan")
    assert "a gan model does not use sampler, steps, guidance; ignored" in caplog.text
    rec = gan.record
    assert (rec.sampler, rec.steps, rec.guidance, rec.extra["ignored_fields"]) == ("", 0, None, ["sampler", "steps", "guidance"])
    assert list(gan.image.getdata()) == list(plain.image.getdata())  # it ran as without them
    assert "Steps:" not in to_a1111_parameters(rec) and "Seed: 3" in to_a1111_parameters(rec)


def test_the_models_defaults_are_recorded(studio, tiny_model_dir):
    [img] = studio.generate("a red car", seed=3, model=str(tiny_model_dir))
    assert (img.record.steps, img.record.guidance, img.record.upscale) == (20, 3.0, 1)


def test_a_size_the_model_refuses_is_said_before_it_loads(tiny_model_dir):
    studio = Studio(device="cpu")
    too_wide = studio.capabilities(str(tiny_model_dir)).max_size + 64
    with pytest.raises(RequestError, match=f"width: at most .* \\(got {too_wide}\\)"):
        studio.generate("a red car", model=str(tiny_model_dir), width=too_wide, steps=1)
    assert studio._loaded == {}  # refused from its files, no weight loaded or hashed


def test_bf16_generation_is_said_in_the_record_and_close_to_fp32(tiny_model_dir):
    """--precision bf16: autocast around the whole generation; the record says so, fp32's says nothing."""
    import numpy as np

    plain = Studio().generate("a red car", seed=3, steps=4, model=str(tiny_model_dir))[0]
    fast = Studio(precision="bf16").generate("a red car", seed=3, steps=4, model=str(tiny_model_dir))[0]
    assert fast.record.extra["precision"] == "bf16" and "precision" not in plain.record.extra
    diff = np.abs(np.asarray(fast.image, np.int16) - np.asarray(plain.image, np.int16))
    assert diff.mean() < 8, diff.mean()  # low bits, not another picture
    with pytest.raises(ValueError, match="precision: fp32 or bf16"):
        Studio(precision="fp16")


def test_the_jit_backend_makes_the_same_pixels_and_says_so(tiny_model_dir):
    """--backend jit: the UNet traced and frozen; the same image to a grey level, and the record says jit."""
    import numpy as np

    # unwatermarked: the mark carries each image's own record id
    plain = Studio(watermark=False).generate("a red car", seed=3, steps=4, model=str(tiny_model_dir))[0]
    traced = Studio(backend="jit", watermark=False).generate("a red car", seed=3, steps=4, model=str(tiny_model_dir))[0]
    assert traced.record.extra["backend"] == "jit" and "backend" not in plain.record.extra
    diff = np.abs(np.asarray(traced.image, np.int16) - np.asarray(plain.image, np.int16))
    assert diff.max() <= 1, diff.max()
    with pytest.raises(ValueError, match="backend: eager or jit"):
        Studio(backend="onnx")
