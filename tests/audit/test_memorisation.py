"""The memorisation audit: the tiled distance, the calibrated flags, and `kaiga audit memorisation`.

Real renders and their perturbed copies (JPEG, a shift, noise), the bundled judge and a bundled model; no training.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kaiga.audit.distances import pixels, tiled_distance
from kaiga.audit.memorisation import calibrate, embed, neighbours
from kaiga.data.dataset import scene_example


def _jpeg(im: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return Image.open(buf).convert("RGB")


def _sprite_on_white(colour, box) -> Image.Image:
    a = np.full((64, 64, 3), 255, np.uint8)
    y0, x0, y1, x1 = box
    a[y0:y1, x0:x1] = colour
    a[y0 + 3 : y1 - 3, x0 + 3 : x1 - 3] = 40  # some structure inside the sprite
    return Image.fromarray(a)


def test_shared_white_background_is_no_match_but_a_jpeg_copy_is():
    car = _sprite_on_white((200, 20, 20), (26, 8, 40, 22))
    dog = _sprite_on_white((20, 20, 200), (26, 42, 40, 56))
    d = tiled_distance(pixels([car]), pixels([dog, _jpeg(car)]))[0]
    # whole-image RMS of the two is small (mostly the same white); the tiled distance is not fooled
    whole = np.sqrt((((np.asarray(car, float) - np.asarray(dog, float)) / 255) ** 2).mean())
    assert whole < d[0]
    assert d[0] > 0.3, f"two different sprites on white should be far, got {float(d[0]):.3f}"
    assert d[1] < d[0] / 5, f"an image and its JPEG should be near, got {float(d[1]):.3f}"


def test_a_shifted_copy_is_near():
    im = scene_example(0, seed=11)[0]
    moved = Image.fromarray(np.pad(np.asarray(im)[:-2, :-2], ((2, 0), (2, 0), (0, 0)), mode="edge"))
    other = scene_example(1, seed=11)[0]
    d = tiled_distance(pixels([moved]), pixels([im, other]))[0]
    assert d[0] < 0.5 * d[1]


@pytest.fixture(scope="module")
def renders():
    return [scene_example(i, seed=21)[0] for i in range(140)]


@pytest.mark.slow  # ~19 s on 2 busy cores: embeds and calibrates 140 renders
def test_planted_copies_are_flagged_and_distinct_renders_are_not(renders):
    train_images, calibration_images, distinct = renders[:60], renders[60:100], renders[100:140]
    train = embed(train_images)
    cal = calibrate(embed(calibration_images), train, false_flag_rate=0.05)
    planted = [0, 7, 19, 33]
    noisy = lambda im: Image.fromarray(  # noqa: E731
        (np.asarray(im, float) + np.random.default_rng(0).normal(0, 4, (64, 64, 3))).clip(0, 255).astype(np.uint8))
    copies = [train_images[planted[0]], _jpeg(train_images[planted[1]]), noisy(train_images[planted[2]]),
              _jpeg(train_images[planted[3]], quality=85)]
    idx, scores = neighbours(embed(copies), train, cal, k=2)
    assert idx[:, 0].tolist() == planted
    assert (scores[:, 0] < cal.threshold).all()
    _, scores = neighbours(embed(distinct), train, cal, k=1)
    assert (scores[:, 0] < cal.threshold).float().mean() <= 0.05


def _kaiga(*args, cwd):
    return subprocess.run([sys.executable, "-m", "kaiga", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow  # ~13 s: a subprocess that loads a bundled model and the judge
def test_cli_writes_the_result(tiny_scenes, tmp_path):
    r = _kaiga("audit", "memorisation", "--model", "scenes-gan", "--data", str(tiny_scenes), "--n", "4",
               "--calibration-n", "20", "--out", str(tmp_path / "out"), "--threads", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "out" / "memorisation.json").read_text())
    assert result["n_generated"] == 4 and result["n_train"] == 16
    assert {"threshold", "feature_scale", "pixel_scale", "n_calibration", "source"} <= set(result["calibration"])
    row = result["images"][0]
    assert len(row["neighbours"]) == 3 and (tiny_scenes / row["neighbours"][0]["file"]).is_file()
    assert "memorisation of scenes-gan" in r.stdout


@pytest.mark.parametrize("args, says", [
    (["--model", "no-such-model"], "--model"),
    (["--model", "scenes-gan", "--data", "NOT-DATA"], "--data"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, says):
    (tmp_path / "NOT-DATA").mkdir()
    data = [] if "--data" in args else ["--data", str(tmp_path / "NOT-DATA")]
    if "--data" not in args:  # a real dataset, so that only the model is wrong
        from kaiga.data.dataset import write_scenes

        data = ["--data", str(write_scenes(tmp_path / "d", n=2, seed=0))]
    r = _kaiga("audit", "memorisation", *args, *data, "--n", "2", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in r.stderr
