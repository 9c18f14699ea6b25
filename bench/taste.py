"""Personalisation measured on simulated people with planted tastes (issue 22, item 4).

The world: a car campaign's pool of renders (`pool`): one object a picture, a car in 70 % of them (else a truck
or a bicycle), every colour, place, weather, time of day and style drawn uniformly; the renderer knows what each
shows, the taste model sees only the judge's reading (kaiga/taste/features.py).

A simulated person (`Person`) likes what everyone likes a little (clear weather over fog, day over night:
`COMMON`), has small likes of their own on every attribute (σ `IDIOSYNCRASY`), and one planted taste worth
`PLANTED` (a liking for neon, for sunsets, for blue cars). They rate images 1-5: their utility, standardised over
the pool, plus noise σ `RATING_NOISE`, cut at fixed points. A population of `POPULATION` such people, tastes
drawn from a wider list, rates `POPULATION_RATINGS` images each: that is the shared taste.

Measured, for each planted taste, `REPEATS` times (other images, other noise):
- the learning curve: pairwise accuracy on held-out pairs after n ratings, for the person's model (the shared
  taste plus their offset), the shared taste alone, the person's ratings alone (no shared prior) and chance.
  "Most telling": the person rates the images `kaiga review --teach-taste` shows first, chosen from the
  SHOWN they are shown (kaiga.taste.model.most_telling), instead of random ones.
  A held-out pair is two images not rated whose utilities (without noise) differ by at least `CLEAR_PAIR`:
  pairs the person would not hesitate over; accuracy is the share the model orders as the person does.
- generation: for the first `--people` people of each taste, with their model after 20 ratings, `kaiga generate
  --personalize` (the prompt shift, the best of 4) against the plain prompt, the same seeds; the person compares the two by their utility of what the judge reads in each (the simulated person's
  eyes are the judge's: nothing else here can say what a generated image shows). Preferred counts a tie as
  half; ties and losses are reported too.

Usage:
    OMP_NUM_THREADS=1 python bench/taste.py [--repeats 10] [--people 3] [--seeds 2] [--json bench/results/taste.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kaiga.data.render import render
from kaiga.data.world import COLOURS, SCENES, STYLES, TIMES, WEATHERS, Layout, Scene, SceneObject
from kaiga.eval.readout import ReadoutNet, read
from kaiga.taste.features import feature_names, features
from kaiga.taste.model import PERSON_STRENGTH, TasteModel, fit, most_telling, pair_differences

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "taste.json"
POOL = 1500
HELD_OUT = 400  # the pool's last images: never rated, their pairs are the test
POPULATION = 60
POPULATION_RATINGS = 30
COMMON = {"weather=clear": 0.5, "weather=fog": -0.5, "time=night": -0.3, "style=sketch": -0.3}
IDIOSYNCRASY = 0.2
PLANTED = 2.0
RATING_NOISE = 0.5
RATING_CUTS = (-1.0, -0.35, 0.35, 1.0)  # standardised utility -> 1..5
CLEAR_PAIR = 1.0
TASTES = {"neon": {"style=neon": PLANTED}, "sunset": {"time=sunset": PLANTED},
          "blue cars": {"thing=blue car": PLANTED}}
OTHER_TASTES = [{"style=watercolor": PLANTED}, {"style=pixel art": PLANTED}, {"scene=beach": PLANTED},
                {"scene=mountains": PLANTED}, {"weather=snow": PLANTED}, {"time=night": PLANTED},
                {"thing=red car": PLANTED}, {"style=vintage": PLANTED}, *TASTES.values()]
CURVE = (0, 5, 10, 20, 40)
SHOWN = 300  # the images a person is shown to rate (a campaign's worth), from the pool's rated part
PROMPTS = ("a car in the city", "a car on the beach", "a car in the forest", "a car in the desert",
           "a car in the mountains", "a car in the countryside")


def _named(thing: str, colour: str, scene: str, weather: str, time: str, style: str) -> list[str]:
    return [f"object_a={thing}", f"colour_a={colour}", f"scene={scene}", f"weather={weather}", f"time={time}",
            f"style={style}", f"thing={colour} {thing}"]


def attributes(s: Scene) -> list[str]:
    """What a scene shows, as the taste features' names: 'style=neon', 'thing=blue car', ..."""
    return _named(s.objects[0].name, s.objects[0].colour, s.scene, s.weather, s.time, s.style)


def pool(n: int = POOL, seed: int = 0) -> tuple[list[Scene], np.ndarray]:
    """n campaign scenes and their renders [n, 64, 64, 3]."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(n):
        thing = "car" if rng.random() < 0.7 else str(rng.choice(["truck", "bicycle"]))
        scenes.append(Scene((SceneObject(thing, str(rng.choice(COLOURS))),), Layout.SINGLE, str(rng.choice(SCENES)),
                            str(rng.choice(WEATHERS)), str(rng.choice(TIMES)), str(rng.choice(STYLES))))
    images = np.stack([np.asarray(render(s, np.random.default_rng(seed * 100_000 + i))) for i, s in enumerate(scenes)])
    return scenes, images


@dataclass
class Person:
    """A simulated person: weights over attribute names; utility of what an image shows."""

    weights: dict[str, float]
    rng: np.random.Generator

    @classmethod
    def with_taste(cls, taste: dict[str, float], seed: int) -> "Person":
        rng = np.random.default_rng(seed)
        weights = {name: float(rng.normal(0, IDIOSYNCRASY)) for name in feature_names()}
        for name, w in (*COMMON.items(), *taste.items()):
            weights[name] = weights.get(name, 0.0) + w
        return cls(weights, rng)

    def utility(self, shown: list[str]) -> float:
        return sum(self.weights.get(a, 0.0) for a in shown)

    def ratings(self, utilities: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        """1-5 for each utility: standardised by the pool's (mean, sd), noise added, cut."""
        z = (utilities - scale[0]) / scale[1] + self.rng.normal(0, RATING_NOISE, len(utilities))
        return 1 + np.searchsorted(RATING_CUTS, z)


def pairwise_accuracy(theta: np.ndarray, f: np.ndarray, utilities: np.ndarray) -> float:
    """The share of clear pairs (utility apart by CLEAR_PAIR) the model orders as the person does."""
    i, j = np.nonzero(utilities[:, None] - utilities[None, :] >= CLEAR_PAIR)
    predicted = (f[i] - f[j]) @ theta
    return float(np.mean(predicted > 0) + 0.5 * np.mean(predicted == 0))


def shared_taste(scenes, f, train: np.ndarray, seed: int) -> TasteModel:
    """The population's taste: POPULATION people, tastes from OTHER_TASTES, POPULATION_RATINGS ratings each."""
    rng = np.random.default_rng(seed)
    judged = {}
    for k in range(POPULATION):
        person = Person.with_taste(OTHER_TASTES[k % len(OTHER_TASTES)], seed=10_000 + seed * 1000 + k)
        u = np.array([person.utility(attributes(scenes[i])) for i in train])
        rated = rng.choice(len(train), POPULATION_RATINGS, replace=False)
        judged[f"p{k}"] = (f[train[rated]], person.ratings(u[rated], (u.mean(), u.std())))
    return TasteModel.learn(feature_names(), judged)


def learning_curve(scenes, f, repeats: int, tastes: dict = TASTES, curve: tuple[int, ...] = CURVE) -> dict:
    """Per planted taste and number of ratings: mean pairwise accuracy of each model over `repeats` people, and
    the lowest of the person's model."""
    train, test = np.arange(len(scenes) - HELD_OUT), np.arange(len(scenes) - HELD_OUT, len(scenes))
    out = {}
    for name, taste in tastes.items():
        rows = {n: {"personal": [], "shared": [], "ratings alone": [], "personal, most telling": []} for n in curve}
        for r in range(repeats):
            shared = shared_taste(scenes, f, train, seed=r).shared
            person = Person.with_taste(taste, seed=r)
            u = np.array([person.utility(attributes(s)) for s in scenes])
            order = np.random.default_rng(500 + r).permutation(train)
            scores = person.ratings(u[order], (u[train].mean(), u[train].std()))
            telling = _telling(f, order, max(curve))
            telling_scores = person.ratings(u[telling], (u[train].mean(), u[train].std()))
            for n in curve:
                diffs = pair_differences(f[order[:n]], scores[:n])
                personal = fit(diffs, shared, PERSON_STRENGTH)
                alone = fit(diffs, np.zeros_like(shared), PERSON_STRENGTH)
                chosen = fit(pair_differences(f[telling[:n]], telling_scores[:n]), shared, PERSON_STRENGTH)
                for key, theta in (("personal", personal), ("shared", shared), ("ratings alone", alone),
                                   ("personal, most telling", chosen)):
                    rows[n][key].append(pairwise_accuracy(theta, f[test], u[test]))
        out[name] = {str(n): {k: round(float(np.mean(v)), 3) for k, v in models.items()}
                     | {"chance": 0.5, "personal_lowest": round(float(np.min(models["personal"])), 3)}
                     for n, models in rows.items()}
    return out


def _telling(f: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """The k most telling of the SHOWN images a person is shown (`kaiga review --teach-taste`'s order)."""
    shown = order[:SHOWN]
    return shown[most_telling(f[shown], k)]


def generation(scenes, f, people: int, seeds: int, candidates: int, telling: bool = False) -> dict:
    """Per planted taste, for `people` people (the first of the learning curve's), each after 20 ratings (random
    ones, or with `telling` the most telling): --personalize against the plain prompt, judged by the simulated
    person."""
    from kaiga.studio import Studio
    from kaiga.taste.steer import generate_personalised

    studio, judge = Studio(), ReadoutNet.load()
    train = np.arange(len(scenes) - HELD_OUT)
    plain = {prompt: read(judge, [im.image for im in studio.generate(prompt, n=seeds, seed=0)]) for prompt in PROMPTS}
    out = {}
    for name, taste in TASTES.items():
        wins = ties = losses = 0
        each = []
        for r in range(people):
            shared = shared_taste(scenes, f, train, seed=r)
            person = Person.with_taste(taste, seed=r)
            u = np.array([person.utility(attributes(s)) for s in scenes])
            order = np.random.default_rng(500 + r).permutation(train)  # as the curve's 20 ratings
            rated = _telling(f, order, 20) if telling else order[:20]
            model = TasteModel(shared.names, shared.shared, {"them": fit(
                pair_differences(f[rated], person.ratings(u[rated], (u[train].mean(), u[train].std()))),
                shared.shared, PERSON_STRENGTH)}, {"them": 20})
            added = set()
            for prompt in PROMPTS:
                mine, how = generate_personalised(studio, _request(prompt, seeds), model, "them", candidates)
                added.update(how.added)
                for a, b in zip(read(judge, [im.image for im in mine]), plain[prompt]):
                    ua, ub = person.utility(_shown(a)), person.utility(_shown(b))
                    wins, ties, losses = wins + (ua > ub), ties + (ua == ub), losses + (ua < ub)
            each.append({"prompt_added": sorted(added), "liked_most": model.liked("them", 3)})
        total = wins + ties + losses
        out[name] = {"preferred": round((wins + 0.5 * ties) / total, 3), "wins": wins, "ties": ties,
                     "losses": losses, "pairs": total, "people": each}
    pairs = sum(t["pairs"] for t in out.values())
    out["all"] = {"preferred": round(sum(t["preferred"] * t["pairs"] for t in out.values()) / pairs, 3),
                  "pairs": pairs}
    return out


def _request(prompt: str, n: int):
    from kaiga.request import GenerationRequest

    return GenerationRequest(prompt=prompt, n=n, seed=0)


def _shown(reading) -> list[str]:
    """What the judge read in an image, as `attributes` names what a scene shows."""
    return _named(reading.object_a, reading.colour_a, reading.scene, reading.weather, reading.time, reading.style)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--people", type=int, default=3, help="people a taste in the generation test")
    parser.add_argument("--seeds", type=int, default=2, help="seeds a prompt in the generation test")
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    scenes, images = pool()
    f = features(images)
    curve = learning_curve(scenes, f, args.repeats)
    print(json.dumps(curve, indent=1), file=sys.stderr)
    made = {} if args.skip_generation else generation(scenes, f, args.people, args.seeds, args.candidates)
    made_telling = {} if args.skip_generation else generation(scenes, f, args.people, args.seeds, args.candidates,
                                                              telling=True)
    result = {"settings": {"pool": POOL, "held_out": HELD_OUT, "population": POPULATION,
                           "population_ratings": POPULATION_RATINGS, "planted": PLANTED, "common": COMMON,
                           "idiosyncrasy_sd": IDIOSYNCRASY, "rating_noise_sd": RATING_NOISE,
                           "clear_pair": CLEAR_PAIR, "repeats": args.repeats, "prompts": list(PROMPTS),
                           "people": args.people, "seeds": args.seeds, "candidates": args.candidates, "model": "scenes-diffusion"},
              "environment": {"cpu": platform.machine(), "cores": os.cpu_count()},
              "learning_curve": curve, "generation": made, "generation_most_telling_ratings": made_telling,
              "wall_s": round(time.perf_counter() - t0, 1)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(made, indent=1))
    return result


if __name__ == "__main__":
    main()
