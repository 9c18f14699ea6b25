"""`kaiga grid`, A1111's X/Y/Z plot, as a person runs it: every cell a normal image with its record, one labelled
sheet per z value, and a bad axis or cell said before the first image."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from PIL import Image

from kaiga.metadata import read_metadata


def kaiga(*args):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, timeout=600)


def test_a_grid_of_cells_with_their_records_and_labelled_sheets(tiny_model_dir, tmp_path):
    r = kaiga("grid", "a red car in the snow", "--model", str(tiny_model_dir), "--seed", "3", "--upscale", "1",
              "--x", "steps=1,2", "--y", 'prompt=red,blue', "--z", 'style=plain,"watercolor:0.5,neon:0.5"',
              "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    paths = r.stdout.split()
    cells, sheets = paths[:8], paths[8:]
    assert len(cells) == 8 and len(sheets) == 2 and all("grid-" in s for s in sheets)
    records = [read_metadata(p).record for p in cells]
    assert [rec.steps for rec in records[:2]] == [1, 2]  # x fastest
    assert [rec.prompt for rec in records[:4:2]] == ["a red car in the snow", "a blue car in the snow"]
    assert records[4].extra["style"]["mix"] == "watercolor:0.5,neon:0.5" and "style" in records[0].extra
    sheet = Image.open(sheets[1])
    assert sheet.width > 2 * 64 and sheet.height > 2 * 64  # 2 columns, 2 rows, labels
    assert read_metadata(sheets[1]).record.extra["grid"] == {
        "x": "steps=1,2", "y": "prompt=red,blue", "z": "style=plain,watercolor:0.5,neon:0.5",
        "sheet": "style=watercolor:0.5,neon:0.5"}
    # the same cell made alone is the same image
    [alone] = kaiga("generate", "a blue car in the snow", "--model", str(tiny_model_dir), "--seed", "3", "--steps",
                    "2", "--upscale", "1", "--style", "plain", "--out", str(tmp_path / "alone")).stdout.split()
    assert list(Image.open(alone).getdata()) == list(Image.open(cells[3]).getdata())


def test_a_bad_axis_or_cell_is_said_before_any_image(tmp_path):
    from kaiga import Studio
    from kaiga.request import GenerationRequest, RequestError
    from kaiga.xyz_plot import make_plot, parse_axis

    base = GenerationRequest(prompt="a red car")
    studio = Studio()
    for axes, says in [
        ([("--x", "steps=5,500")], "the cell steps=500: steps: must be between 1 and 150 (got 500)"),
        ([("--x", "stepz=5")], "--x: give FIELD=v1,v2,... with FIELD one of"),
        ([("--x", "prompt=green,blue")], "'green' is not in 'a red car'"),
        ([("--x", "steps=1,2"), ("--y", "steps=3")], "each axis varies another field"),
        ([("--x", "guidance=high")], "--x: guidance takes float values (got 'high')"),
        ([("--x", "style=plain,nope")], "no style named 'nope'"),
        ([("--x", 'style="watercolor:0.5,neon:0.5",plain'), ("--y", "seed=" + ",".join(map(str, range(40))))],
         "the axes make 80 images; at most 64"),
    ]:
        with pytest.raises(RequestError, match=re.escape(says)):
            make_plot(studio, base, [parse_axis(flag, spec) for flag, spec in axes])
    assert studio._loaded == {}  # nothing was loaded, let alone made
    # and from the command line: one line, exit 2, nothing written
    r = kaiga("grid", "a red car", "--x", "steps=5,500", "--threads", "1", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "the cell steps=500" in r.stderr
    r = kaiga("grid", "a red car", "--x", "steps=1", "--z", "seed=1,2", "--threads", "1")
    assert r.returncode == 2 and "--z: give --y first" in r.stderr
    assert not (tmp_path / "o").exists()
