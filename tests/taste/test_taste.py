"""Personalisation: a planted taste learned from 20 ratings beats the shared taste on held-out pairs; the prompt
shift fills only what a prompt leaves open; `kaiga generate --personalize` from a person's reviews."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.taste import TASTES, learning_curve, pool
from kaiga.metadata import read_metadata
from kaiga.paths import model_home
from kaiga.store.db import open_database
from kaiga.store.tables import Image
from kaiga.taste.features import feature_names, features
from kaiga.taste.steer import shifted_prompt


def test_twenty_ratings_teach_a_planted_taste_the_shared_one_does_not_know():
    scenes, images = pool()
    curve = learning_curve(scenes, features(images), repeats=3, tastes={"neon": TASTES["neon"]}, curve=(20,))
    at_20 = curve["neon"]["20"]
    assert at_20["personal"] >= 0.8 and at_20["personal"] > at_20["shared"] + 0.05, at_20


def test_the_prompt_shift_fills_only_what_the_prompt_leaves_open():
    names = feature_names()
    theta = np.zeros(len(names))
    theta[names.index("thing=orange car")] = 4.0
    theta[names.index("time=sunset")] = 3.0
    assert shifted_prompt("a car on the beach", theta, names) == ("an orange car on the beach at sunset",
                                                                  ["colour=orange", "time=sunset"])
    assert shifted_prompt("a dog on the beach", theta, names)[1] == ["time=sunset"]  # orange cars, not dogs
    assert shifted_prompt("a green car at night", theta, names) == ("a green car at night", [])
    assert shifted_prompt("a car in daylight", theta, names)[1] == ["colour=orange"]
    theta[names.index("style=neon")] = 3.0
    assert shifted_prompt("a car in clear weather at night", theta, names)[1] == ["colour=orange", "style=neon"]


def kaiga(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow  # a campaign, a review walk-through and a personalised generation: five kaiga processes (~50 s)
def test_generate_personalize_learns_from_the_persons_reviews(tmp_path, tiny_model_dir):
    plan = tmp_path / "ad.yaml"
    plan.write_text('name: ad\nprompt: "a {colour} car"\naxes: {colour: [red, blue, green]}\nseeds: 2\n'
                    f"model: {tiny_model_dir}\nsteps: 2\n")
    assert kaiga("campaign", "run", str(plan), cwd=tmp_path).returncode == 0
    none = kaiga("generate", "a car", "--model", str(tiny_model_dir), "--personalize", "ann", cwd=tmp_path)
    assert none.returncode == 2 and none.stderr.startswith("error: --personalize ann: ann has judged 0 image(s)")
    db = open_database(f"sqlite:///{model_home() / 'kaiga.db'}")
    with db.session() as s:
        ids = sorted(i.id for i in s.query(Image))
    db.engine.dispose()
    walk = subprocess.run([sys.executable, "-m", "kaiga.cli", "review", "ad", "--reviewer", "bob", "--teach-taste"],
                          input="4\nk\nq\n", capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert walk.returncode == 0 and "6 of 6 images to review as bob" in walk.stdout, walk.stdout + walk.stderr
    rates = [f"{i}={r}" for i, r in zip(ids, (5, 4, 1, 2, 3, 1))]
    r = kaiga("review", "ad", "--reviewer", "ann", *[a for x in rates for a in ("--rate", x)], "--star", str(ids[0]),
              cwd=tmp_path)
    assert r.returncode == 0 and "7 review(s) by ann recorded" in r.stdout, r.stderr
    out = tmp_path / "out"
    r = kaiga("generate", "a car", "--model", str(tiny_model_dir), "--steps", "2", "--n", "2", "--seed", "7",
              "--personalize", "ann", "--choose-from", "3", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0 and "personalised for ann (6 judgements)" in r.stderr, r.stderr
    records = [read_metadata(p).record for p in sorted(out.glob("*.png"))]
    assert len(records) == 2
    note = records[0].extra["personalize"]
    assert (note["person"], note["ratings"], note["candidates"], note["prompt_asked"]) == ("ann", 6, 3, "a car")
    assert json.dumps(note)  # plain JSON in the record
