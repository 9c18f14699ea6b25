"""Style mixes: parsed with positions, shares, mixed in the text encoder's space, and what stylize does."""

from __future__ import annotations

import pytest
import torch

from kaiga.request import GenerationRequest, RequestError
from kaiga.styles.library import StyleError, bundled_styles
from kaiga.styles.mix import guidance_factor, is_plain, mixed, resolve, styled_prompts, stylize_strength


@pytest.mark.parametrize("spec, says", [
    ("watercolor:x", "at character 12"),
    ("watercolor,,neon", "at character 12 of 'watercolor,,neon': a style name is missing"),
    ("neon:11", "from 0 to 10"),
    ("neon, NEON", "names a style twice"),
])
def test_a_malformed_mix_is_one_line_pointing_at_the_position(spec, says):
    with pytest.raises(ValueError, match=says):
        GenerationRequest(prompt="a car", style=spec)


def test_shares_are_kept_under_one_and_scaled_to_one_above():
    assert [w for _, w in resolve("watercolor:0.5").parts] == [0.5]
    assert [round(w, 3) for _, w in resolve("watercolor:3,neon:1").parts] == [0.75, 0.25]
    assert [w for _, w in resolve("watercolor,neon").parts] == [0.5, 0.5]
    assert resolve("watercolor:0.7,neon:0.3").describe() == "watercolor:0.7,neon:0.3"
    assert resolve("") is None
    with pytest.raises(StyleError, match="no style named"):
        resolve("nope")


def _encode(texts):
    """A stand-in encoder that can be checked by hand: each text's vector counts a few words."""
    words = ["watercolor", "neon", "car"]
    return torch.tensor([[float(t.count(w)) for w in words] for t in texts])


def test_the_mix_is_a_weighted_average_of_encodings_not_a_joined_string():
    mix = resolve("watercolor:0.7,neon:0.3")
    cond, uncond = mixed(_encode, ["a car"], "", mix, None)
    plain, wc, ne = _encode(["a car"]), _encode([mix.parts[0][0].apply("a car")[0]]), _encode([mix.parts[1][0].apply("a car")[0]])
    torch.testing.assert_close(cond, plain + 0.7 * (wc - plain) + 0.3 * (ne - plain))
    assert uncond.shape == (1, 3)


def test_stylize_moves_along_the_same_line():
    mix = resolve("neon")
    at = {s: mixed(_encode, ["a car"], "", mix, s)[0] for s in (0, 100, 400)}
    plain = _encode(["a car"])
    torch.testing.assert_close(at[0], plain)  # 0: the plain prompt
    torch.testing.assert_close(at[400] - plain, 2 * (at[100] - plain))  # 400: twice as far
    assert (stylize_strength(0), stylize_strength(100), stylize_strength(400)) == (0.0, 1.0, 2.0)
    assert (guidance_factor(0), guidance_factor(100)) == (0.5, 1.0) and guidance_factor(1000) > 2


def test_an_unstyled_request_is_plain():
    assert is_plain("", None) and is_plain("", 100) and not is_plain("neon", None) and not is_plain("", 50)


def test_a_model_of_prompt_tokens_takes_the_heaviest_style_as_text():
    request = GenerationRequest(prompt="a car", style="watercolor:0.2,neon:0.8")
    assert styled_prompts(["a car"], request) == [bundled_styles()["neon"].apply("a car")[0]]


def test_an_unknown_style_is_refused_before_any_work():
    from kaiga.styles.mix import check_style

    with pytest.raises(RequestError, match="no style named 'nope'"):
        check_style(GenerationRequest(prompt="a car", style="nope"))


@pytest.mark.parametrize("model", ["scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer"])
def test_every_family_draws_a_style_and_records_it(model):
    """The judge reads the neon style in the styled image of each bundled model, and the record keeps the mix
    with its templates; the default stylize changes nothing."""
    from kaiga.eval.readout import ReadoutNet, read
    from kaiga.studio import Studio

    studio = Studio(watermark=False)
    ask = dict(seed=3, model=model, steps=6)
    plain = studio.generate("a red car in the city", **ask)[0]
    same = studio.generate("a red car in the city", stylize=100, **ask)[0]
    neon = studio.generate("a red car in the city", style="neon", **ask)[0]
    assert plain.image.tobytes() == same.image.tobytes()
    assert read(ReadoutNet.load(), [neon.image])[0].style == "neon"
    assert neon.record.extra["style"] == {"mix": "neon:1", "templates": {"neon": {
        "prompt": "{prompt}, synthwave neon glow", "negative": "watercolor, sepia"}}}
