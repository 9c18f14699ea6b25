"""`kaiga generate --init/--mask/--strength` end to end: a real subprocess, the bundled model."""

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from kaiga.metadata import read_metadata


def kaiga(*args):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def _inputs(tmp_path):
    init = Image.new("RGB", (64, 64), (40, 120, 200))
    ImageDraw.Draw(init).rectangle((10, 30, 50, 50), fill=(200, 30, 30))
    init.save(tmp_path / "init.png")
    mask = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 31, 63), fill=255)
    mask.save(tmp_path / "mask.png")
    return init


def test_inpaint_from_the_command_line_is_recorded_and_repeatable(tmp_path):
    init = _inputs(tmp_path)
    args = ("generate", "a green tree in the forest", "--init", str(tmp_path / "init.png"), "--mask",
            str(tmp_path / "mask.png"), "--strength", "1", "--steps", "6", "--seed", "3", "--upscale", "1")
    first = kaiga(*args, "--out", str(tmp_path / "a"))
    assert first.returncode == 0, first.stderr
    [path] = [p for p in first.stdout.split() if p.endswith(".png")]
    out = np.asarray(Image.open(path), np.int16)
    diff = np.abs(out - np.asarray(init, np.int16))
    # black kept (up to the invisible watermark, RMS ~3 grey levels over the whole image), white repainted
    assert (diff[:, 32:] ** 2).mean() ** 0.5 < 4 and diff[:, :32].mean() > 10
    rec = read_metadata(path).record
    assert (rec.seed, rec.strength, rec.steps) == (3, 1.0, 6)
    uploads = Path(os.environ["KAIGA_HOME"]) / "uploads"
    stored = uploads / rec.init_image[:2] / f"{rec.init_image}.png"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == rec.init_image and rec.mask
    again = kaiga(*args, "--out", str(tmp_path / "b"))
    [path2] = [p for p in again.stdout.split() if p.endswith(".png")]
    assert np.array_equal(np.asarray(Image.open(path2)), np.asarray(Image.open(path)))


def test_bad_edit_options_are_one_line_errors(tmp_path):
    _inputs(tmp_path)
    (tmp_path / "notes.gif").write_bytes(b"GIF89a" + b"\0" * 50)
    cases = [
        (("--mask", str(tmp_path / "mask.png")), "mask: only applies to an image edit"),
        (("--strength", "0.5"), "strength: only applies to an image edit"),
        (("--init", str(tmp_path / "notes.gif")), "init: must be a PNG, JPEG or WebP file"),
        (("--init", str(tmp_path / "init.png"), "--strength", "2"), "strength: must be between 0.0 and 1.0"),
        (("--init", str(tmp_path / "missing.png")), "init: cannot read"),
    ]
    for extra, message in cases:
        r = kaiga("generate", "a red car", "--out", str(tmp_path / "out"), *extra)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()
    assert not (Path(os.environ["KAIGA_HOME"]) / "uploads").exists()  # nothing stored for refused requests
