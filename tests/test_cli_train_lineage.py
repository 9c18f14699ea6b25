"""Lineage through training to the images: `kaiga train` refuses unlicensed data and honours the opt-out list,
the trained model's card counts what trained it, and every image's record names that card by its hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from kaiga.metadata import read_metadata
from kaiga.paths import BUNDLED_DIR
from kaiga.provenance.card import CARD_FILE, card_hash


def kaiga(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, timeout=300)


def short_sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


def unlicensed_copy(tmp_path, scenes):
    """The scenes folder as a user's imagefolder: same images, captions only (no lineage, no manifest)."""
    folder = tmp_path / "mine"
    folder.mkdir()
    rows = [json.loads(line) for line in (scenes / "metadata.jsonl").read_text().splitlines()]
    for r in rows:
        (folder / r["file_name"]).write_bytes((scenes / r["file_name"]).read_bytes())
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": r["file_name"], "text": r["text"]}) + "\n"
                                                   for r in rows))
    return folder


@pytest.mark.slow
def test_a_trained_models_card_counts_its_data(tmp_path, tiny_scenes):
    from kaiga.data.admit import admit
    from kaiga.data.optout import OptOutList, image_hash
    from kaiga.train.commands import train_family
    from kaiga.train.loop import LoopConfig

    opt = OptOutList([image_hash(tiny_scenes / "000003.png")])
    loop = LoopConfig(steps=1, batch_size=2, warmup_steps=0, sample_every=0, progress=False)
    run = tmp_path / "vae"
    train_family("vae", tiny_scenes, run, loop, size="tiny", admission=admit(tiny_scenes, opt_out=opt))
    card = json.loads((run / CARD_FILE).read_text())
    [data] = card["datasets"].values()
    assert (data["items"], data["opted_out"], data["licences"], data["consent"]) == (
        15, 1, {"Apache-2.0": 15}, {"not-applicable": 15})
    assert card["runs"] == [{"stage": "vae", "data": tiny_scenes.name}]

    again = tmp_path / "again"  # a fine-tune continues the card: the same data counted once, two runs
    train_family("vae", tiny_scenes, again, loop, init=run, admission=admit(tiny_scenes, opt_out=opt))
    card = json.loads((again / CARD_FILE).read_text())
    assert len(card["runs"]) == 2 and card["totals"]["items"] == 15
    third = tmp_path / "third"  # the same folder without the opt-out list is other data: listed apart
    train_family("vae", tiny_scenes, third, loop, init=again)
    card = json.loads((third / CARD_FILE).read_text())
    assert len(card["datasets"]) == 2 and card["totals"]["items"] == 31 and card["runs"][-1]["data"] != "scenes"


def test_the_shipped_models_have_cards_from_their_training_runs():
    for name in ("scenes-diffusion", "scenes-fast", "scenes-gan", "scenes-vae", "scenes-transformer"):
        folder = BUNDLED_DIR / name
        card = json.loads((folder / CARD_FILE).read_text())
        runs = json.loads((folder / "kaiga.json").read_text())["training"]["runs"]
        assert [r["stage"] for r in card["runs"]] == [r["stage"] for r in runs], name
        assert set(card["totals"]["licences"]) == {"Apache-2.0"} and card["totals"]["unlicensed_allowed"] == 0
        assert card_hash(folder) == short_sha(folder / CARD_FILE)
    assert json.loads((BUNDLED_DIR / "scenes-diffusion" / CARD_FILE).read_text())["totals"]["items"] == 60_000


def test_a_studio_image_records_its_models_card():
    from kaiga.studio import Studio

    [image] = Studio().generate("a red car in the city", model="scenes-gan", seed=1)
    assert image.record.model_card == short_sha(BUNDLED_DIR / "scenes-gan" / CARD_FILE)


@pytest.mark.slow
def test_train_refuses_unlicensed_data_unless_allowed(tmp_path, tiny_scenes):
    mine = unlicensed_copy(tmp_path, tiny_scenes)
    args = ["train", "vae", "--data", str(mine), "--steps", "1", "--batch-size", "2", "--size", "tiny",
            "--sample-every", "0"]
    r = kaiga(*args, "--out", str(tmp_path / "refused"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "16 of 16 items have no licence (000000.png, 000001.png, 000002.png, ...)" in r.stderr
    assert not (tmp_path / "refused").exists()  # refused before any work
    r = kaiga(*args, "--out", str(tmp_path / "run"), "--allow-unlicensed")
    assert r.returncode == 0, r.stderr
    totals = json.loads((tmp_path / "run" / CARD_FILE).read_text())["totals"]
    assert (totals["licences"], totals["unlicensed_allowed"]) == ({"none": 16}, 16)


@pytest.mark.slow
def test_opt_out_train_card_and_the_images_record(tmp_path, tiny_scenes):
    from PIL import Image

    copy = tmp_path / "mine.webp"  # the owner's copy: resized and re-encoded, not the training file
    Image.open(tiny_scenes / "000007.png").resize((128, 128)).save(copy, quality=80)
    listing = tmp_path / "opt-out.txt"
    r = kaiga("data", "opt-out", str(copy), "--list", str(listing))
    assert r.returncode == 0 and "1 added to" in r.stdout, r.stderr
    run = tmp_path / "run"
    r = kaiga("train", "gan", "--data", str(tiny_scenes), "--out", str(run), "--steps", "1", "--batch-size", "2",
              "--size", "tiny", "--sample-every", "0", "--opt-out", str(listing))
    assert r.returncode == 0, r.stderr
    assert "1 item(s) on the opt-out list" in r.stderr and "000007.png" in r.stderr
    assert json.loads((run / CARD_FILE).read_text())["totals"]["opted_out"] == 1

    r = kaiga("card", str(run))
    assert r.returncode == 0 and short_sha(run / CARD_FILE) in r.stdout and "Apache-2.0 (15)" in r.stdout
    r = kaiga("generate", "a red car", "--model", str(run), "--seed", "2", "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    [path] = r.stdout.split()
    assert read_metadata(path).record.model_card == short_sha(run / CARD_FILE)
    r = kaiga("info", path)
    assert f"Model card: {short_sha(run / CARD_FILE)}" in r.stdout

    r = kaiga("train", "gan", "--data", str(tiny_scenes), "--out", str(tmp_path / "x"), "--opt-out",
              str(tmp_path / "none.txt"))
    assert r.returncode == 2 and "--opt-out:" in r.stderr and "does not exist" in r.stderr
    r = kaiga("card", str(tiny_scenes))
    assert r.returncode == 2 and "Traceback" not in r.stderr
