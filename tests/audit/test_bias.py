"""The bias audit: its statistics on known distributions, the audit on the renderer (a generator whose
skew we choose) read by the real judge, and `kaiga audit bias` as a person runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from kaiga.audit.bias import audit_bias, dataset_scenes, training_shares, world_scenes
from kaiga.audit.prompts import complete, parse_prompt
from kaiga.audit.stats import bootstrap_ci, chi_square_p, share_counts, shares, tv_distance, uniform
from kaiga.data.render import render
from kaiga.data.world import Layout, Scene, SceneObject
from kaiga.eval.readout import ReadoutNet


def _sample(probs: dict[str, float], n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return list(rng.choice(list(probs), size=n, p=list(probs.values())))


def test_a_uniform_sample_passes_and_an_80_20_one_fails():
    values = ("red", "blue")
    fair = share_counts(_sample(uniform(values), 300, seed=1), values)
    skew = share_counts(_sample({"red": 0.8, "blue": 0.2}, 300, seed=1), values)
    assert chi_square_p(fair, uniform(values)) > 0.05 and tv_distance(shares(fair), uniform(values)) < 0.06
    assert chi_square_p(skew, uniform(values)) < 0.01 and abs(tv_distance(shares(skew), uniform(values)) - 0.3) < 0.06
    assert chi_square_p(skew, {"red": 0.8, "blue": 0.2}) > 0.05  # the skew of its own data: no surprise


def test_uniform_passes_over_many_values_even_with_small_cells():
    colours = tuple("abcdefghi")  # 9 values, 36 draws: 4 expected per cell, the Monte Carlo test
    ps = [chi_square_p(share_counts(_sample(uniform(colours), 36, seed=s), colours), uniform(colours)) for s in range(40)]
    assert np.mean(np.array(ps) < 0.05) <= 0.15  # a test at level 0.05 rejects about 5 % of fair samples
    lopsided = share_counts(["a"] * 20 + list("bcdefghi") * 2, colours)
    assert chi_square_p(lopsided, uniform(colours)) < 0.01


def test_an_impossible_value_has_p_zero():
    assert chi_square_p({"red": 5, "pink": 1}, {"red": 1.0}) == 0.0


def test_the_bootstrap_interval_covers_the_truth():
    covered = []
    for seed in range(40):
        lo, hi = bootstrap_ci(_sample({"a": 0.3, "b": 0.7}, 200, seed), ("a", "b"), rounds=500, seed=seed)["a"]
        covered.append(lo <= 0.3 <= hi)
        assert hi - lo < 0.16  # about ±1.96·sqrt(0.21/200) = ±0.064
    assert np.mean(covered) >= 0.85


def test_training_shares_of_a_dataset_and_of_the_world(tmp_path):
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "bench"))
    from bias_data import write_car_colours

    folder = write_car_colours(tmp_path / "data", n=120, share_red=0.8)
    ref = training_shares(dataset_scenes(folder), parse_prompt("a car"), "colour")
    assert set(ref.shares) == {"red", "blue"} and ref.shares["red"] > 0.6 and ref.n > 30
    world = training_shares(world_scenes(), parse_prompt("a car"), "colour")
    assert set(world.shares) == {"red", "orange", "yellow", "green", "blue", "purple", "white", "black"}
    assert max(world.shares.values()) - min(world.shares.values()) < 0.06  # uniform, car+pink held out


def _renderer(share_red: float | None):
    """A generator that draws what the prompt names, and a car red with probability `share_red` when it names
    no colour (None: red and blue in turn, an exactly balanced model): the renderer standing in for a model
    with a skew we chose."""
    def generate(prompts, seeds):
        images = []
        for prompt, seed in zip(prompts, seeds):
            spec, rng = parse_prompt(prompt), np.random.default_rng(seed)
            red = seed % 2 == 0 if share_red is None else rng.random() < share_red
            colour = spec.fixed.get("colour") or ("red" if red else "blue")
            images.append(render(Scene((SceneObject("car", colour),), Layout.SINGLE, "city", "clear", "day", "plain"),
                                 rng))
        return images
    return generate


@pytest.fixture(scope="module")
def judge():
    return ReadoutNet.load()


def test_the_audit_finds_a_planted_skew_and_balanced_completion_removes_it(judge):
    data = [{"layout": "single", "objects": [{"name": "car", "colour": c}], "scene": "city", "weather": "clear",
             "time": "day", "style": "plain"} for c in ("red", "blue") * 50]
    skewed = audit_bias(_renderer(0.8), judge, ["a car"], n=150, train_scenes=data, judge_renders=100)
    colour = skewed["prompts"][0]["attributes"]["colour"]
    assert colour["verdict"] == "skewed" and colour["uniform"]["p"] < 0.01 and colour["uniform"]["tv"] > 0.2
    assert colour["judge"]["accuracy"] > 0.9 and colour["judge"]["tv_on_uniform_renders"] < 0.1
    assert colour["amplified"] and colour["amplification"]["majority"]["value"] in ("red", "blue")
    lo, hi = colour["ci95"]["red"]
    assert lo < colour["shares"]["red"] < hi
    fair = audit_bias(_renderer(0.8), judge, ["a car"], n=150, train_scenes=data, balance="colour", judge_renders=60)
    colour = fair["prompts"][0]["attributes"]["colour"]
    assert colour["verdict"] == "no significant skew" and colour["uniform"]["tv"] < 0.1
    assert audit_bias(_renderer(None), judge, ["a car"], n=150, train_scenes=data, judge_renders=60)["prompts"][0]["attributes"][
        "colour"]["verdict"] == "no significant skew"


def test_prompts_complete_the_open_attribute():
    assert complete(parse_prompt("a vehicle at night"), "object", "boat") == "a boat at night"
    assert parse_prompt("a sedan in the woods").fixed == {"scene": "forest"}
    with pytest.raises(ValueError, match="one subject"):
        parse_prompt("a dog and a cat")


def kaiga(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kaiga.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


@pytest.mark.slow
def test_kaiga_audit_bias_on_a_bundled_model(tmp_path):
    r = kaiga("audit", "bias", "--model", "scenes-vae", "--n", "12", "-p", "a car", "--out", str(tmp_path / "a"),
              "--threads", "1")
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "a/bias.json").read_text())
    assert result["model"] == "scenes-vae" and result["n"] == 12
    assert set(result["prompts"][0]["attributes"]) == {"colour", "scene", "weather", "time", "style"}
    assert Image.open(tmp_path / "a/bias.png").width >= 340 * 3
    assert "a car" in r.stdout and "colour" in r.stdout


@pytest.mark.parametrize("args, says", [
    (["--balance", "shoe"], "--balance: must be one of"),
    (["-p", "a dog left of a cat"], "--prompt:"),
    (["-p", "a red car in the city at night in the rain, sketch"], "leaves nothing open"),
    (["--data", "no/such/folder"], "--data: no/such/folder does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(args, says, tmp_path):
    r = kaiga("audit", "bias", *args, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_data_without_attributes_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "d/a.png")
    (tmp_path / "d/metadata.jsonl").write_text('{"file_name": "a.png", "text": "a car"}\n')
    r = kaiga("audit", "bias", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--data:" in r.stderr and "attributes" in r.stderr and "Traceback" not in r.stderr
