"""The learned 4× upscaler (kaiga/upscaler.py): sizes for every factor, better than Lanczos on held-out renders,
the watermark kept through it, records that say it; and `kaiga upscale` as a person runs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from kaiga.metadata import read_metadata
from kaiga.upscaler import UpscalerConfig, UpscalerNet, upscale, upscaled_record


def _kaiga(*args):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, timeout=300)


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_an_untrained_network_is_exactly_bicubic():
    """The residual's last layer starts at zero, so training starts from bicubic and only adds detail."""
    net = UpscalerNet(UpscalerConfig(width=4, depth=2))
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    torch.testing.assert_close(net(x), F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False))


@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_every_factor_gives_its_size_and_lanczos_stays_pil_lanczos(factor):
    images = [Image.new("RGB", (64, 64), (200, 30, 30)), Image.new("RGB", (48, 32), (10, 90, 200))]
    assert [im.size for im in upscale(images, factor)] == [(64 * factor, 64 * factor), (48 * factor, 32 * factor)]
    [lanczos] = upscale(images[:1], factor, "lanczos")
    assert lanczos.tobytes() == images[0].resize((64 * factor,) * 2, Image.LANCZOS).tobytes()
    assert upscale(images, 1) == images
    with pytest.raises(ValueError, match="upscale_method must be one of learned, lanczos"):
        upscale(images, factor, "bicubic")


def test_the_bundled_upscaler_beats_lanczos_on_held_out_renders():
    """Scenes no training pair holds, drawn at 64² and 256²: the learned 4× is closer to the 256² drawing."""
    from kaiga.train.upscaler import HELD_OUT_SEED, render_pair

    pairs = [render_pair(i, HELD_OUT_SEED) for i in range(12)]
    lows = [lo for lo, _ in pairs]
    learned, lanczos = upscale(lows, 4), upscale(lows, 4, "lanczos")
    gain = np.mean([_psnr(a, hi) - _psnr(b, hi) for a, b, (_, hi) in zip(learned, lanczos, pairs)])
    assert gain > 0.5, gain


def test_the_watermark_survives_the_learned_upscale():
    """The Studio marks at native size, then enlarges: the mark is still found, naming the record."""
    from kaiga import Studio
    from kaiga.provenance.watermark import detect

    [made] = Studio(device="cpu").generate("a red car in the city", model="scenes-gan", seed=3, upscale=4)
    assert made.image.size == (256, 256) and made.record.extra["upscaler"] == "kaiga-4x"
    found = detect(made.image, expected=int(made.record.extra["watermark"], 16))
    assert found.marked and found.payload == int(made.record.extra["watermark"], 16)


def test_an_upscaled_record_says_each_enlargement_in_order():
    from kaiga.metadata import GenerationRecord

    record = GenerationRecord(prompt="a car", seed=1, sampler="", steps=0, width=64, height=64, model="m",
                              model_hash="0123456789")
    once = upscaled_record(record, 4, "learned", (64, 64))
    assert (once.upscale, once.extra["upscaler"]) == (4, "kaiga-4x")
    twice = upscaled_record(once, 2, "lanczos", (256, 256))
    assert (twice.upscale, twice.extra["upscaler"]) == (8, "kaiga-4x, then Lanczos")
    old = upscaled_record(record.model_copy(update={"upscale": 2}), 2, "learned", (128, 128))  # made before it
    assert (old.upscale, old.extra["upscaler"]) == (4, "Lanczos, then kaiga-4x")


def test_kaiga_upscale_keeps_the_record_and_refuses_bad_input_in_one_line(tmp_path):
    made = _kaiga("generate", "a red car in the city", "--model", "scenes-gan", "--seed", "2", "--upscale", "1",
                  "--threads", "1", "--out", str(tmp_path / "made"))
    assert made.returncode == 0, made.stderr
    [source] = made.stdout.split()
    r = _kaiga("upscale", source, "--out", str(tmp_path / "big"), "--threads", "1")
    assert r.returncode == 0, r.stderr
    [big] = r.stdout.split()
    meta = read_metadata(big)
    assert Image.open(big).size == (256, 256)
    assert (meta.record.upscale, meta.record.extra["upscaler"], meta.record.seed) == (4, "kaiga-4x", 2)
    assert "Postprocess upscale by: 4, Postprocess upscaler: kaiga-4x" in meta.raw["parameters"]
    again = _kaiga("upscale", big, "--factor", "2", "--method", "lanczos", "--out", str(tmp_path / "big"))
    assert again.returncode == 0, again.stderr
    assert read_metadata(again.stdout.strip()).record.extra["upscaler"] == "kaiga-4x, then Lanczos"

    photo = tmp_path / "photo.png"
    Image.new("RGB", (40, 30), (5, 120, 40)).save(photo)
    plain = _kaiga("upscale", str(photo), "--out", str(tmp_path / "big"))
    assert plain.returncode == 0 and Image.open(plain.stdout.strip()).size == (160, 120)
    wrong = _kaiga("upscale", big, "--method", "bicubic", "--out", str(tmp_path / "big"))
    large = tmp_path / "large.png"
    Image.new("RGB", (600, 600)).save(large)
    too_big = _kaiga("upscale", str(large), "--factor", "8", "--out", str(tmp_path / "big"))
    for bad, message in ((wrong, "--method: must be one of learned, lanczos (got 'bicubic')"),
                         (too_big, "--factor: 600x600 x8 would be 4800x4800; at most 4096 pixels a side")):
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
        assert message in bad.stderr
