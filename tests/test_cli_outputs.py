"""What `kaiga generate` leaves in --out: one file per image, never one over another, named readably.

Issue 16, item 1: five runs that differed only in sampler, steps, model, an edit or a non-Latin prompt
left three files (the name was only seed and prompt slug; such prompts all became `…-image.png`).
"""

from __future__ import annotations

import os
import stat

from PIL import Image

from kaiga.cli import _output_stem, _slug
from kaiga.metadata import GenerationRecord, read_metadata
from tests.test_cli_bad_paths import run_many


def record(**fields) -> GenerationRecord:
    base = dict(prompt="a red car", seed=7, sampler="ddim", steps=2, guidance=3.0, width=64, height=64,
                model="scenes-diffusion", model_hash="0123456789")
    return GenerationRecord(**{**base, **fields})


def test_runs_that_differ_in_any_setting_each_keep_their_file(tmp_path, tiny_model_dir):
    out = tmp_path / "out"
    init = tmp_path / "init.png"
    Image.new("RGB", (64, 64), "red").save(init)
    run = ["generate", "--seed", "7", "--steps", "2", "--upscale", "1", "--out", str(out)]
    cases = {
        "first": [*run, "a red car"],
        "sampler": [*run, "a red car", "--sampler", "euler"],
        "steps": [*run, "a red car", "--steps", "3"],
        "model": [*run, "a red car", "--model", str(tiny_model_dir)],
        "edit": [*run, "a red car", "--init", str(init)],
        "japanese": [*run, "雪の夜の赤い車"],
        "emoji": [*run, "🚗❄️"],
        "punctuation": [*run, "!!!"],
        "again": [*run, "a red car"],  # the very same request: a second file, not the first one replaced
    }
    results = run_many(list(cases.values()), tmp_path, processes=1)  # in order: "again" comes after "first"
    for name, r in zip(cases, results):
        assert r["code"] == 0, f"{name}: {r['stderr'][-800:]}"
    files = sorted(out.glob("*.png"))
    assert len(files) == len(cases), [f.name for f in files]
    records = [read_metadata(f).record for f in files]
    assert {(r.sampler, r.steps, r.model, r.init_image is not None, r.prompt) for r in records} == {
        ("ddim", 2, "scenes-diffusion", False, "a red car"), ("euler", 2, "scenes-diffusion", False, "a red car"),
        ("ddim", 3, "scenes-diffusion", False, "a red car"), ("ddim", 2, records_model(records), False, "a red car"),
        ("ddim", 2, "scenes-diffusion", True, "a red car"), ("ddim", 2, "scenes-diffusion", False, "雪の夜の赤い車"),
        ("ddim", 2, "scenes-diffusion", False, "🚗❄️"), ("ddim", 2, "scenes-diffusion", False, "!!!")}
    names = [f.name for f in files]
    assert all(n.startswith("0000000007-") for n in names)
    assert not any("image" in n for n in names)  # no prompt becomes the same placeholder word
    assert any("automobile-snowflake" in n for n in names)
    again = [n for n in names if n.endswith("-1.png")]
    assert len(again) == 1 and again[0].replace("-1.png", ".png") in names  # same request, same stem, "-1" after it
    for f in files:  # as open would make them under the test's umask, not 0600
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~_umask()


def records_model(records) -> str:
    """The tiny model's name as its record gives it (whatever the fixture folder is called)."""
    [name] = {r.model for r in records} - {"scenes-diffusion"}
    return name


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_the_grid_of_another_batch_has_another_name():
    one, two, three = record(seed=7), record(seed=8), record(seed=9)
    stems = {_output_stem("", [one]), _output_stem("grid-", [one, two]), _output_stem("grid-", [one, two, three]),
             _output_stem("grid-", [one, record(seed=8, sampler="euler")])}
    assert len(stems) == 4
    assert _output_stem("grid-", [one, two]).startswith("grid-0000000007-a-red-car-")


def test_the_name_changes_with_what_makes_the_pixels_and_only_with_that():
    stem = _output_stem("", [record()])
    for change in ({"sampler": "euler"}, {"steps": 3}, {"guidance": 5.0}, {"width": 128}, {"model_hash": "abcdef0123"},
                   {"negative_prompt": "blurry"}, {"upscale": 4}, {"init_image": "a" * 64}, {"strength": 0.5},
                   {"mask": "b" * 64}, {"extra": {"truncation": 0.7}}):
        assert _output_stem("", [record(**change)]) != stem, change
    assert _output_stem("", [record(created="2020-01-01T00:00:00+00:00", timings={"total_s": 1.0},
                                    kaiga_version="9.9", model_card="0123456789")]) == stem


def test_slugs_spell_what_they_can():
    assert _slug("A red car, in the snow at night!") == "a-red-car-in-the-snow-at-night"
    assert _slug("Renée's café") == "renee-s-cafe"
    assert _slug("きつね") == "kitune" and _slug("カメラ") == "kamera"
    assert _slug("🦊 in ❄️") == "fox-face-in-snowflake"
    assert _slug("赤い車") == "" and _slug("!!!") == "" and _slug("Жёлтый") == ""  # the name is seed and hash then
    assert len(_slug("a very long prompt " * 10)) <= 40 and not _slug("a very long prompt " * 10).endswith("-")
