"""Does each creative control do what it says? Measured with the judge (issue 19, item 7).

So far, the style controls (kaiga/styles/mix.py):

- style share: `watercolor:1-w,neon:w` for w = 0, 0.1, … 1 — the share of images the judge reads as neon and
  as watercolor, which should move monotonically from one style to the other;
- stylize: `neon` at stylize 0 … 1000 — the share read as neon (0 is the plain prompt) and whether the
  object asked for is still there (stylize also raises guidance).

and the prompt syntax (kaiga/prompt_syntax.py), on one prompt a point (`--n` seeds):

- `--no snow` on a prompt that draws snow about 4 times in 10: the share read as snow, without and with it;
- `(snow:w)` for w = 0 … 1.6: the share read as snow (the attribute's hit rate) should rise with w, in a
  prompt and in a half-weight AND part;
- `AND snow :w` beside a prompt without weather: the share read as snow should rise with w;
- `a [red:blue:when] car`: the share read as blue should fall as the switch comes later (the step at which
  the colour is settled).

and `--chaos` (kaiga/families/chaos.py), for every family (`--only chaos`): seed variety (the judge-feature
distance between the seeds of one prompt, over the renderer's, as bench/variety.py) and the share of
images that keep the object asked for, at chaos 0, 25, 50, 100; variety should rise with chaos.

and the edits (`--only edits`, kaiga/variations.py, kaiga/eval/describe.py) on one image per prompt:
vary subtle should stay closer to the source than strong (judge-feature distance, pixel error); zoom out
should keep the middle (pixel error there) and paint a border that agrees with the prompt (the judge reads
the prompt's place in the result); describe → generate should make an image the judge reads as the source
(the share of attributes that agree).

and the mixes (`--only mixes`): a blend of two images at shares 1-w, w (Studio.blend), on pairs whose object
or place the judge reads differently: the share of results that take the second image's object (and place),
which should rise with w; a pan left by half (the kept part's pixel error, the place kept); `--sref` on a
render in each style: the style the judge reads in the reference and the share of images made with it that
are read in that style.

Each point is the same prompts and seeds (scenes captions without a style phrase; `--n` images a point).
`--only GROUP` runs one group of points alone (the others' results are kept).

Usage:
    OMP_NUM_THREADS=2 python bench/controls.py [--model scenes-diffusion] [--n 48] [--steps 20]
writes bench/results/controls.json (the model's entry; others kept).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kaiga import Studio
from kaiga.eval.readout import ReadoutNet, read
from kaiga.request import GenerationRequest

RESULTS = Path(__file__).parent / "results" / "controls.json"
OBJECTS = ("car", "dog", "house", "tree", "boat", "bird", "flower", "cat")
COLOURS = ("red", "blue", "yellow", "green", "white", "purple")
PLACES = ("in the city", "in the forest", "on the beach", "in the mountains")


def prompts(n: int) -> list[tuple[str, str]]:
    """(prompt, object) pairs cycling through objects, colours and places; no style phrase."""
    out = []
    for i in range(n):
        obj = OBJECTS[i % len(OBJECTS)]
        out.append((f"a {COLOURS[(i // len(OBJECTS)) % len(COLOURS)]} {obj} {PLACES[i % len(PLACES)]}", obj))
    return out


def measure(model, judge, cases, steps: int, **fields) -> dict:
    """The judge's readings of one image per case (seed 1000 + i), the request's other fields `fields`; the
    family's own batched sampler, as `kaiga eval` runs it (the Studio makes the same pixels one request at a time)."""
    request = GenerationRequest(prompt="-", steps=steps, **fields)
    images = model.sample(request, [1000 + i for i in range(len(cases))], batch_size=16, prompts=[p for p, _ in cases])
    readings = read(judge, images)
    n = len(readings)
    return {"neon": sum(r.style == "neon" for r in readings) / n,
            "watercolor": sum(r.style == "watercolor" for r in readings) / n,
            "plain": sum(r.style == "plain" for r in readings) / n,
            "object_kept": sum(r.object_a == obj for r, (_, obj) in zip(readings, cases)) / n}


def measure_prompt(model, judge, prompt: str, n: int, steps: int, **fields) -> dict:
    """Shares of `n` images of one prompt (seeds 1000 …) that the judge reads as snow, as blue (object a) and
    with the object asked for; a composed prompt (AND, [from:to:when]) runs as the request's own prompt."""
    request = GenerationRequest(prompt=prompt, steps=steps, **fields)
    readings = read(judge, model.sample(request, [1000 + i for i in range(n)], batch_size=16))
    return {"snow": sum(r.weather == "snow" for r in readings) / n,
            "blue": sum(r.colour_a == "blue" for r in readings) / n,
            "red": sum(r.colour_a == "red" for r in readings) / n,
            "car": sum(r.object_a == "car" for r in readings) / n}


def syntax_points(model, judge, n: int, steps: int) -> dict:
    """The prompt syntax's measured effects (see the module docstring)."""
    some_snow = "a red car in the city AND snow :0.5"  # snow in about 4 images of 10: room to fall
    weights, ands, whens = [0.0, 0.5, 1.0, 1.6], [0.0, 0.25, 0.5, 1.0], [0.0, 0.05, 0.1, 0.15, 0.25, 0.5]
    no = {"without": measure_prompt(model, judge, some_snow, n, steps),
          "with --no snow": measure_prompt(model, judge, some_snow + " --no snow", n, steps)}
    weighted = {w: measure_prompt(model, judge, f"a red car in the city in the (snow:{w:g})", n, steps) for w in weights}
    weighted_part = {w: measure_prompt(model, judge, f"a red car in the city AND (snow:{w:g}) :0.5", n, steps)
                     for w in weights}
    composed = {w: measure_prompt(model, judge, f"a red car in the city AND snow :{w:g}", n, steps) for w in ands}
    edited = {w: measure_prompt(model, judge, f"a [red:blue:{w:g}] car in the city", n, steps) for w in whens}
    return {
        "no": {"prompt": some_snow, **no, "lowers": no["with --no snow"]["snow"] < no["without"]["snow"]},
        "weight": {"prompt": "a red car in the city in the (snow:w)", "by_weight": {str(w): v for w, v in weighted.items()},
                   "rises_monotonically": monotone([weighted[w]["snow"] for w in weights]),
                   "moves": max(v["snow"] for v in weighted.values()) - min(v["snow"] for v in weighted.values())},
        "weight_in_a_weak_part": {"prompt": "a red car in the city AND (snow:w) :0.5",
                                  "by_weight": {str(w): v for w, v in weighted_part.items()},
                                  "rises_monotonically": monotone([weighted_part[w]["snow"] for w in weights])},
        "and": {"prompt": "a red car in the city AND snow :w", "by_weight": {str(w): v for w, v in composed.items()},
                "rises_monotonically": monotone([composed[w]["snow"] for w in ands])},
        "edit": {"prompt": "a [red:blue:when] car in the city (when: a fraction of the 20 steps)",
                 "by_when": {str(w): v for w, v in edited.items()},
                 "blue_falls_monotonically": monotone([edited[w]["blue"] for w in whens], rising=False)},
    }


def chaos_points(studio, judge, models: list[str], per_category: int = 2, k: int = 8) -> dict:
    """Seed variety over the renderer's and the object kept, per family model, at each chaos."""
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from variety import pick_cases  # noqa: E402 (bench/variety.py: the same prompts)

    from kaiga.eval.alignment import case_seeds, model_generate, oracle_generate
    from kaiga.eval.readout import features

    suite, picked = pick_cases(per_category)
    prompts = [case.prompt for _, case in picked for _ in range(k)]
    seeds = [s for i, _ in picked for s in case_seeds(i, k)]
    wanted = [case.objects[0][0] for _, case in picked for _ in range(k)]

    def point(generate) -> dict:
        images = generate(prompts, seeds)
        f = features(judge, images).view(len(picked), k, -1)
        distance = (torch.cdist(f, f).sum(dim=(1, 2)) / (k * (k - 1))).mean().item()
        readings = read(judge, images)
        kept = sum(r.object_a == w for r, w in zip(readings, wanted)) / len(readings)
        return {"distance": distance, "object_kept": round(kept, 3)}

    base = point(oracle_generate(suite))["distance"]
    out = {"prompts": len(picked), "k": k, "renders_distance": round(base, 4)}
    for name in models:
        model = studio.load(name).model
        rows = {}
        for chaos in (0, 25, 50, 100):
            with torch.no_grad():
                p = point(model_generate(model, options={"chaos": chaos} if chaos else None))
            rows[str(chaos)] = {"variety": round(p["distance"] / base, 3), "object_kept": p["object_kept"]}
            print(name, chaos, rows[str(chaos)], flush=True)
        out[name] = {"by_chaos": rows, "variety_rises_monotonically": monotone([r["variety"] for r in rows.values()])}
    return out


def edit_points(studio, judge, n: int, model: str) -> dict:
    """Vary subtle / strong, zoom out ×2 and describe → generate on `n` source images (see the docstring)."""
    import numpy as np

    from kaiga.eval.describe import describe
    from kaiga.eval.readout import features
    from kaiga.variations import vary_plan, zoom_plan

    cases = prompts(n)
    sources = [studio.generate(p, seed=2000 + i, upscale=1, model=model)[0] for i, (p, _) in enumerate(cases)]
    src_f = features(judge, [s.image for s in sources])
    src_read = read(judge, [s.image for s in sources])
    out: dict = {"n": n}
    for mode in ("subtle", "strong"):
        dist, err = [], []
        for i, s in enumerate(sources):
            made = studio.remix(vary_plan(s.image, s.record.model_dump(), mode), n=2, seed=3000 + i)
            f = features(judge, [m.image for m in made])
            dist.append(float((f - src_f[i]).norm(dim=1).mean()))
            err += [float(np.abs(np.asarray(m.image, float) - np.asarray(s.image, float)).mean()) for m in made]
        out[f"vary_{mode}"] = {"feature_distance": round(float(np.mean(dist)), 3), "pixel_error": round(float(np.mean(err)), 2)}
    out["vary_subtle_closer"] = out["vary_subtle"]["feature_distance"] < out["vary_strong"]["feature_distance"]
    kept, place = [], []
    for i, s in enumerate(sources):
        plan = zoom_plan(s.image, s.record.model_dump(), 2)
        [z] = studio.remix(plan, n=1, seed=4000 + i)
        a, b = np.asarray(z.image, float), np.asarray(plan.init, float)
        kept.append(float(np.abs(a[24:40, 24:40] - b[24:40, 24:40]).mean()))  # 8 px inside the seam's blur
        place.append(read(judge, [z.image])[0].scene == src_read[i].scene)
    out["zoom_2"] = {"kept_middle_pixel_error": round(float(np.mean(kept)), 3),
                     "border_reads_as_the_prompts_place": round(sum(place) / n, 3)}
    agree = []
    slots = ("object_a", "colour_a", "scene", "weather", "time", "style")
    for i, s in enumerate(sources):
        prompt = describe(s.image).prompts[0]
        [again] = studio.generate(prompt, seed=5000 + i, upscale=1, model=model)
        r = read(judge, [again.image])[0]
        agree.append(sum(getattr(r, k) == getattr(src_read[i], k) for k in slots) / len(slots))
    out["describe_round_trip"] = {"attributes_agree": round(float(np.mean(agree)), 3), "slots": list(slots)}
    return out


def mix_points(studio, judge, n: int, model: str) -> dict:
    """Blend, pan and --sref (see the docstring): what the judge reads in each result."""
    import numpy as np

    from kaiga.data.render import render
    from kaiga.data.world import STYLES, Layout, Scene, SceneObject
    from kaiga.eval.describe import sref_style
    from kaiga.variations import pan_plan

    cases = prompts(2 * n)
    sources = [studio.generate(p, seed=2000 + i, upscale=1, model=model)[0] for i, (p, _) in enumerate(cases)]
    reads = read(judge, [s.image for s in sources])
    pairs = [(sources[2 * i], sources[2 * i + 1], reads[2 * i], reads[2 * i + 1]) for i in range(n)]
    shares = [0.0, 0.25, 0.5, 0.75, 1.0]
    by_share = {}
    for w in shares:
        took = {"object": [], "scene": []}
        for i, (a, b, ra, rb) in enumerate(pairs):
            [made] = studio.blend([a.image, b.image], [a.record.model_dump(), b.record.model_dump()], [1 - w, w],
                                  n=1, seed=6000 + i, model=model)
            r = read(judge, [made.image])[0]
            for slot, key in (("object", "object_a"), ("scene", "scene")):
                if getattr(ra, key) != getattr(rb, key):  # only pairs that differ say whose it took
                    took[slot].append(getattr(r, key) == getattr(rb, key))
        by_share[str(w)] = {f"{slot}_of_b": round(float(np.mean(v)), 3) if v else None for slot, v in took.items()}
    out: dict = {"n": n, "blend": {"weights": "1-w,w", "by_share": by_share,
                                   "object_of_b_rises_monotonically": monotone(
                                       [by_share[str(w)]["object_of_b"] for w in shares])}}
    kept, place = [], []
    for i, s in enumerate(sources[:n]):
        plan = pan_plan(s.image, s.record.model_dump(), "left", 0.5)
        [moved] = studio.remix(plan, n=1, seed=7000 + i)
        a, b = np.asarray(moved.image, float), np.asarray(plan.init, float)
        kept.append(float(np.abs(a[:, 40:] - b[:, 40:]).mean()))  # the kept right half, 8 px in from the seam
        place.append(read(judge, [moved.image])[0].scene == reads[i].scene)
    out["pan_left"] = {"kept_part_pixel_error": round(float(np.mean(kept)), 3),
                       "reads_as_the_sources_place": round(sum(place) / n, 3)}
    rng, sampler, styled = np.random.default_rng(0), studio.load(model).model, {}
    for style in STYLES:
        reference = render(Scene((SceneObject("house", "yellow"),), Layout.SINGLE, "forest", "clear", "day", style), rng)
        preset, note = sref_style(reference, judge)
        images = sampler.sample(GenerationRequest(prompt="-", style=preset), [8000 + i for i in range(n)],
                                batch_size=16, prompts=[p for p, _ in prompts(n)])
        styled[style] = {"reference_read_as": note["read"],
                         "made_in_its_style": round(sum(r.style == style for r in read(judge, images)) / n, 3)}
    out["sref"] = {"reference": "a yellow house in the forest, rendered in each style", "by_style": styled}
    return out


def monotone(values: list[float], rising: bool = True, slack: float = 0.05) -> bool:
    """Whether values never step back by more than `slack` (sampling noise at these sizes)."""
    pairs = zip(values, values[1:])
    return all((b >= a - slack) if rising else (b <= a + slack) for a, b in pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="scenes-diffusion")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--only", choices=["styles", "syntax", "chaos", "edits", "mixes"],
                    help="Run one group of points (the others' results kept).")
    args = ap.parse_args()
    if args.only in ("edits", "mixes"):
        all_results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        t0 = time.perf_counter()
        points = edit_points if args.only == "edits" else mix_points
        group = {**points(Studio(watermark=False), ReadoutNet.load(), min(args.n, 16), args.model),
                 "seconds": round(time.perf_counter() - t0, 1)}
        all_results.setdefault(args.model, {"model": args.model})[args.only] = group
        RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
        print(json.dumps(group, indent=2))
        return
    if args.only == "chaos":  # every family, not only --model
        all_results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        t0 = time.perf_counter()
        all_results["chaos"] = {**chaos_points(Studio(watermark=False), ReadoutNet.load(),
                                               ["scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer"]),
                                "seconds": round(time.perf_counter() - t0, 1)}
        RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
        print(json.dumps(all_results["chaos"], indent=2))
        return
    model, judge, cases = Studio().load(args.model).model, ReadoutNet.load(), prompts(args.n)
    all_results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if args.only == "syntax":
        t0 = time.perf_counter()
        syntax = {"n": args.n, "steps": args.steps, **syntax_points(model, judge, args.n, args.steps),
                  "seconds": round(time.perf_counter() - t0, 1)}
        all_results.setdefault(args.model, {"model": args.model})["prompt_syntax"] = syntax
        RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
        print(json.dumps(syntax, indent=2))
        return
    t0 = time.perf_counter()
    shares = [round(0.1 * k, 1) for k in range(11)]
    share_curve = {w: measure(model, judge, cases, args.steps, style=f"watercolor:{1 - w:g},neon:{w:g}")
                   for w in shares}
    stylizes = [0, 50, 100, 200, 400, 1000]
    stylize_curve = {s: measure(model, judge, cases, args.steps, style="neon", stylize=s) for s in stylizes}
    neon_by_share = [share_curve[w]["neon"] for w in shares]
    result = {
        "model": args.model, "n": args.n, "steps": args.steps, "seconds": round(time.perf_counter() - t0, 1),
        "style_share": {"spec": "watercolor:1-w,neon:w", "by_share": {str(w): v for w, v in share_curve.items()},
                        "neon_rises_monotonically": monotone(neon_by_share),
                        "watercolor_falls_monotonically": monotone([share_curve[w]["watercolor"] for w in shares],
                                                                   rising=False),
                        "ends": [neon_by_share[0], neon_by_share[-1]]},
        "stylize": {"style": "neon", "by_stylize": {str(s): v for s, v in stylize_curve.items()}},
    }
    if args.only is None:
        result["prompt_syntax"] = {"n": args.n, "steps": args.steps, **syntax_points(model, judge, args.n, args.steps)}
    elif "prompt_syntax" in all_results.get(args.model, {}):
        result["prompt_syntax"] = all_results[args.model]["prompt_syntax"]
    all_results[args.model] = result
    RESULTS.write_text(json.dumps(all_results, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
