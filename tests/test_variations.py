"""Vary, pan and zoom out (kaiga/variations.py): the canvas and mask of each, from an image and its record, run
by the Studio as an edit that keeps what it should pixel for pixel; and the commands."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kaiga import Studio
from kaiga.metadata import read_metadata
from kaiga.request import GenerationRequest, RequestError
from kaiga.variations import image_record, pan_plan, recorded_fields, vary_plan, zoom_plan


def _gradient(size=64) -> Image.Image:
    a = np.zeros((size, size, 3), np.uint8)
    a[..., 0] = np.arange(size)[None, :] * 4  # red grows to the right
    a[..., 1] = np.arange(size)[:, None] * 4  # green grows downwards
    return Image.fromarray(a)


RECORD = {"prompt": "a red car", "negative_prompt": "fog", "width": 64, "height": 64, "model": "scenes-diffusion",
          "sampler": "ddim", "steps": 20, "guidance": 3.0, "extra": {"style": {"mix": "neon:0.5"}, "chaos": 20}}


def test_zoom_out_shrinks_the_image_into_the_middle_and_paints_the_border():
    plan = zoom_plan(_gradient().resize((256, 256)), RECORD, 2)  # a saved PNG is enlarged: back to 64 first
    mask, init = np.asarray(plan.mask), np.asarray(plan.init)
    assert plan.init.size == (64, 64) and mask[16:48, 16:48].max() == 0 and mask[:16].min() == 255
    assert np.abs(init[16:48, 16:48].astype(int) - np.asarray(_gradient().resize((32, 32), Image.LANCZOS))).max() <= 8
    assert (init[0, 16:48] == init[16, 16:48]).all()  # the border continues the edge, no frame
    assert plan.fields == {**recorded_fields(RECORD), "strength": 1.0, "mask_blur": 2}
    assert recorded_fields(RECORD)["style"] == "neon:0.5" and recorded_fields(RECORD)["chaos"] == 20


def test_pan_moves_the_view_and_keeps_what_stays_in_it():
    plan = pan_plan(_gradient(), RECORD, "right", 0.25)
    init, mask = np.asarray(plan.init).astype(int), np.asarray(plan.mask)
    assert (init[:, :48] == np.asarray(_gradient())[:, 16:]).all()  # the content moved left by a quarter
    assert mask[:, :48].max() == 0 and mask[:, 48:].min() == 255
    up = pan_plan(_gradient(), RECORD, "up", 0.5)
    assert (np.asarray(up.init)[32:] == np.asarray(_gradient())[:32]).all() and np.asarray(up.mask)[:32].min() == 255
    with pytest.raises(RequestError, match="pan: one of left, right, up, down"):
        pan_plan(_gradient(), RECORD, "sideways")


def test_vary_subtle_and_strong_and_a_region():
    assert vary_plan(_gradient(), RECORD, "subtle").fields["strength"] == 0.35
    assert vary_plan(_gradient(), RECORD, "strong").fields["strength"] == 0.75
    region = Image.new("L", (64, 64), 0)
    region.paste(255, (0, 0, 32, 32))
    plan = vary_plan(_gradient(), RECORD, "strong", region)
    assert plan.fields["strength"] == 1.0 and plan.kind == "vary-strong-region"
    with pytest.raises(RequestError, match="the mask has no white"):
        vary_plan(_gradient(), RECORD, "strong", Image.new("L", (64, 64), 0))


def test_the_studio_keeps_the_middle_of_a_zoom_pixel_for_pixel(tiny_model_dir):
    studio = Studio(watermark=False)
    [source] = studio.generate("a red car", seed=2, steps=2, model=str(tiny_model_dir), upscale=1)
    plan = zoom_plan(source.image, source.record.model_dump(), 2)
    [out] = studio.remix(plan, seed=5, steps=2, model=str(tiny_model_dir))
    assert out.record.extra["remix"] == "zoom-2" and out.record.prompt == "a red car" and out.record.strength == 1.0
    kept = np.asarray(out.image)[24:40, 24:40].astype(int) - np.asarray(plan.init)[24:40, 24:40]
    assert np.abs(kept).max() == 0  # past the seam's blur (σ 2 px: 8 px in) the image is the init's own pixels
    assert np.abs(np.asarray(out.image)[:8].astype(int) - np.asarray(plan.init)[:8]).mean() > 1  # painted


def test_vary_and_pan_from_the_command_line(tiny_model_dir, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "kaiga.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=300)
    [made] = run("generate", "a red car in the snow", "--seed", "3", "--steps", "2", "--model", str(tiny_model_dir),
                 "--out", str(tmp_path)).stdout.split()
    r = run("vary", made, "--subtle", "--n", "2", "--seed", "9", "--steps", "4", "--model", str(tiny_model_dir),
            "--out", str(tmp_path / "v"))
    assert r.returncode == 0, r.stderr
    records = [read_metadata(p).record for p in r.stdout.split()]
    assert [rec.seed for rec in records] == [9, 10] and records[0].extra["remix"] == "vary-subtle"
    assert records[0].prompt == "a red car in the snow" and records[0].strength == 0.35
    assert image_record(made)["prompt"] == "a red car in the snow"
    r = run("pan", made, "--left", "--right", "--out", str(tmp_path / "p"))
    assert r.returncode == 2 and "give one of --left, --right, --up, --down" in r.stderr


def test_blend_mixes_latents_and_composes_the_prompts(tiny_model_dir, tmp_path):
    from kaiga.request import blend_spec
    from kaiga.variations import blend_prompt

    assert blend_prompt([{"prompt": "a red car"}, {"prompt": "a blue boat"}], [0.5, 0.5]) == \
        "a red car::0.5 a blue boat::0.5"
    assert blend_prompt([{"prompt": "a red car"}, {}], [0.5, 0.5]) == "a red car"
    with pytest.raises(RequestError, match="blend: 2 to 4 images"):
        blend_spec(["a" * 64], None)
    with pytest.raises(RequestError, match="a share must be a number from 0"):
        blend_spec(["a" * 64, "b" * 64], [1, -1])
    with pytest.raises(RequestError, match="one weight per image"):
        blend_spec(["a" * 64, "b" * 64], [1])
    studio = Studio(watermark=False)
    a = studio.generate("a red car", seed=1, steps=2, model=str(tiny_model_dir), upscale=1)[0]
    b = studio.generate("a blue boat", seed=2, steps=2, model=str(tiny_model_dir), upscale=1)[0]
    records = [a.record.model_dump(), b.record.model_dump()]
    [mixed] = studio.blend([a.image, b.image], records, seed=3, steps=2, model=str(tiny_model_dir))
    assert mixed.record.extra["remix"] == "blend" and mixed.record.prompt == "a red car::0.5 a blue boat::0.5"
    assert mixed.record.extra["blend"]["weights"] == [0.5, 0.5] and mixed.record.strength == 0.6
    [lean] = studio.blend([a.image, b.image], records, [3, 1], seed=3, steps=2, model=str(tiny_model_dir))
    assert lean.record.extra["blend"]["weights"] == [0.75, 0.25]
    assert np.abs(np.asarray(lean.image, float) - np.asarray(mixed.image, float)).mean() > 0.5
    # the same blend as a request of its own (as the server's worker runs it): the same pixels
    again = studio.generate(GenerationRequest(prompt=mixed.record.prompt, seed=3, steps=2, model=str(tiny_model_dir),
                                              blend=",".join(f"{s}:{w}" for s, w in zip(*mixed.record.extra["blend"].values()))))
    assert np.array_equal(np.asarray(again[0].image), np.asarray(mixed.image))
