"""Prompt-following, GenEval-style: generate K images per suite prompt, read them, score exactly.

An image passes a case, as in GenEval, when the readout network finds every object the prompt names
and the attribute its category tests (colours, count, relation, scene, weather, time or style);
"strict" scores also demand every other attribute the prompt names. A prompt's score is the fraction
of its K images that pass; a category's score is the mean over its prompts; "overall" is the mean
over categories (GenEval's convention), reported separately for seen and held-out combinations.

`render_oracle` draws each case with the scenes renderer itself: what a perfect generator would
score under this judge, i.e. the ceiling that the readout's own errors leave.

Example:
    >>> from kaiga.eval.prompts import PromptCase
    >>> from kaiga.eval.readout import Reading
    >>> case = PromptCase("a red car", "colours", (("car", "red"),))
    >>> r = Reading("single", 1, "none", "car", "red", "none", "none", "city", "clear", "day", "plain")
    >>> passes(case, r), passes(case, Reading(**{**r.__dict__, "colour_a": "blue"}))
    (True, False)
"""

from __future__ import annotations

import json
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Collection

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kaiga.data.render import render
from kaiga.data.world import COLOURS, RELATIONS, Layout, Scene, SceneObject, sample_scene
from kaiga.eval.prompts import CATEGORIES, EVERYDAY_VERSION, SUITE_VERSION, PromptCase, prompt_suite
from kaiga.eval.readout import Reading, ReadoutNet, fingerprint, read

# (prompts, seeds) -> one image per (prompt, seed) pair, in order
GenerateFn = Callable[[list[str], list[int]], list[Image.Image]]


# What each category checks beyond "every named object is there" (GenEval's rule): its own attribute.
CHECKS = {
    "single_object": (), "two_objects": (), "counting": ("count",), "colours": ("colour",),
    "position": ("relation",), "colour_attribution": ("colour",),
    "scene": ("scene",), "weather": ("weather",), "time": ("time",), "style": ("style",),
}
ALL_CHECKS = ("count", "colour", "relation", "scene", "weather", "time", "style")


def passes(case: PromptCase, r: Reading, strict: bool = False) -> bool:
    """True when `r` shows every object `case` names and the attribute its category tests.

    `strict` checks every attribute the prompt names (a "time" prompt's colour and scene too).
    """
    got = r.objects
    if any(name not in got for name, _ in case.objects):
        return False
    for check in ALL_CHECKS if strict else CHECKS[case.category]:
        if check == "colour" and any(c is not None and got[n] != c for n, c in case.objects):
            return False
        if check == "count" and case.count is not None:
            layout = Layout.COUNT.value if case.count > 1 else Layout.SINGLE.value
            if (r.layout, r.count) != (layout, case.count):
                return False
        if check == "relation" and case.relation is not None:
            (a, _), (b, _) = case.objects
            if r.relation_of(a, b) != case.relation:
                return False
        if check in ("scene", "weather", "time", "style") and getattr(case, check) not in (None, getattr(r, check)):
            return False
    return True


def case_seeds(index: int, k: int) -> list[int]:
    """The fixed seeds of case `index`: every model is judged on the same starting noise."""
    return [10_000 + 100 * index + j for j in range(k)]


def render_oracle(case: PromptCase, seed: int) -> Image.Image:
    """The case drawn by the renderer: a perfect generator.

    Unasked attributes follow the world's own distribution (a scene drawn as training data is, then
    overridden with what the prompt asks), so the oracle is the ceiling for a model that learned it.
    """
    rng = np.random.default_rng([seed, 99])
    base = sample_scene(rng, split="any")
    objs = [SceneObject(name, colour or COLOURS[int(rng.integers(len(COLOURS)))]) for name, colour in case.objects]
    if len(objs) == 2:
        layout, relation = Layout.PAIR, case.relation or RELATIONS[int(rng.integers(len(RELATIONS)))]
    elif case.count and case.count > 1:
        layout, relation, objs = Layout.COUNT, None, objs * case.count
    else:
        layout, relation = Layout.SINGLE, None
    s = Scene(tuple(objs), layout, case.scene or base.scene, case.weather or base.weather, case.time or base.time,
              case.style or base.style, relation)
    return render(s, rng)


def oracle_generate(suite: list[PromptCase]) -> GenerateFn:
    """A GenerateFn that renders each prompt's case (prompts must come from `suite`)."""
    by_prompt = {c.prompt: c for c in suite}

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return [render_oracle(by_prompt[p], s) for p, s in zip(prompts, seeds)]

    return generate


def autoencoder_generate(model, suite: list[PromptCase], batch_size: int = 64) -> GenerateFn:
    """The oracle's renders passed through `model`'s autoencoder: the ceiling its latent space allows.

    Separates what the autoencoder loses (shapes, small objects) from what the denoiser gets wrong.
    """
    import torch

    from kaiga.eval.readout import to_input
    from kaiga.images import to_pil

    oracle = oracle_generate(suite)

    @torch.no_grad()
    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        images = []
        for i in range(0, len(prompts), batch_size):
            x = to_input(oracle(prompts[i : i + batch_size], seeds[i : i + batch_size]))
            images += to_pil(model.decode(model.encode_images(x)).float().cpu())
        return images

    return generate


def model_generate(model, steps: int | None = None, guidance: float | None = None, sampler: str = "ddim",
                   batch_size: int = 16, on_image: Callable[[int], None] | None = None,
                   options: dict | None = None) -> GenerateFn:
    """A GenerateFn over a loaded model of any family, many prompts per batch.

    `options`: the request's family options (truncation, candidates, ...), None meaning the family's default;
    `steps`, `guidance` None: the model's own.
    """
    from kaiga.pipelines.text_to_image import text_to_image
    from kaiga.request import GenerationRequest

    fields = {"sampler": sampler, "steps": steps, "guidance": guidance}
    given = {**fields, **(options or {})}
    request = GenerationRequest(prompt="evaluation", **{k: v for k, v in given.items() if v is not None})

    def generate(prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        images = []
        for i in range(0, len(prompts), batch_size):
            images += text_to_image(model, request, seeds[i : i + batch_size], batch_size,
                                    prompts=prompts[i : i + batch_size])
            if on_image is not None:
                on_image(len(images))
        return images

    return generate


@dataclass
class CaseResult:
    case: PromptCase
    score: float  # share of images passing the category's check
    strict: float  # share passing every named attribute
    images: list[Image.Image] = field(repr=False)
    readings: list[Reading] = field(repr=False)


def _summary(results: list[CaseResult]) -> dict | None:
    if not results:
        return None  # e.g. held-out, when only categories without held-out cases were scored
    def by_category(score) -> dict[str, float]:
        groups: dict[str, list[float]] = {}
        for r in results:
            groups.setdefault(r.case.category, []).append(score(r))
        return {c: round(float(np.mean(groups[c])), 4) for c in CATEGORIES if c in groups}

    def mean(d: dict) -> float:
        return round(float(np.mean(list(d.values()))), 4) if d else float("nan")

    categories, strict = by_category(lambda r: r.score), by_category(lambda r: r.strict)
    return {"overall": mean(categories), "categories": categories, "strict_overall": mean(strict),
            "strict_categories": strict, "prompts": len(results)}


def check_categories(categories: Collection[str] | None) -> None:
    """Raise ValueError naming any of `categories` that the suite does not have (None: all of them)."""
    if categories is not None and (unknown := set(categories) - set(CATEGORIES)):
        raise ValueError(f"unknown categories {sorted(unknown)}; known: {', '.join(CATEGORIES)}")


def evaluate_alignment(generate: GenerateFn, readout: ReadoutNet, k: int = 4,
                       suite: list[PromptCase] | None = None,
                       categories: Collection[str] | None = None, suite_name: str = "main",
                       ignored_words: Callable[[str], list[str]] | None = None) -> tuple[dict, list[CaseResult]]:
    """Score `generate` on the suite; returns (result dict for JSON, per-case results with images).

    `categories` scores only those categories' cases (a quick check while working on, say, the pair
    categories). Each case keeps the seeds of its place in the whole suite, so its images and score
    are the ones a full run would give; a split with no case left is None in the result. `suite_name`
    ("main" or "everyday", whose cases `suite` then holds) is recorded with its version; `ignored_words`
    (prompt -> the words the model's tokenizer does not know) adds them to each prompt's entry.
    """
    suite = suite if suite is not None else prompt_suite()
    check_categories(categories)
    picked = [(i, c) for i, c in enumerate(suite) if categories is None or c.category in categories]
    t0 = time.perf_counter()
    prompts = [c.prompt for _, c in picked for _ in range(k)]
    seeds = [s for i, _ in picked for s in case_seeds(i, k)]
    images = generate(prompts, seeds)
    readings = read(readout, images)  # read() brings any size to the judge's 64×64
    results = []
    for i, (_, case) in enumerate(picked):
        mine = readings[i * k : (i + 1) * k]
        results.append(CaseResult(case, float(np.mean([passes(case, r) for r in mine])),
                                  float(np.mean([passes(case, r, strict=True) for r in mine])),
                                  images[i * k : (i + 1) * k], mine))
    result = {
        "suite": suite_name,
        "suite_version": {"main": SUITE_VERSION, "everyday": EVERYDAY_VERSION}[suite_name],
        "samples_per_prompt": k,
        "categories": None if categories is None else [c for c in CATEGORIES if c in categories],
        "seen": _summary([r for r in results if not r.case.held_out]),
        "held_out": _summary([r for r in results if r.case.held_out]),
        "judge": fingerprint(readout),  # scores from different judges are not comparable
        "readout_accuracy": readout.cfg.accuracy.get("renders_any", {}),
        "seconds": round(time.perf_counter() - t0, 1),
        "prompts": [
            {"prompt": r.case.prompt, "category": r.case.category, "held_out": r.case.held_out, "score": r.score,
             "strict": r.strict, "read": [_describe(x) for x in r.readings]}
            | ({"ignored_words": ignored_words(r.case.prompt)} if ignored_words else {})
            for r in results
        ],
    }
    if ignored_words:
        result["prompts_with_ignored_words"] = sum(bool(p["ignored_words"]) for p in result["prompts"])
    return result, results


def _describe(r: Reading) -> str:
    """A short line of what the judge saw: "2 red cars, city, rain, night, neon"."""
    if r.layout == Layout.PAIR.value:
        rel = "left of" if r.axis == "horizontal" else "above"
        subject = f"{r.colour_a} {r.object_a} {rel} {r.colour_b} {r.object_b}"
    elif r.layout == Layout.COUNT.value:
        subject = f"{r.count} {r.colour_a} {r.object_a}s"
    else:
        subject = f"{r.colour_a} {r.object_a}"
    return f"{subject}, {r.scene}, {r.weather}, {r.time}, {r.style}"


def worst_grid(results: list[CaseResult], rows: int = 8, scale: int = 2) -> Image.Image:
    """The `rows` lowest-scoring prompts: their images, the prompt, and what the judge read."""
    worst = sorted(results, key=lambda r: r.score)[:rows]
    k = max(len(r.images) for r in worst)
    cell, label_w, text_h = 64 * scale, 300, 46
    font, small = ImageFont.load_default(size=11), ImageFont.load_default(size=9)
    sheet = Image.new("RGB", (label_w + k * (cell + 4), len(worst) * (cell + text_h + 6)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, r in enumerate(worst):
        y = i * (cell + text_h + 6)
        tag = " (held out)" if r.case.held_out else ""
        prompt = "\n".join(textwrap.wrap(r.case.prompt, 44))
        draw.multiline_text((4, y + 4), f"{prompt}\n[{r.case.category}{tag}] score {r.score:.2f}",
                            fill="black", font=font)
        for j, (im, reading) in enumerate(zip(r.images, r.readings)):
            x = label_w + j * (cell + 4)
            sheet.paste(im.resize((cell, cell), Image.NEAREST), (x, y))
            mark = "ok" if passes(r.case, reading) else "x"
            words = f"{mark} {_describe(reading)}".split(", ", 1)  # subject, then the setting
            draw.multiline_text((x, y + cell + 1), "\n".join(textwrap.wrap(words[0], 24)[:2] + textwrap.wrap(words[-1], 24)[:2]),
                                fill="green" if mark == "ok" else "red", font=small, spacing=1)
    return sheet


def write_alignment(result: dict, results: list[CaseResult], json_path: Path, grid_path: Path | None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    if grid_path is not None:
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        worst_grid(results).save(grid_path)
