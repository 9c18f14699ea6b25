"""Seed variety: how much the images of one prompt differ from seed to seed, per model, against the renderer.

FID, KID, precision and recall (docs/EVAL.md) compare a model's images over many prompts with the world's,
so a model that draws one picture per prompt can still score well: the prompts vary. This measures the
variety inside a prompt. For P seen prompts of the alignment suite (the same number from each category)
and K seeds each (the alignment evaluation's seeds), it takes the judge's penultimate features (the space
FID is computed in) and averages the distance between every pair of images of the same prompt. `renders`
(the scene renderer drawing each prompt K times: the world's own variety) is measured in the same run;
`ratio` is a model's figure over that one, so 1.0 means as varied as the world and 0 means one picture
per prompt.

Hand-written: the metric is the mean pairwise distance (`torch.cdist`); no library measures
per-prompt variety in a feature space of our choosing.

Usage:
    python bench/variety.py [MODEL ...] [--prompts-per-category 4] [--k 8] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from kaiga.eval.alignment import case_seeds, model_generate, oracle_generate
from kaiga.eval.families import DEFAULT_MODELS
from kaiga.eval.prompts import CATEGORIES, prompt_suite
from kaiga.eval.readout import ReadoutNet, features, fingerprint
from kaiga.eval.speed import git_commit
from kaiga.studio import Studio

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "variety.json"
RENDERS = "renders"


def pick_cases(per_category: int):
    """(suite index, case) of the first `per_category` seen prompts of every category."""
    suite = prompt_suite()
    picked = []
    for category in CATEGORIES:
        picked += [(i, c) for i, c in enumerate(suite) if c.category == category and not c.held_out][:per_category]
    return suite, picked


def seed_variety(generate, judge: ReadoutNet, picked, k: int) -> dict:
    """Mean pairwise feature distance between the K images of each prompt: overall and per category."""
    prompts = [case.prompt for _, case in picked for _ in range(k)]
    seeds = [s for i, _ in picked for s in case_seeds(i, k)]
    f = features(judge, generate(prompts, seeds)).view(len(picked), k, -1)  # [P, K, D]
    pairwise = torch.cdist(f, f).sum(dim=(1, 2)) / (k * (k - 1))  # [P]: the diagonal is 0
    by_category: dict[str, list[float]] = {}
    for (_, case), d in zip(picked, pairwise.tolist()):
        by_category.setdefault(case.category, []).append(d)
    return {"mean_distance": round(pairwise.mean().item(), 4),
            "categories": {c: round(sum(v) / len(v), 4) for c, v in by_category.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--prompts-per-category", type=int, default=4)
    parser.add_argument("--k", type=int, default=8, help="seeds per prompt")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    if args.k < 2 or args.prompts_per_category < 1:
        parser.error("--k must be at least 2 and --prompts-per-category at least 1")

    torch.manual_seed(0)
    judge = ReadoutNet.load()
    suite, picked = pick_cases(args.prompts_per_category)
    rows = {RENDERS: seed_variety(oracle_generate(suite), judge, picked, args.k)}
    studio = Studio()
    for name in args.models:
        loaded = studio.load(name)
        with torch.no_grad():
            rows[loaded.ref.name] = {"model_hash": loaded.hash,
                                     **seed_variety(model_generate(loaded.model), judge, picked, args.k)}
        print(f"measured {loaded.ref.name}", flush=True)
    base = rows[RENDERS]["mean_distance"]
    for row in rows.values():
        row["ratio"] = round(row["mean_distance"] / base, 3)
    result = {"settings": {"prompts": len(picked), "k": args.k, "judge": fingerprint(judge),
                           "features": "readout penultimate layer", "baseline": RENDERS,
                           "sampling": "each model's defaults (diffusion: DDIM, 20 steps)"},
              "environment": {"machine": platform.machine(), "torch": torch.__version__, "commit": git_commit(),
                              "date": datetime.now(timezone.utc).isoformat(timespec="seconds")},
              "models": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    for name, row in rows.items():
        print(f"{name:22s} {row['mean_distance']:8.3f}  ratio {row['ratio']:.3f}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
