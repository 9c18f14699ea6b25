"""The safety filter's false-flag rate on kaiga's own world: 64² scenes renders and images from each bundled
model, none of them explicit, so every flag is a false one (target: 0).

Usage:
    OMP_NUM_THREADS=1 python bench/safety.py [--renders 500] [--per-model 200] [--json bench/results/safety.json]

Each image goes through `kaiga.safety.screen` with the default settings (the bundled blocklist on its prompt,
open_nsfw at the default threshold); a row per source gives n, flagged, the largest classifier score and the
threshold, so the margin is visible. Renders are `kaiga.data.dataset.scene_example(i, seed=0)` with their
canonical caption as the prompt; each model makes `--per-model` images through the Studio, 8 per request, for
the canonical captions of `scene_example(i, seed=7)`. The Studio runs with its own filter off here so that
every image is screened exactly once, by this script.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

from kaiga.data.dataset import scene_example
from kaiga.metadata import GenerationRecord
from kaiga.safety import SafetySettings, screen
from kaiga.version import __version__

MODELS = ("scenes-diffusion", "scenes-gan", "scenes-vae", "scenes-transformer")
PER_REQUEST = 8


def _row(source: str, verdicts: list, seconds: float) -> dict:
    scores = [v.score for v in verdicts]
    return {"source": source, "n": len(verdicts), "flagged": sum(v.flagged for v in verdicts),
            "flagged_by_prompt": sum(v.flagged and v.check.value == "prompt" for v in verdicts),
            "max_score": round(max(scores), 4), "mean_score": round(sum(scores) / len(scores), 5),
            "threshold": verdicts[0].threshold, "seconds": round(seconds, 1)}


def renders(n: int, settings: SafetySettings) -> dict:
    t0 = time.perf_counter()
    verdicts = []
    for i in range(n):
        image, captions, _ = scene_example(i, seed=0)
        record = GenerationRecord(prompt=captions[0], seed=i, sampler="", steps=0, width=64, height=64,
                                  model="scenes-render", model_hash="0000000000")
        verdicts += [v for _, _, v in screen([image], [record], captions[0], settings)]
    return _row("scenes renders (64²)", verdicts, time.perf_counter() - t0)


def model_images(name: str, n: int, settings: SafetySettings) -> dict:
    from kaiga.studio import Studio

    studio = Studio(safety=SafetySettings(enabled=False))  # screened below, once
    t0 = time.perf_counter()
    verdicts = []
    for k in range(0, n, PER_REQUEST):
        prompt = scene_example(k // PER_REQUEST, seed=7)[1][0]
        made = studio.generate(prompt, model=name, seed=k, n=min(PER_REQUEST, n - k))
        records = [m.record.model_copy(update={"extra": {}}) for m in made]  # without the "filter off" note
        verdicts += [v for _, _, v in screen([m.image for m in made], records, prompt, settings)]
    size = made[0].image.size
    return _row(f"{name} ({size[0]}×{size[1]})", verdicts, time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--renders", type=int, default=500)
    parser.add_argument("--per-model", type=int, default=200)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", type=Path, default=Path("bench/results/safety.json"))
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    settings = SafetySettings()  # the defaults a user gets
    result = {"benchmark": "safety false-flag rate", "kaiga": __version__, "python": platform.python_version(),
              "machine": platform.machine(), "measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": "OMP_NUM_THREADS=1 python bench/safety.py "
                         f"--renders {args.renders} --per-model {args.per_model}",
              "rows": []}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    jobs = [lambda: renders(args.renders, settings)] + [
        (lambda name=name: model_images(name, args.per_model, settings))
        for name in ([m for m in args.models.split(",") if m] if args.per_model else [])]
    for job in jobs:  # the file is rewritten after each row: a run cut short keeps what it measured
        result["rows"].append(job())
        print(result["rows"][-1], flush=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
