"""The bias audit: what a model makes when the prompt leaves an attribute open, against uniform and its data.

For each under-specified prompt (kaiga.audit.prompts) the model makes N images (seeds 0..N-1); the judge
(the readout network of `kaiga eval`) reads every open attribute back; each attribute's distribution is
compared with two references:

- uniform over the values the training data has for that subject (a car colour never seen in training
  is not a value the model could be fair to), and
- the training data's own frequencies, for the same subject and the same named attributes: from the
  dataset's metadata.jsonl `attributes` when one is given, else from the world's sampling distribution
  the bundled models were trained on (`world_scenes`: seeded draws of `sample_scene`, train split, with
  the layout shares of scripts/train_families.sh; the layout changes none of the per-object shares).

Reported per attribute: shares with percentile-bootstrap 95 % intervals, TV distance and chi-square
p-value against each reference, the amplification over the data, and the judge's own accuracy on that
attribute, measured on renders of the same prompt whose open values are drawn uniformly (the TV the judge
alone puts on a uniform truth is beside it, so a skew that is the judge's shows as such).

Example:
    >>> scenes = world_scenes(2000)
    >>> ref = training_shares(scenes, parse_prompt("a car"), "colour")
    >>> "pink" in ref.shares  # car+pink is a held-out pair: never in the bundled models' training data
    False
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from kaiga.audit.prompts import PromptSpec, complete, parse_prompt
from kaiga.audit.stats import amplification, bootstrap_ci, chi_square_p, share_counts, shares, tv_distance, uniform
from kaiga.data.render import render
from kaiga.data.world import ATTRIBUTES, Layout, Mix, Scene, SceneObject, sample_scene
from kaiga.eval.readout import Reading, ReadoutNet, fingerprint, read

ALPHA = 0.01  # significance level of a reported skew
MIN_TV = 0.1  # and the smallest TV called a skew: at large N a negligible difference is still "significant"
WORLD_MIX = Mix(layouts=(1.0, 0.0, 0.0))  # single objects: the per-object shares of any layout mix, no draw wasted
WORLD_DRAWS = 20_000  # about 2,000 per object: each share of a car's colour known to about ±0.02
JUDGE_RENDERS = 300  # renders per prompt that measure the judge

# (prompts, seeds) -> one image per pair, as kaiga.eval.alignment's GenerateFn
GenerateFn = Callable[[list[str], list[int]], list[Image.Image]]


def value_of(attribute: str, scene: dict | Scene | Reading) -> str:
    """An attribute of a scene (its first object's, for object and colour) or of what the judge read."""
    if isinstance(scene, Reading):
        return {"object": scene.object_a, "colour": scene.colour_a}.get(attribute) or getattr(scene, attribute)
    d = scene.to_dict() if isinstance(scene, Scene) else scene
    if attribute in ("object", "colour"):
        return d["objects"][0]["name" if attribute == "object" else "colour"]
    return d[attribute]


def matches(spec: PromptSpec, scene: dict) -> bool:
    """True when a training scene is one the prompt describes: one kind of object, allowed, named values equal."""
    if scene["layout"] == Layout.PAIR.value or value_of("object", scene) not in spec.objects:
        return False
    return all(value_of(a, scene) == v for a, v in spec.fixed.items())


@lru_cache(maxsize=4)
def _world(n: int, seed: int) -> tuple[dict, ...]:
    rng = np.random.default_rng(seed)
    return tuple(_light_dict(sample_scene(rng, split="train", mix=WORLD_MIX)) for _ in range(n))


def _light_dict(s: Scene) -> dict:
    """The fields of `Scene.to_dict` that the audit reads, without dataclasses.asdict (a third of the time)."""
    return {"layout": s.layout.value, "objects": [{"name": o.name, "colour": o.colour} for o in s.objects],
            "scene": s.scene, "weather": s.weather, "time": s.time, "style": s.style}


def world_scenes(n: int = WORLD_DRAWS, seed: int = 0) -> list[dict]:
    """`n` seeded draws of the scenes world's training distribution (what the bundled models saw)."""
    return list(_world(n, seed))


def dataset_scenes(folder: Path) -> list[dict]:
    """The `attributes` of every image of a dataset folder; ValueError when it has none (not a scenes dataset)."""
    from kaiga.data.dataset import read_metadata

    scenes = [e.attributes for e in read_metadata(folder) if e.attributes]
    if not scenes:
        raise ValueError(f"{folder}: metadata.jsonl has no `attributes` (a scenes dataset has); without them "
                         "the training frequencies are unknown")
    return scenes


@dataclass(frozen=True)
class Reference:
    shares: dict[str, float]
    n: int  # training scenes of this subject


def training_shares(scenes: Sequence[dict], spec: PromptSpec, attribute: str) -> Reference:
    """The training data's shares of `attribute` among the scenes the prompt describes (most frequent first).

    Falls back to the scenes of the prompt's subject alone when fewer than 20 match every named value.
    """
    mine = [s for s in scenes if matches(spec, s)]
    if len(mine) < 20:
        mine = [s for s in scenes if matches(PromptSpec(spec.prompt, spec.objects), s)]
    counts = share_counts((value_of(attribute, s) for s in mine), ())
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return Reference(shares(ordered), len(mine))


def _support(attribute: str, spec: PromptSpec, ref: Reference) -> tuple[str, ...]:
    """The values the model could be fair to: those of the training data, in the world's order."""
    world = spec.objects if attribute == "object" else tuple(str(v) for v in ATTRIBUTES[attribute])
    return tuple(v for v in world if ref.shares.get(v, 0) > 0) or world


def judge_renders(spec: PromptSpec, supports: dict[str, tuple[str, ...]], n: int, seed: int = 0):
    """`n` renders of the prompt with every open attribute drawn uniformly from its support: (images, scenes)."""
    images, scenes = [], []
    for i in range(n):
        rng = np.random.default_rng([seed, 7, i])
        base = sample_scene(rng, split="any", mix=Mix(layouts=(1.0, 0.0, 0.0)))
        pick = {a: spec.fixed.get(a) or supports[a][int(rng.integers(len(supports[a])))] for a in supports}
        name = pick.get("object", spec.objects[0])
        s = Scene((SceneObject(name, pick.get("colour") or spec.fixed.get("colour") or base.objects[0].colour),),
                  Layout.SINGLE, *(pick.get(a) or spec.fixed.get(a) or getattr(base, a)
                                   for a in ("scene", "weather", "time", "style")))
        images.append(render(s, rng))
        scenes.append(s.to_dict())
    return images, scenes


def judge_check(judge: ReadoutNet, spec: PromptSpec, supports: dict[str, tuple[str, ...]], n: int = JUDGE_RENDERS) -> dict:
    """Per open attribute: the judge's accuracy on renders with known values, and the TV it alone adds."""
    images, scenes = judge_renders(spec, supports, n)
    readings = read(judge, images)
    out = {}
    for a, support in supports.items():
        truth = [value_of(a, s) for s in scenes]
        got = [value_of(a, r) for r in readings]
        out[a] = {"accuracy": round(float(np.mean([t == g for t, g in zip(truth, got)])), 4),
                  "tv_on_uniform_renders": tv_distance(shares(share_counts(got, support)),
                                                       shares(share_counts(truth, support))),
                  "renders": n}
    return out


def balanced_generate(generate: GenerateFn, spec: PromptSpec, attribute: str, support: Sequence[str]) -> GenerateFn:
    """Balanced prompt completion: image i of the prompt is made with `attribute` named as value i mod k."""
    def run(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        completed = [complete(spec, attribute, support[i % len(support)]) if p == spec.prompt else p
                     for i, p in enumerate(prompts)]
        return generate(completed, seeds)

    return run


def attribute_report(values: list[str], support: tuple[str, ...], ref: Reference, judge: dict) -> dict:
    """Every figure of one open attribute from the values read in the model's N images.

    The shares, intervals and tests are over the images whose value is one of the training data's (the
    skew among the values the model could choose); images showing a value its data never had are counted
    apart, as `off_support_share` (a model still drawing what it was fine-tuned away from).
    """
    inside = [v for v in values if v in support]
    counts = share_counts(inside, support)
    got, flat = shares(counts), uniform(support)
    p_uniform, p_train = chi_square_p(counts, flat), chi_square_p(counts, ref.shares)
    tv_uniform, tv_train = tv_distance(got, flat), tv_distance(got, ref.shares)
    data_tv = tv_distance(ref.shares, flat)
    skewed = p_uniform < ALPHA and tv_uniform >= MIN_TV
    return {
        "support": list(support),
        "counts": counts,
        "shares": {k: round(v, 4) for k, v in got.items()},
        "ci95": bootstrap_ci(inside, support),
        "off_support_share": round(1 - len(inside) / len(values), 4) if values else 0.0,
        "all_counts": share_counts(values, support),
        "train_shares": {k: round(v, 4) for k, v in ref.shares.items()},
        "train_n": ref.n,
        "uniform": {"tv": tv_uniform, "p": p_uniform},
        "train": {"tv": tv_train, "p": p_train},
        "train_tv_from_uniform": data_tv,
        "amplification": amplification(got, ref.shares, flat),
        "judge": judge,
        "verdict": "skewed" if skewed else "no significant skew",
        "amplified": bool(p_train < ALPHA and tv_uniform > data_tv + MIN_TV / 2),
    }


def audit_bias(generate: GenerateFn, judge: ReadoutNet, prompts: Sequence[str], n: int = 100,
               train_scenes: Sequence[dict] | None = None, balance: str | None = None,
               unknown_words: Callable[[str], list[str]] | None = None, judge_renders: int = JUDGE_RENDERS) -> dict:
    """The audit's result (JSON-ready) for `prompts`, N images each; `balance` completes that open attribute.

    `train_scenes`: the training data's attribute dicts (None: the world's distribution, `world_scenes`).
    """
    t0 = time.perf_counter()
    specs = [parse_prompt(p) for p in prompts]
    scenes = list(train_scenes) if train_scenes is not None else world_scenes()
    result_prompts = []
    for spec in specs:
        refs = {a: training_shares(scenes, spec, a) for a in spec.open}
        supports = {a: _support(a, spec, refs[a]) for a in spec.open}
        make = generate
        if balance is not None:
            if balance not in spec.open:
                raise ValueError(f"balance: {balance} is not open in {spec.prompt!r} (open: {', '.join(spec.open)})")
            make = balanced_generate(generate, spec, balance, supports[balance])
        images = make([spec.prompt] * n, list(range(n)))
        readings = read(judge, images)
        judged = judge_check(judge, spec, supports, judge_renders)
        result_prompts.append({
            "prompt": spec.prompt,
            "unknown_words": unknown_words(spec.prompt) if unknown_words else [],
            "named": {"objects": list(spec.objects), **spec.fixed},
            "open": list(spec.open),
            "attributes": {a: attribute_report([value_of(a, r) for r in readings], supports[a], refs[a], judged[a])
                           for a in spec.open},
        })
    return {
        "n": n,
        "seeds": f"0..{n - 1}",
        "balance": balance,
        "alpha": ALPHA,
        "min_tv": MIN_TV,
        "judge": fingerprint(judge),
        "training_reference": "dataset" if train_scenes is not None else
        f"world: {len(scenes)} draws of sample_scene(split=train, layouts={WORLD_MIX.layouts})",
        "training_scenes": len(scenes),
        "seconds": round(time.perf_counter() - t0, 1),
        "prompts": result_prompts,
    }


def rows(result: dict) -> list[dict]:
    """One flat row per (prompt, open attribute): what a table or a chart shows.

    >>> rows({"prompts": [{"prompt": "a car", "attributes": {}}]})
    []
    """
    out = []
    for p in result["prompts"]:
        for a, r in p["attributes"].items():
            out.append({"prompt": p["prompt"], "attribute": a, **r})
    return out


def table_rows(result: dict) -> list[list[str]]:
    """The audit as a table of strings, header first: one row per prompt and open attribute.

    >>> table_rows({"prompts": []})[0][:3]
    ['prompt', 'attribute', 'most made (share, 95 % CI)']
    """
    table = [["prompt", "attribute", "most made (share, 95 % CI)", "TV uniform", "p uniform", "TV train", "p train",
              "amplification", "other values", "judge acc.", "verdict"]]
    for r in rows(result):
        top = max(r["shares"], key=lambda k: r["shares"][k])
        lo, hi = r["ci95"][top]
        amp = r["amplification"]["tv_ratio"]
        table.append([r["prompt"], r["attribute"], f"{top} {r['shares'][top]:.2f} [{lo:.2f}, {hi:.2f}]",
                      f"{r['uniform']['tv']:.2f}", f"{r['uniform']['p']:.1e}", f"{r['train']['tv']:.2f}",
                      f"{r['train']['p']:.1e}", "–" if amp is None else f"{amp:.1f}×", f"{r['off_support_share']:.2f}",
                      f"{r['judge']['accuracy']:.2f}", r["verdict"] + (", amplified" if r["amplified"] else "")])
    return table


def write_bias(result: dict, out_dir: Path) -> tuple[Path, Path]:
    """bias.json and bias.png (kaiga.audit.bias_chart) in `out_dir`; returns their paths."""
    import json

    from kaiga.audit.bias_chart import bias_chart

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, chart = out_dir / "bias.json", out_dir / "bias.png"
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    bias_chart(rows(result)).save(chart)
    return json_path, chart
